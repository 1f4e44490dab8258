#!/usr/bin/env bash
# apt-get, one at a time: make test installs several services at once (scripts/test-all.sh),
# and concurrent apt-get runs fail on dpkg's and the lists' locks. Same arguments as apt-get.
exec flock -o /tmp/corral-apt.lock env DEBIAN_FRONTEND=noninteractive \
  apt-get -o DPkg::Lock::Timeout=600 "$@"
