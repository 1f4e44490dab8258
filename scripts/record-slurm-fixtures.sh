#!/usr/bin/env bash
# Record real Slurm 22.05 output into tests/slurm/fixtures/ for the parser unit tests.
# Run as root on a machine where scripts/start-slurm.sh works; it restarts Slurm twice (without,
# then with accounting) and takes about three minutes (one job has to reach its time limit).
# Each recording NAME leaves NAME.out (stdout), plus NAME.err and NAME.rc when they are not empty/0.
# The format strings must stay those of src/corral/backends/slurm/parse.py (a test checks it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${FIXTURES:-$here/../tests/slurm/fixtures}
mkdir -p "$out"
SQUEUE_FORMAT='JobArrayID:|,State:|,Name:|,RestartCnt:|,Reason:'
SACCT_FIELDS='JobID,State,ExitCode,JobName,TotalCPU,MaxRSS,ElapsedRaw,NodeList'
work=$(mktemp -d /tmp/corral-fixtures.XXXXXX)
cd "$work"

rec() {  # rec NAME cmd...: record a command's stdout, stderr and exit status
  local name=$1 rc=0; shift
  "$@" >"$out/$name.out" 2>"$out/$name.err" || rc=$?
  [ -s "$out/$name.err" ] || rm -f "$out/$name.err"
  if [ "$rc" != 0 ]; then echo "$rc" >"$out/$name.rc"; else rm -f "$out/$name.rc"; fi
}
state() { squeue -h -t all -j "$1" -o %T 2>/dev/null || true; }
wait_state() {  # wait_state JOBID STATE SECONDS
  for _ in $(seq $(( $3 * 5 ))); do [ "$(state "$1")" = "$2" ] && return 0; sleep 0.2; done
  echo "job $1 never reached $2 (is $(state "$1"))" >&2; return 1
}
submit() { sbatch --parsable -o /dev/null "$@"; }

# ---- 1. no accounting: the config and what sacct says
SLURM_CPUS=6 WITH_SACCT=0 bash "$here/start-slurm.sh" >/dev/null
rec scontrol-show-config.noacct scontrol show config
rec sacct.noacct sacct --noheader --parsable2 --allocations --format=$SACCT_FIELDS --jobs=1

# ---- 2. accounting: every state a single node can produce
SLURM_CPUS=6 WITH_SACCT=1 bash "$here/start-slurm.sh" >/dev/null
rec scontrol-show-config.acct scontrol show config

rec sbatch.single sbatch --parsable -o /dev/null --job-name=fx-single --wrap 'exit 0'
rec sbatch.array sbatch --parsable -o /dev/null --job-name=fx-array --array=0-4%2 \
  --wrap 'sleep 1; exit $(( SLURM_ARRAY_TASK_ID % 2 * 3 ))'
rec sbatch.bad-partition sbatch --parsable -o /dev/null --partition=nope --wrap true
rec sbatch.bad-memory sbatch --parsable -o /dev/null --mem=999999 --wrap true
rec sbatch.bad-array sbatch --parsable -o /dev/null --array=0-5000 --wrap true

timeout_id=$(submit --job-name=fx-timeout --time=1 --wrap 'sleep 600')
run_id=$(submit --job-name=fx-running --wrap 'sleep 600')
limited=$(submit --job-name=fx-limited --array=0-2%1 --wrap 'sleep 600')
held=$(submit --job-name=fx-held --hold --wrap 'sleep 600')
dep=$(submit --job-name=fx-dependency --dependency=afterok:$run_id --wrap true)
pend_cancel=$(submit --job-name=fx-cancelled-pending --hold --wrap true)
requeued=$(submit --job-name=fx-requeued --wrap 'sleep 600')
big=$(submit --job-name=fx-resources --cpus-per-task=6 --wrap true)
# arrays cancelled before any task started (held, or waiting for resources): squeue and sacct
# may show them as the bare job id, and sacct knows no task id of them
never=$(submit --job-name=fx-array-never-started --hold --array=0-3 --wrap true)
never2=$(submit --job-name=fx-array-never-started-2 --cpus-per-task=6 --array=0-3 --wrap true)
scancel "$never" "$never2"
wait_state "$requeued" RUNNING 30
scontrol requeue "$requeued"
scancel "$pend_cancel"
wait_state "$timeout_id" TIMEOUT 150
sleep 2  # accounting lags about a second behind the controller
ids=$(squeue -h -t all -r -o %i | sort -n | paste -sd,)
rec squeue.states squeue --noheader --states=all --array --Format=$SQUEUE_FORMAT --jobs="$ids"
rec squeue.aggregated squeue --noheader --states=all --Format=$SQUEUE_FORMAT --jobs="$ids"
rec squeue.names squeue --noheader --states=all --array --Format=$SQUEUE_FORMAT \
  --name=fx-array,fx-limited,fx-single,fx-nosuchname
rec sacct.states sacct --noheader --parsable2 --allocations --format=$SACCT_FIELDS --jobs="$ids"
# squeue exits 1 only when it asked for a single id (several are filtered on the client side)
rec squeue.never-started squeue --noheader --states=all --array --Format=$SQUEUE_FORMAT \
  --jobs="$never,$never2"
rec sacct.never-started sacct --noheader --parsable2 --allocations --format=$SACCT_FIELDS \
  --jobs="$never,$never2"
rec squeue.unknown-one squeue --noheader --states=all --array --Format=$SQUEUE_FORMAT --jobs=99999
rec squeue.unknown-many squeue --noheader --states=all --array --Format=$SQUEUE_FORMAT \
  --jobs=99998,99999
rec sacct.unknown sacct --noheader --parsable2 --allocations --format=$SACCT_FIELDS --jobs=99999

# one scancel for everything still queued or running, then what it leaves
live=$(squeue -h -t pending,running -o %i | sed 's/_\[.*//' | sort -u | paste -sd' ')
rec scancel.many scancel $live
sleep 3
rec squeue.cancelled squeue --noheader --states=all --array --Format=$SQUEUE_FORMAT --jobs="$ids"
rec sacct.cancelled sacct --noheader --parsable2 --allocations --format=$SACCT_FIELDS \
  --jobs="$ids,$limited"
rec scancel.finished scancel "$timeout_id"

# ---- 3. a node failure (the node is set DOWN under running jobs, then resumed)
nf=$(submit --job-name=fx-node-fail --no-requeue --wrap 'sleep 600')
nf_requeue=$(submit --job-name=fx-node-fail-requeue --requeue --wrap 'sleep 600')
wait_state "$nf" RUNNING 30; wait_state "$nf_requeue" RUNNING 30
scontrol update nodename=localhost state=down reason=corral-fixture
sleep 3
rec squeue.node-fail squeue --noheader --states=all --array --Format=$SQUEUE_FORMAT \
  --jobs="$nf,$nf_requeue"
rec sacct.node-fail sacct --noheader --parsable2 --allocations --format=$SACCT_FIELDS \
  --jobs="$nf,$nf_requeue"
# ReturnToService=2 may already have brought the node back when slurmd re-registered
scontrol update nodename=localhost state=resume 2>/dev/null || true
scancel "$nf_requeue"

# ---- 4. a requeued job whose relaunch Slurm refuses: requeued at the start of a second and let
# start again within that second, it meets the job credential slurmd revoked at the requeue
# ("Killing non-startable batch JobId=N: Job credential revoked"): FAILED, restart count 1, and
# no run 1 ever started (its wrapper would have recorded nothing after run 0's exit)
for _ in $(seq 150); do sinfo -h -n localhost -o %t | grep -qE '^(idle|mix)' && break; sleep 0.2; done
refused=$(submit --job-name=fx-relaunch-refused --wrap 'sleep 600')
wait_state "$refused" RUNNING 30
sleep 1
until (( 10#$(date +%N) < 20000000 )); do :; done
scontrol requeue "$refused"
until [ "$(squeue -h -j "$refused" -o %T%r)" = PENDINGBeginTime ]; do sleep 0.005; done
scontrol update jobid="$refused" StartTime=now
wait_state "$refused" FAILED 10
rec squeue.relaunch-refused squeue --noheader --states=all --array --Format=$SQUEUE_FORMAT \
  --jobs="$refused"
sleep 2  # accounting lags about a second behind the controller
rec sacct.relaunch-refused sacct --noheader --parsable2 --allocations --format=$SACCT_FIELDS \
  --jobs="$refused"
rm -rf "$work"
echo "recorded into $out"
