#!/usr/bin/env bash
# What `make test` runs after lint and type-check: every suite, against real services.
#   1. the plain suite, while DiracX with the classic DIRAC venv and the HTCondor pool are
#      installed and started in the background (their cold installs take minutes);
#   2. then two lanes side by side: Slurm (three set-ups) then Grid Engine, DiracX then HTCondor.
# Each service suite writes $LOGS/<suite>.log, printed (its tail) when it ends; the summary at
# the end gives every suite's exit status and time. Exit status: non-zero if any suite failed.
# A service that does not start fails its suite, never skips it.
#   usage: scripts/test-all.sh [VENV_BIN]
#   PLAIN   the plain suite's marker expression (the Makefile passes it)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-.venv/bin}
LOGS=${CORRAL_TEST_LOGS:-/tmp/corral-test-logs}
PLAIN=${PLAIN:-not slurm and not dirac and not dirac_classic and not condor and not sge}
export DIRAC_RUN=${DIRAC_RUN:-/tmp/corral-dirac-test}
rm -rf "$LOGS"; mkdir -p "$LOGS"
t0=$SECONDS

suite() {  # suite NAME COMMAND...: run it, keep its log, record its status and time
  local name=$1 start=$SECONDS rc; shift
  "$@" > "$LOGS/$name.log" 2>&1
  rc=$?
  echo "$rc $((SECONDS - start))" > "$LOGS/$name.rc"
  { echo "===== $name: exit $rc after $((SECONDS - start)) s (log: $LOGS/$name.log)"
    tail -n 40 "$LOGS/$name.log"; } >&2
}

bash "$here/test-dirac.sh" prepare > "$LOGS/dirac-prepare.log" 2>&1 &
bash "$here/test-condor.sh" prepare "$bin" > "$LOGS/condor-prepare.log" 2>&1 &

CORRAL_REQUIRE_ROOT=1 "$bin/pytest" -m "$PLAIN"
plain=$?
echo "===== plain suite: exit $plain after $((SECONDS - t0)) s" >&2

# (lanes balanced on measured times: Slurm's three set-ups ~6 min + Grid Engine ~1.5 min;
# DiracX and classic DIRAC ~4.5 min + HTCondor ~2.5 min)
( suite slurm bash "$here/test-slurm.sh" "$bin"
  suite sge bash "$here/test-sge.sh" "$bin" ) &
( suite dirac bash "$here/test-dirac.sh" run "$bin"
  suite condor bash "$here/test-condor.sh" run "$bin" ) &
wait

status=$plain
echo "===== summary after $((SECONDS - t0)) s (logs in $LOGS)" >&2
echo "plain: exit $plain" >&2
for name in dirac slurm condor sge; do
  read -r rc secs < "$LOGS/$name.rc" 2>/dev/null || { rc=1; secs=?; }
  echo "$name: exit $rc ($secs s)" >&2
  if [ "$rc" != 0 ]; then
    status=1
    case $name in dirac) tail -n 30 "$LOGS/dirac-prepare.log" >&2 ;;
                  condor) tail -n 30 "$LOGS/condor-prepare.log" >&2 ;; esac
  fi
done
exit "$status"
