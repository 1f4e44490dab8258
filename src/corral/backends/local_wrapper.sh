#!/bin/sh
# corral local wrapper: runs one attempt detached from its launcher and always leaves an exit code.
# usage: sh local_wrapper.sh ATTEMPT_DIR WALLTIME_S MEMORY_KB   (0 = no limit)
# Files it writes in ATTEMPT_DIR: pid (its own pid; the file's mtime is checked against pid reuse),
# jobpgid (the job's process group), stdout, stderr, exit ("<code> <killed-by-TERM?>").
cd "$1" || exit 125
mkdir .corral-run 2>/dev/null || exit 0   # launched before: an attempt never runs twice
echo $$ > pid.tmp && mv pid.tmp pid
[ "$3" -gt 0 ] && ulimit -v "$3"
child=
killed=
# timeout puts the job in its own process group and forwards TERM to all of it; 124 = walltime.
trap 'killed=TERM; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM INT HUP
timeout -k 10 "$2" sh job.sh </dev/null >stdout 2>stderr &
child=$!
echo "$child" > jobpgid
while :; do
  wait "$child"; rc=$?
  kill -0 "$child" 2>/dev/null || break   # a trapped signal interrupts wait; wait again
done
echo "$rc $killed" > exit.tmp && mv exit.tmp exit
