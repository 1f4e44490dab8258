#!/usr/bin/env bash
# Run every DIRAC integration test against real DiracX 0.7 servers: pytest -m dirac (the DiracX
# transport), then pytest -m dirac_classic (the classic DIRAC client in its own venv, through
# corral.isolate workers: against the same main server, and against the fake Dirac).
#   scripts/test-dirac.sh prepare          build the server venv and the classic DIRAC venv (at
#                                          once), start both servers (may run in the background
#                                          while other suites run)
#   scripts/test-dirac.sh run [VENV_BIN]   wait for prepare, start the test pilot, run the tests,
#                                          stop everything
#   scripts/test-dirac.sh all [VENV_BIN]   both, one after the other
# Two servers: the main one (240-minute tokens) and a second one whose access tokens live one
# minute (DIRACX_ACCESS_MINUTES=1) for the refresh tests. A missing server fails, never skips.
#   DIRAC_RUN     where servers, credentials and the tests' basetemp live (/tmp/corral-dirac-test)
#   PYTEST_ARGS   extra pytest arguments
#   DIRAC_CLASSIC_VENV   the classic DIRAC venv (/tmp/corral-dirac-classic)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
RUN=${DIRAC_RUN:-/tmp/corral-dirac-test}
export VENV=${DIRACX_VENV:-/tmp/corral-diracx}
MAIN_PORT=${DIRAC_MAIN_PORT:-8710}
SHORT_PORT=${DIRAC_SHORT_PORT:-8711}
MAIN_S3_PORT=${DIRAC_MAIN_S3_PORT:-27140}
SHORT_S3_PORT=${DIRAC_SHORT_S3_PORT:-27141}
CLASSIC_VENV=${DIRAC_CLASSIC_VENV:-/tmp/corral-dirac-classic}

prepare() {
  rm -rf "$RUN"; mkdir -p "$RUN"
  local t0=$SECONDS classic
  bash "$here/dirac-classic-venv.sh" "$CLASSIC_VENV" > "$RUN/classic-venv.log" 2>&1 &
  classic=$!
  bash "$here/diracx-venv.sh" "$VENV"
  echo "diracx venv: $((SECONDS - t0)) s"
  WORK=$RUN/main DIRACX_PORT=$MAIN_PORT S3_PORT=$MAIN_S3_PORT bash "$here/diracx-local.sh" start
  WORK=$RUN/short DIRACX_PORT=$SHORT_PORT S3_PORT=$SHORT_S3_PORT DIRACX_ACCESS_MINUTES=1 \
    bash "$here/diracx-local.sh" start
  WORK=$RUN/main DIRACX_PORT=$MAIN_PORT bash "$here/diracx-local.sh" credentials "$RUN/credentials.json"
  echo "diracx ready: $((SECONDS - t0)) s"
  wait "$classic" || { echo "the classic DIRAC venv failed:"; tail -40 "$RUN/classic-venv.log"; exit 1; }
  echo "classic DIRAC venv ready: $((SECONDS - t0)) s"
  touch "$RUN/ready"
}

stop_all() {
  [ -f "$RUN/pilot.pid" ] && kill "$(cat "$RUN/pilot.pid")" 2>/dev/null || true
  WORK=$RUN/main bash "$here/diracx-local.sh" stop || true
  WORK=$RUN/short bash "$here/diracx-local.sh" stop || true
}

run() {
  local bin=${1:-.venv/bin}
  trap stop_all EXIT
  for _ in $(seq 1 1800); do
    [ -f "$RUN/ready" ] && break
    [ -f "$RUN/failed" ] && { echo "DiracX did not start (see the prepare log)"; exit 1; }
    sleep 0.5
  done
  [ -f "$RUN/ready" ] || { echo "DiracX not ready after 15 min"; exit 1; }
  # shellcheck disable=SC1091
  source "$RUN/main/env.sh"
  export DIRACX_URL DIRACX_LEGACY_EXCHANGE_KEY_B64
  export DIRACX_CREDENTIALS_PATH=$RUN/credentials.json
  export CORRAL_REQUIRE_DIRAC=1 CORRAL_DIRAC_RUN=$RUN CORRAL_DIRAC_SCRIPTS=$here
  export CORRAL_DIRAC_MAIN_PORT=$MAIN_PORT CORRAL_DIRAC_SHORT_PORT=$SHORT_PORT
  mkdir -p "$RUN/pytest"
  "$bin/python" -m tests.dirac.pilot --root "$RUN/pytest" > "$RUN/pilot.log" 2>&1 &
  echo $! > "$RUN/pilot.pid"
  local status=0
  # shellcheck disable=SC2086  # PYTEST_ARGS is a list of words
  "$bin/pytest" -m dirac --basetemp="$RUN/pytest" ${PYTEST_ARGS:-} || status=$?
  export CORRAL_REQUIRE_DIRAC_CLASSIC=1 CORRAL_DIRAC_CLASSIC_VENV=$CLASSIC_VENV
  # shellcheck disable=SC2086
  "$bin/pytest" -m dirac_classic --basetemp="$RUN/pytest-classic" ${PYTEST_ARGS:-} || status=$?
  return "$status"
}

case "${1:-all}" in
  prepare)
    # (not `prepare || ...`: that would turn off set -e inside the function)
    trap '[ -f "$RUN/ready" ] || touch "$RUN/failed"' EXIT
    prepare ;;
  run) run "${2:-.venv/bin}" ;;
  all)
    trap '[ -f "$RUN/ready" ] || touch "$RUN/failed"' EXIT
    prepare
    run "${2:-.venv/bin}" ;;
  *) echo "usage: $0 prepare|run [VENV_BIN]|all [VENV_BIN]" >&2; exit 2 ;;
esac
