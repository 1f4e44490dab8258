#!/usr/bin/env bash
# Copied from the shared recipes; corral adds the parallel environments smp and mpi and makes it
# idempotent (a running Grid Engine is stopped first).
# Start a single-node Son of Grid Engine 8.1.9 (Debian 12 gridengine-*) without systemd. Run as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive SGE_ROOT=/var/lib/gridengine SGE_CELL=default
here=$(cd "$(dirname "$0")" && pwd)
SGE_SLOTS=${SGE_SLOTS:-$(nproc)}
# other installers may hold the dpkg lock: wait for it rather than fail
if ! command -v qsub >/dev/null || ! [ -x /usr/sbin/sge_qmaster ]; then
  bash "$here/apt-get.sh" update -qq
  bash "$here/apt-get.sh" install -y -qq --no-install-recommends gridengine-master gridengine-exec gridengine-client >/dev/null
fi
# idempotent: a Grid Engine already running is stopped first (its jobs and accounting survive)
bash "$(dirname "$0")/stop-sge.sh"
# postinst initialised cell "default" but left act_qmaster empty (no debconf answer)
C=$SGE_ROOT/$SGE_CELL/common
echo localhost > $C/act_qmaster
# SGE insists forward/reverse lookups agree: $(hostname) -> 127.0.0.1 -> "localhost"
echo "localhost $(hostname)" > $C/host_aliases
install -d -o sgeadmin -g sgeadmin -m 0755 /var/run/gridengine
W=$(mktemp -d)
wait_for() { local n=$(( $1 * 10 )); shift; for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "timeout: $*" >&2; return 1; }

SGE_MASTER_PIDFILE=/var/run/gridengine/qmaster.pid /usr/sbin/sge_qmaster    # forks, runs as sgeadmin
wait_for 30 qconf -sh
# global config: allow root jobs (min_uid/min_gid 1000 by default), flush accounting every second.
# -Mconf wants a file whose basename is the config name ("global"). Must precede sge_execd start
# (execd caches the config; otherwise jobs go to Eqw "gid of user root (0) less than minimum").
qconf -sconf > $W/global
sed -i -e 's/^min_uid .*/min_uid 0/' -e 's/^min_gid .*/min_gid 0/' \
       -e 's/flush_time=[0-9:]*/flush_time=00:00:01/' $W/global
qconf -Mconf $W/global
# scheduler: default 15 s cycle -> 1 s, and schedule right after submit/finish
qconf -ssconf > $W/sched
sed -i -e 's/^schedule_interval .*/schedule_interval 0:0:1/' -e 's/^flush_submit_sec .*/flush_submit_sec 1/' \
       -e 's/^flush_finish_sec .*/flush_finish_sec 1/' $W/sched
qconf -Msconf $W/sched
qconf -as localhost >/dev/null
SGE_EXECD_PIDFILE=/var/run/gridengine/execd.pid /usr/sbin/sge_execd     # forks; registers exec host "localhost"
wait_for 30 sh -c 'qconf -sel | grep -qx localhost'
# parallel environments for jobs that ask for several slots (corral's backend option "pe"): smp
# keeps a job's slots on one host, mpi fills hosts in turn
for pe in "smp \$pe_slots" "mpi \$fill_up"; do
  set -- $pe
  cat > $W/$1 <<EOF
pe_name            $1
slots              999
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    $2
control_slaves     FALSE
job_is_first_task  TRUE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
EOF
  if qconf -sp $1 >/dev/null 2>&1; then qconf -Mp $W/$1 >/dev/null; else qconf -Ap $W/$1 >/dev/null; fi
done
# no queue exists; `qconf -aq` template references a missing PE, so load a complete definition
cat > $W/all.q <<EOF
qname                 all.q
hostlist              localhost
seq_no                0
load_thresholds       NONE
suspend_thresholds    NONE
nsuspend              1
suspend_interval      00:05:00
priority              0
min_cpu_interval      00:05:00
processors            UNDEFINED
qtype                 BATCH INTERACTIVE
ckpt_list             NONE
pe_list               smp mpi
rerun                 FALSE
slots                 $SGE_SLOTS
tmpdir                /tmp
shell                 /bin/sh
prolog                NONE
epilog                NONE
shell_start_mode      unix_behavior
starter_method        NONE
suspend_method        NONE
resume_method         NONE
terminate_method      NONE
notify                00:00:60
owner_list            NONE
user_lists            NONE
xuser_lists           NONE
subordinate_list      NONE
complex_values        NONE
projects              NONE
xprojects             NONE
calendar              NONE
initial_state         default
s_rt                  INFINITY
h_rt                  INFINITY
s_cpu                 INFINITY
h_cpu                 INFINITY
s_fsize               INFINITY
h_fsize               INFINITY
s_data                INFINITY
h_data                INFINITY
s_stack               INFINITY
h_stack               INFINITY
s_core                INFINITY
h_core                INFINITY
s_rss                 INFINITY
h_rss                 INFINITY
s_vmem                INFINITY
h_vmem                INFINITY
EOF
# warm start: the queue survives in the qmaster spool, so modify it instead of adding it again
if qconf -sq all.q >/dev/null 2>&1; then qconf -Mq $W/all.q >/dev/null; else qconf -Aq $W/all.q >/dev/null; fi
# wait until the exec host has reported a load (state 'u' and load -NA- until then)
wait_for 60 sh -c 'qstat -f | grep "all.q@localhost" | grep -qv -- "-NA-"'
rm -rf $W
qstat -f
