#!/usr/bin/env bash
# Run every HTCondor test (pytest -m condor) against a real one-machine pool, then stop it.
# Run as root: start-htcondor.sh builds a Debian 13 chroot for the daemons the first time
# (~3 min cold on a fresh machine, ~31 s after), creates the pool's user `condorci` and starts
# the pool (cluster ids and history start afresh on every start), then a venv of
# /usr/bin/python3.11 for condorci with this checkout installed (~70 s cold).
#   scripts/test-condor.sh prepare [VENV_BIN]   install and start the pool, build the venv (may
#                                               run in the background while other suites run)
#   scripts/test-condor.sh run [VENV_BIN]       wait for prepare, run the tests, stop the pool
#   scripts/test-condor.sh [all] [VENV_BIN]     both, one after the other
#   PYTEST_ARGS   extra pytest arguments, e.g. "-k hold -x"
#   CONDOR_RUN    where prepare leaves its ready/failed marks (/tmp/corral-condor-test)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
RUN=${CONDOR_RUN:-/tmp/corral-condor-test}
export CORRAL_REQUIRE_CONDOR=${CORRAL_REQUIRE_CONDOR:-1}  # a missing pool fails, never skips

prepare() {
  local bin=$1
  rm -rf "$RUN"; mkdir -p "$RUN"
  trap '[ -f "$RUN/ready" ] || touch "$RUN/failed"' EXIT
  "$bin/pip" install -q -c "$here/../constraints.txt" htcondor
  bash "$here/start-htcondor.sh" >/dev/null
  bash "$here/condorci-venv.sh" /tmp/corral-condorci   # corral as the pool's user (shared mode)
  touch "$RUN/ready"
}

run() {
  local bin=$1
  trap 'bash "$here/stop-htcondor.sh"' EXIT
  for _ in $(seq 1 1800); do
    [ -f "$RUN/ready" ] && break
    [ -f "$RUN/failed" ] && { echo "the HTCondor pool did not start (see the prepare log)"; exit 1; }
    sleep 0.5
  done
  [ -f "$RUN/ready" ] || { echo "the HTCondor pool not ready after 15 min"; exit 1; }
  # shellcheck disable=SC2086  # PYTEST_ARGS is a list of words
  "$bin/pytest" -m condor ${PYTEST_ARGS:-}
}

case "${1:-all}" in
  prepare) prepare "${2:-.venv/bin}" ;;
  run) run "${2:-.venv/bin}" ;;
  all) (prepare "${2:-.venv/bin}") && run "${2:-.venv/bin}" ;;
  .*|/*) (prepare "$1") && run "$1" ;;   # (the old form: scripts/test-condor.sh VENV_BIN)
  *) echo "usage: $0 prepare|run|all [VENV_BIN]" >&2; exit 2 ;;
esac
