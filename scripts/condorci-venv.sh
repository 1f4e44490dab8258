#!/usr/bin/env bash
# A venv of Debian's /usr/bin/python3.11 owned by the pool's user (condorci cannot read pyenv
# under /root), with this checkout's corral and the HTCondor bindings installed, for the test
# that runs corral itself as that user in shared mode. Run as root; idempotent.
#   usage: scripts/condorci-venv.sh [DIR]        default DIR: /tmp/corral-condorci
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-/tmp/corral-condorci}
user=${CONDOR_USER:-condorci}
/usr/bin/python3.11 -c 'import ensurepip' 2>/dev/null || {
  bash "$here/scripts/apt-get.sh" update -qq && bash "$here/scripts/apt-get.sh" install -y -qq python3.11-venv >/dev/null; }
mkdir -p "$dir"
rm -rf "$dir/src"
mkdir -p "$dir/src"
cp -r "$here/src" "$here/pyproject.toml" "$here/constraints.txt" "$here/README.md" "$dir/src/"
chown -R "$user:" "$dir"
as_user() { runuser -u "$user" -- "$@"; }
[ -x "$dir/venv/bin/python" ] || as_user /usr/bin/python3.11 -m venv "$dir/venv"
as_user env -C "$dir/src" "$dir/venv/bin/pip" install -q -c constraints.txt '.[condor]'
