#!/bin/sh
# corral local wrapper: runs one attempt detached from its launcher and always leaves an exit code.
# usage: sh local_wrapper.sh ATTEMPT_DIR WALLTIME_S MEMORY_KB UUID CGROUP MEMORY_CGROUP MODE
# (0 = no limit, - = no cgroup; MODE is cgroup, pidns or pgroup: see corral.backends.local_control)
# Writes into ATTEMPT_DIR the run files of corral.backends.runfiles, run 0: run-start.0
# ("- <pid> -": its own pid; the file's mtime is checked against pid reuse) and run-exit.0
# ("<code> <terminated>", terminated 1 if it was killed), plus jobpgid (the process group to
# SIGKILL if TERM is not enough), stdout and stderr. The run marker .corral-run holds the attempt
# uuid: the monitor refuses a dir whose marker names another attempt.
# Builtins only on the common path: every exec costs a millisecond, and jobs come in thousands.
umask 077
cd "$1" || exit 125
set -C   # noclobber: the marker below is created with O_EXCL
{ : > .corral-run; } 2>/dev/null || exit 0   # launched before: an attempt never runs twice
set +C
echo "$4" > .corral-run   # whose it is (creating needs no space; this may fail on a full disk)
pid=$$
if [ "$7" = pidns ]; then   # init of a PID namespace: $$ is 1 here, the monitor needs our real pid
  while read -r key outer rest; do
    [ "$key" = NSpid: ] && { pid=$outer; break; }
  done < /proc/self/status
fi
echo "- $pid -" > run-start.0
# Join the attempt's cgroups before anything else starts: every descendant is born in them.
if [ "$5" != - ] && ! { echo $$ > "$5/cgroup.procs"; } 2>>stderr; then
  echo "corral: cannot join cgroup $5" >> stderr; echo "125 0" 1<>run-exit.0; exit 125
fi
if [ "$6" != - ] && ! { echo $$ > "$6/cgroup.procs"; } 2>>stderr; then
  echo "corral: cannot join memory cgroup $6" >> stderr; echo "125 0" 1<>run-exit.0; exit 125
fi
[ "$3" -gt 0 ] && ulimit -v "$3"
killed=0
# The job runs in the foreground, in the wrapper's session and process group, which a kill
# signals as a whole; the trap only notes it (run once the job has ended). Not `&`: without job
# control a shell starts a background job with SIGINT and SIGQUIT ignored, for good (it cannot
# be undone, and it is inherited), so a job's own `timeout -s INT` or Ctrl-C handling did
# nothing. timeout(1) stays in the group (--foreground); on the walltime it signals the job,
# and whatever the job left behind goes with the cgroup below.
trap 'killed=1' TERM INT HUP
echo "$$" > jobpgid
if [ "$2" -gt 0 ]; then
  timeout --foreground -k 10 "$2" sh job.sh </dev/null >stdout 2>stderr   # 124 = walltime
else   # a subshell, not `sh job.sh`: one exec less per job (no arguments, traps reset)
  ( set --; . ./job.sh ) </dev/null >stdout 2>stderr
fi
rc=$?
if [ "$rc" = 124 ] && [ "$2" -gt 0 ] && [ "$7" = pgroup ]; then   # (cgroup, pidns: see below)
  trap '' TERM; kill -TERM 0 2>/dev/null   # timeout signalled the job alone: its children too
fi
# Whatever the job left behind (setsid'd or not) dies with it: step out of the cgroup, kill it.
# (pidns: the kernel does it when this init exits.)
if [ "$5" != - ]; then
  { echo $$ > "${5%/*}/cgroup.procs"; echo 1 > "$5/cgroup.kill"; } 2>/dev/null
fi
# The job may have put a directory, FIFO or link where the exit file goes: remove it, and open
# with <> (O_RDWR), which never blocks on a FIFO that appears in between.
# The record then says so ("replaced"): the job fails with that reason.
{ times 1<>run-usage.0; } 2>/dev/null   # CPU time of the job (run-usage in runfiles)
replaced=
if [ -e run-exit.0 ] || [ -L run-exit.0 ]; then rm -rf run-exit.0; replaced=" - replaced"; fi
echo "$rc $killed$replaced" 1<>run-exit.0
