#!/usr/bin/env bash
# Start (or restart) a single-node Slurm 22.05 for corral's tests, without systemd. Run as root.
# Debian 12 (slurm-wlm 22.05.8). Restarting wipes all Slurm state, so job ids start again at 1.
#   SLURM_DIR      state/spool/logs/pidfiles (wiped on every start)      default /tmp/slurm-ci
#   SLURM_CPUS     CPUs the node advertises (may exceed nproc)            default $(nproc)
#   WITH_SACCT     1 = also start mariadb + slurmdbd so `sacct` works     default 0
#   MIN_JOB_AGE    seconds a finished job stays visible to `squeue`       default 3600
#                  (small values make finished jobs leave squeue fast, so the sacct and
#                  exit-file paths of the backend really run)
#   MAX_ARRAY_SIZE Slurm's MaxArraySize                                   default 1001
#   SLURM_GPUS     fake GPUs the node advertises (gres.conf points them at /dev/null-like
#                  character devices under $SLURM_DIR: jobs get CUDA_VISIBLE_DEVICES) default 2
# Config goes to /etc/slurm/slurm.conf (the default path), so clients need no SLURM_CONF.
set -euo pipefail
SLURM_DIR=${SLURM_DIR:-/tmp/slurm-ci}
SLURM_CPUS=${SLURM_CPUS:-$(nproc)}
WITH_SACCT=${WITH_SACCT:-0}
MIN_JOB_AGE=${MIN_JOB_AGE:-3600}
MAX_ARRAY_SIZE=${MAX_ARRAY_SIZE:-1001}
SLURM_GPUS=${SLURM_GPUS:-2}
export DEBIAN_FRONTEND=noninteractive
here=$(cd "$(dirname "$0")" && pwd)

pkgs="slurmctld slurmd slurm-client munge"
[ "$WITH_SACCT" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
# apt only when something is missing: a restart between test groups should take seconds
missing=0
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing=1; done
if [ "$missing" = 1 ]; then
  bash "$here/apt-get.sh" update -qq
  bash "$here/apt-get.sh" install -y -qq --no-install-recommends $pkgs >/dev/null
fi

wait_for() {  # wait_for <seconds> <cmd...>
  local n=$(( $1 * 10 )); shift
  for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timeout waiting for: $*" >&2; return 1
}

# ---- a previous start's Slurm daemons go first (munge and mariadb may stay up)
STOP_ONLY_SLURM=1 SLURM_DIR="$SLURM_DIR" bash "$here/stop-slurm.sh"

# ---- munge (postinst created /etc/munge/munge.key; /run/munge is normally made by systemd-tmpfiles)
[ -s /etc/munge/munge.key ] || { mungekey --create --force; chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key; }
install -d -o munge -g munge -m 0755 /run/munge
if ! munge -n >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged          # forks; pid in /run/munge/munged.pid
  wait_for 10 sh -c 'munge -n | unmunge'
fi

# ---- fresh state
rm -rf "$SLURM_DIR"; mkdir -p "$SLURM_DIR/state" "$SLURM_DIR/spool"
mkdir -p /etc/slurm

overrides=""
[ "$SLURM_CPUS" -gt "$(nproc)" ] && overrides="SlurmdParameters=config_overrides"
if [ "$WITH_SACCT" = 1 ]; then
  acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819"
else
  acct="AccountingStorageType=accounting_storage/none"
fi

# fake GPUs: character devices like /dev/null (slurmd only stats them; task/none never
# confines a job to them), enough for Slurm to schedule gres and set CUDA_VISIBLE_DEVICES
gpu_files=""
for i in $(seq 0 $((SLURM_GPUS - 1))); do
  [ -e "$SLURM_DIR/gpu$i" ] || mknod "$SLURM_DIR/gpu$i" c 1 3
  gpu_files="$gpu_files${gpu_files:+,}$SLURM_DIR/gpu$i"
done
echo "NodeName=localhost Name=gpu File=$gpu_files" > /etc/slurm/gres.conf

cat > /etc/slurm/slurm.conf <<EOF
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
SlurmctldPidFile=$SLURM_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/slurmd.pid
SlurmctldLogFile=$SLURM_DIR/slurmctld.log
SlurmdLogFile=$SLURM_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
GresTypes=gpu
$acct
JobCompType=jobcomp/filetxt
JobCompLoc=$SLURM_DIR/jobcomp.txt
MinJobAge=$MIN_JOB_AGE
# a job exiting 99 is requeued, as some sites do (the backend must not take 99 for its end)
RequeueExit=99
MaxArraySize=$MAX_ARRAY_SIZE
KillWait=2
ReturnToService=2
EnforcePartLimits=ALL
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
$overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$SLURM_CPUS RealMemory=1000 Gres=gpu:$SLURM_GPUS State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

# ---- optional accounting: mariadb + slurmdbd
if [ "$WITH_SACCT" = 1 ]; then
  install -d -o mysql -g root -m 0755 /run/mysqld
  if ! mariadb-admin ping >/dev/null 2>&1; then
    setsid nohup /usr/sbin/mariadbd --user=mysql >"$SLURM_DIR/mariadb.log" 2>&1 < /dev/null &
    wait_for 60 mariadb-admin ping                   # pid in /run/mysqld/mysqld.pid
  fi
  # fresh accounting DB each start: job ids restart at 1 because StateSaveLocation is wiped
  mariadb -e "DROP DATABASE IF EXISTS slurm_acct_db;
              CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  cat > /etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=$SLURM_DIR/slurmdbd.log
PidFile=$SLURM_DIR/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StoragePort=3306
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
EOF
  chmod 600 /etc/slurm/slurmdbd.conf                 # slurmdbd refuses a group/world-readable file
  /usr/sbin/slurmdbd                                 # forks
  wait_for 30 sacctmgr -n list cluster
  sacctmgr -i add cluster ci >/dev/null 2>&1 || true
fi

# ---- controller + node daemon (both fork into the background)
/usr/sbin/slurmctld
/usr/sbin/slurmd -N localhost                        # -N: node name independent of $(hostname)
wait_for 30 sh -c 'sinfo -h -n localhost -o %t | grep -qE "^(idle|mix|alloc)"'
sinfo
