#!/usr/bin/env bash
# Run every HTCondor test (pytest -m condor) against a real one-machine pool, then stop it.
# Run as root: start-htcondor.sh builds a Debian 13 chroot for the daemons the first time
# (~3 min cold on a fresh machine, ~31 s after), creates the pool's user `condorci` and starts
# the pool (cluster ids and history start afresh on every start), then a venv of
# /usr/bin/python3.11 for condorci with this checkout installed (~70 s cold).
#   usage: scripts/test-condor.sh [VENV_BIN]      default VENV_BIN: .venv/bin
#   PYTEST_ARGS   extra pytest arguments, e.g. "-k hold -x"
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-.venv/bin}
export CORRAL_REQUIRE_CONDOR=${CORRAL_REQUIRE_CONDOR:-1}  # a missing pool fails, never skips
"$bin/pip" install -q -c "$here/../constraints.txt" htcondor
trap 'bash "$here/stop-htcondor.sh"' EXIT
bash "$here/start-htcondor.sh" >/dev/null
bash "$here/condorci-venv.sh" /tmp/corral-condorci   # corral as the pool's user (shared mode)
# shellcheck disable=SC2086  # PYTEST_ARGS is a list of words
"$bin/pytest" -m condor ${PYTEST_ARGS:-}
