#!/usr/bin/env bash
# Run every Slurm integration test (pytest -m slurm) against a real single-node Slurm, once in
# each set-up the backend must handle, then stop Slurm. Run as root (start-slurm.sh installs
# and starts the daemons).
#   usage: scripts/test-slurm.sh [VENV_BIN]       default VENV_BIN: .venv/bin
#   PYTEST_ARGS   extra pytest arguments, e.g. "-k requeue -x"
#   SLURM_CPUS    CPUs the test node advertises (default 8: the tests' jobs mostly sleep)
# The set-ups: accounting with finished jobs kept an hour in squeue; no accounting with jobs
# leaving squeue after MinJobAge=2 s (the exit-file path); accounting with MinJobAge=2 s (the
# sacct path).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-.venv/bin}
export CORRAL_REQUIRE_SLURM=${CORRAL_REQUIRE_SLURM:-1}  # a missing Slurm fails, never skips
export SLURM_CPUS=${SLURM_CPUS:-8}
trap 'bash "$here/stop-slurm.sh"' EXIT
status=0
for setup in "WITH_SACCT=1 MIN_JOB_AGE=3600" "WITH_SACCT=0 MIN_JOB_AGE=2" \
             "WITH_SACCT=1 MIN_JOB_AGE=2"; do
  echo "== Slurm set-up: $setup"
  env $setup bash "$here/start-slurm.sh" >/dev/null
  # shellcheck disable=SC2086  # PYTEST_ARGS is a list of words
  "$bin/pytest" -m slurm ${PYTEST_ARGS:-} || status=$?
done
exit "$status"
