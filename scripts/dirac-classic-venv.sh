#!/usr/bin/env bash
# Build the venv of the classic DIRAC client (PyPI `dirac` 9.1.22), separate from corral's: the
# dirac-classic transport's workers run its Python, corral's own venv never has DIRAC.
#   usage: scripts/dirac-classic-venv.sh [VENV]     default VENV: /tmp/corral-dirac-classic
# Idempotent: a venv whose marker matches scripts/dirac-classic-requirements.txt is kept.
# The requirements are dirac's own minus gfal2-python (it needs ~24 more Debian packages and
# nothing here uses it), every version pinned, installed --no-deps; M2Crypto builds with swig.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${1:-${DIRAC_CLASSIC_VENV:-/tmp/corral-dirac-classic}}
req=$here/dirac-classic-requirements.txt
python=${PYTHON:-python3.11}
stamp=$(sha256sum "$req" | cut -c1-16)
if [ -f "$venv/.corral-stamp" ] && [ "$(cat "$venv/.corral-stamp")" = "$stamp" ]; then
  exit 0
fi
if ! command -v swig >/dev/null || ! [ -f /usr/include/openssl/ssl.h ]; then
  bash "$here/apt-get.sh" update -qq && bash "$here/apt-get.sh" install -y -qq swig libssl-dev gcc
fi
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade "pip==25.3"
# (pip's notes about unused local index locations are noise here)
"$venv/bin/pip" install -q --no-deps -r "$req" 2>&1 | { grep -v "^WARNING: Location" || true; }
"$venv/bin/python" -c "import DIRAC, M2Crypto" 
echo "$stamp" > "$venv/.corral-stamp"
