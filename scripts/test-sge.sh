#!/usr/bin/env bash
# Run every Grid Engine test (pytest -m sge) against a real single-node Grid Engine, then stop it.
# Run as root (start-sge.sh installs and starts the daemons).
#   usage: scripts/test-sge.sh [VENV_BIN]       default VENV_BIN: .venv/bin
#   PYTEST_ARGS   extra pytest arguments, e.g. "-k hold -x"
#   SGE_SLOTS     slots of the test host (default 8: the tests' jobs mostly sleep)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-.venv/bin}
export CORRAL_REQUIRE_SGE=${CORRAL_REQUIRE_SGE:-1}  # a missing Grid Engine fails, never skips
export SGE_SLOTS=${SGE_SLOTS:-8}
trap 'bash "$here/stop-sge.sh"' EXIT
bash "$here/start-sge.sh" >/dev/null
# shellcheck disable=SC2086  # PYTEST_ARGS is a list of words
"$bin/pytest" -m sge ${PYTEST_ARGS:-}
