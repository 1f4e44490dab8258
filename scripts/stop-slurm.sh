#!/usr/bin/env bash
# Stop what start-slurm.sh started, by pidfile (SIGTERM, then SIGKILL after 15 s).
#   SLURM_DIR        as for start-slurm.sh                              default /tmp/slurm-ci
#   STOP_ONLY_SLURM  1 = stop the Slurm daemons but leave munge and mariadb running
#                    (start-slurm.sh uses it to restart with another configuration)
SLURM_DIR=${SLURM_DIR:-/tmp/slurm-ci}
STOP_ONLY_SLURM=${STOP_ONLY_SLURM:-0}
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) && [ "${s#Z}" = "$s" ]; }  # zombies count as gone
stop_pidfile() {
  local f=$1 p
  [ -s "$f" ] || return 0
  p=$(cat "$f"); alive "$p" || return 0
  kill -TERM "$p"
  for _ in $(seq 150); do alive "$p" || return 0; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
}
stop_pidfile "$SLURM_DIR/slurmd.pid"
stop_pidfile "$SLURM_DIR/slurmctld.pid"
stop_pidfile "$SLURM_DIR/slurmdbd.pid"
[ "$STOP_ONLY_SLURM" = 1 ] && exit 0
stop_pidfile /run/mysqld/mysqld.pid
stop_pidfile /run/munge/munged.pid
exit 0
