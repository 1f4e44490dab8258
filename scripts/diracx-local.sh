#!/usr/bin/env bash
# A real DiracX 0.7 server (uvicorn) + moto S3 on loopback, SQLite everywhere, for the tests.
#   scripts/diracx-local.sh start            wipes WORK, starts; writes $WORK/env.sh
#   scripts/diracx-local.sh stop
#   scripts/diracx-local.sh restart-server   uvicorn alone: jobs, keys and tokens survive
#   scripts/diracx-local.sh token GROUP      prints a fresh token pair (JSON) for ciuser in GROUP
#   scripts/diracx-local.sh credentials FILE [GROUP]   writes such a pair as `dirac login` does
# VENV (default /tmp/corral-diracx, built by diracx-venv.sh), WORK (default /tmp/corral-diracx-run),
# DIRACX_PORT (8000), S3_PORT (27132), DIRACX_ACCESS_MINUTES (240; 1 for refresh tests).
set -euo pipefail
VENV=${VENV:-/tmp/corral-diracx}
WORK=${WORK:-/tmp/corral-diracx-run}
PORT=${DIRACX_PORT:-8000}
S3_PORT=${S3_PORT:-27132}
export PATH=$VENV/bin:$PATH

stop() {
  for f in "$WORK/uvicorn.pid" "$WORK/moto.pid"; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
}

serve() {
  uvicorn --factory diracx.testing.routers:create_app --host 127.0.0.1 --port "$PORT" \
      >> "$WORK/logs/uvicorn.log" 2>&1 & echo $! > "$WORK/uvicorn.pid"
  # the health check answers 503 until the config cache is ready
  for _ in $(seq 1 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/api/health/ready")" = 200 ] && return 0
    kill -0 "$(cat "$WORK/uvicorn.pid")" 2>/dev/null || break
    sleep 0.2
  done
  echo "DiracX failed to start"; tail -40 "$WORK/logs/uvicorn.log"; return 1
}

start() {
  stop 2>/dev/null || true
  rm -rf "$WORK"; mkdir -p "$WORK/db" "$WORK/logs"
  python -m diracx.logic rotate-jwk --jwks-path "$WORK/jwks.json" 2>/dev/null
  CS="git+file://$WORK/cs"
  { dirac internal generate-cs "$CS"
    dirac internal add-vo "$CS" --vo=testvo --idp-url=https://idp.invalid --idp-client-id=ci --default-group=user
    dirac internal add-group "$CS" --vo=testvo --group=admin --properties JobAdministrator --properties NormalUser
    dirac internal add-group "$CS" --vo=testvo --group=pilot --properties GenericPilot --properties LimitedDelegation
    dirac internal add-user "$CS" --vo=testvo --group=user --group=admin --group=pilot \
        --sub=75212b23-14c2-47be-9374-eb0113b0575e --preferred-username=ciuser
  } >/dev/null 2>&1
  {
    echo "export DIRACX_URL=http://127.0.0.1:$PORT"
    echo "export DIRACX_CONFIG_BACKEND_URL='$CS'"
    python -m diracx.db generate-local-urls "$WORK/db"
    echo "export DIRACX_SERVICE_AUTH_TOKEN_KEYSTORE='file://$WORK/jwks.json'"
    echo "export DIRACX_SERVICE_AUTH_STATE_KEY='$(python -c 'from cryptography.fernet import Fernet;print(Fernet.generate_key().decode())')'"
    echo "export DIRACX_SERVICE_AUTH_TOKEN_ISSUER='http://127.0.0.1:$PORT'"
    echo "export DIRACX_SERVICE_AUTH_ALLOWED_REDIRECTS='[\"http://127.0.0.1:$PORT/api/docs/oauth2-redirect\"]'"
    echo "export DIRACX_SERVICE_AUTH_ACCESS_TOKEN_EXPIRE_MINUTES=${DIRACX_ACCESS_MINUTES:-240}"
    echo "export DIRACX_SANDBOX_STORE_BUCKET_NAME=sandboxes"
    echo "export DIRACX_SANDBOX_STORE_AUTO_CREATE_BUCKET=true"
    echo "export DIRACX_SANDBOX_STORE_S3_CLIENT_KWARGS='{\"endpoint_url\": \"http://127.0.0.1:$S3_PORT\", \"aws_access_key_id\": \"testing\", \"aws_secret_access_key\": \"testing\"}'"
    python - <<'PY'
import base64, hashlib, os
raw = os.urandom(32)
print(f"export DIRACX_LEGACY_EXCHANGE_KEY_B64='{base64.urlsafe_b64encode(raw).decode()}'")
print(f"export DIRACX_LEGACY_EXCHANGE_HASHED_API_KEY='{hashlib.sha256(raw).hexdigest()}'")
PY
  } > "$WORK/env.sh"
  # shellcheck disable=SC1091
  source "$WORK/env.sh"
  moto_server -H 127.0.0.1 -p "$S3_PORT" > "$WORK/logs/moto.log" 2>&1 & echo $! > "$WORK/moto.pid"
  for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/" && break; sleep 0.2; done
  serve || { stop; return 1; }
  echo "DiracX ready at $DIRACX_URL (env: $WORK/env.sh)"
}

restart_server() {
  # shellcheck disable=SC1091
  source "$WORK/env.sh"
  if [ -f "$WORK/uvicorn.pid" ]; then
    kill "$(cat "$WORK/uvicorn.pid")" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$(cat "$WORK/uvicorn.pid")" 2>/dev/null || break; sleep 0.1; done
  fi
  serve && echo "DiracX restarted"
}

token() {  # a token pair from the legacy exchange (what DIRAC's own servers use)
  # shellcheck disable=SC1091
  source "$WORK/env.sh"
  curl -sf -G "http://127.0.0.1:$PORT/api/auth/legacy-exchange" \
    --data-urlencode preferred_username=ciuser --data-urlencode "scope=vo:testvo group:$1" \
    -H "Authorization: Bearer diracx:legacy:${DIRACX_LEGACY_EXCHANGE_KEY_B64}"
}

credentials() {  # a credentials file as `dirac login` writes it (0600, expires_on a Unix time)
  token "${3:-user}" | python3 -c '
import json, os, sys, time
data = json.load(sys.stdin)
out = {"access_token": data["access_token"], "refresh_token": data.get("refresh_token"),
       "expires_on": int(time.time()) + int(data["expires_in"]) - 10}
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, json.dumps(out).encode()); os.close(fd)' "$2"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  restart-server) restart_server ;;
  token) token "${2:-user}" ;;
  credentials) credentials "$@" ;;
  *) echo "usage: $0 start|stop|restart-server|token GROUP|credentials FILE [GROUP]" >&2; exit 2 ;;
esac
