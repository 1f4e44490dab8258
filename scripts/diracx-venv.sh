#!/usr/bin/env bash
# Build the venv of the DiracX test server (not corral's venv: the server has its own pins).
#   usage: scripts/diracx-venv.sh [VENV]     default VENV: /tmp/corral-diracx
# Idempotent: a venv whose marker matches scripts/diracx-server-requirements.txt is kept.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${1:-${DIRACX_VENV:-/tmp/corral-diracx}}
req=$here/diracx-server-requirements.txt
python=${PYTHON:-python3.11}
stamp=$(sha256sum "$req" | cut -c1-16)
if [ -f "$venv/.corral-stamp" ] && [ "$(cat "$venv/.corral-stamp")" = "$stamp" ]; then
  exit 0
fi
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade "pip==25.3"
# (pip's notes about unused local index locations are noise here)
"$venv/bin/pip" install -q -r "$req" 2>&1 | { grep -v "^WARNING: Location" || true; }
echo "$stamp" > "$venv/.corral-stamp"
