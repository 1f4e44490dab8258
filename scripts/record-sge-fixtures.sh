#!/usr/bin/env bash
# Record the Grid Engine outputs the parser tests read (tests/sge/fixtures), from the real Grid
# Engine that scripts/start-sge.sh starts. Run as root; takes about 20 s.
#   usage: scripts/record-sge-fixtures.sh [OUT_DIR]
set -euo pipefail
out=${1:-$(cd "$(dirname "$0")/.." && pwd)/tests/sge/fixtures}
mkdir -p "$out"
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
cat > "$w/job.sh" <<'JOB'
#!/bin/sh
[ "${SGE_TASK_ID:-undefined}" = undefined ] && SGE_TASK_ID=1
sleep "${SLEEP:-2}"
exit $((SGE_TASK_ID % 3))
JOB
q() { qsub -terse -o /dev/null -e /dev/null -S /bin/sh "$@"; }
# a relative -o without -cwd resolves against $HOME and cannot be opened: Eqw (submitted first,
# so that it is scheduled before the others take the slots)
eqw=$(qsub -terse -N rec-eqw -o no-such-dir/out -e /dev/null -S /bin/sh "$w/job.sh")
sleep 3
q -N rec-array -t 1-4 "$w/job.sh" > "$out/qsub-array.txt"
q -N rec-plain "$w/job.sh" > "$out/qsub-plain.txt"
array=$(cut -d. -f1 "$out/qsub-array.txt")
held=$(q -N rec-held -h -t 1-3 "$w/job.sh" | cut -d. -f1)
sleep 3
qstat -xml > "$out/qstat-mixed.xml"
qstat -j "$eqw" > "$out/qstat-j-eqw.txt"
qdel "$held" "$eqw" >/dev/null
# a running job deleted, and a job that uses memory
running=$(q -N rec-deleted -v SLEEP=30 "$w/job.sh")
mem=$(printf '#!/bin/sh\npython3 -c "b = bytearray(100 * 1024 * 1024)"\n' > "$w/mem.sh"; q -N rec-mem "$w/mem.sh")
sleep 3
qdel "$running" >/dev/null
sleep 4
qacct -j "$array" > "$out/qacct-array.txt"
qacct -j "$running" > "$out/qacct-deleted.txt"
qacct -j "$mem" > "$out/qacct-mem.txt"
qacct -j 999999 > "$out/qacct-unknown.txt" 2>&1 || true
qdel 999999 > "$out/qdel-unknown.txt" 2>&1 || true
ls "$out"
