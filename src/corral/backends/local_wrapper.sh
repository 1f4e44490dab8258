#!/bin/sh
# corral local wrapper: runs one attempt detached from its launcher and always leaves an exit code.
# usage: sh local_wrapper.sh ATTEMPT_DIR WALLTIME_S MEMORY_KB   (0 = no limit)
# Writes into ATTEMPT_DIR the run files of corral.backends.runfiles, run 0: run-start.0
# ("- <pid> -": its own pid; the file's mtime is checked against pid reuse) and run-exit.0
# ("<code> <terminated>", terminated 1 if it was killed), plus jobpgid (the process group to
# SIGKILL if TERM is not enough), stdout and stderr.
# Builtins only on the common path: every exec costs a millisecond, and jobs come in thousands.
cd "$1" || exit 125
set -C   # noclobber: the lock file below is created with O_EXCL
{ : > .corral-run; } 2>/dev/null || exit 0   # launched before: an attempt never runs twice
set +C
echo "- $$ -" > run-start.0
[ "$3" -gt 0 ] && ulimit -v "$3"
child=
killed=0
# The wrapper leads its own session and process group (the launcher used setsid), so a kill is
# sent to that whole group. timeout(1) makes a group of its own: the trap forwards to it.
# (dash has no job control without a terminal, so `set -m` cannot give the job a group.)
target=
trap 'killed=1; [ -n "$target" ] && kill -TERM $target 2>/dev/null' TERM INT HUP
if [ "$2" -gt 0 ]; then
  timeout -k 10 "$2" sh job.sh </dev/null >stdout 2>stderr &   # 124 = walltime exceeded
  child=$!
  target="-$child"
  echo "$child" > jobpgid
else
  sh job.sh </dev/null >stdout 2>stderr &
  child=$!
  target="$child"
  echo "$$" > jobpgid
fi
while :; do
  wait "$child"; rc=$?
  kill -0 "$child" 2>/dev/null || break   # a trapped signal interrupts wait; wait again
done
echo "$rc $killed" > run-exit.0
