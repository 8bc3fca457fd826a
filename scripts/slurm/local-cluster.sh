#!/usr/bin/env bash
# A real single-node Slurm on this machine (Debian's slurm-wlm: slurmctld + slurmd, with
# munge), to run cambox's job array (cambox-array.sbatch) under the real sbatch, squeue,
# scancel and scontrol.
#
#   scripts/slurm/local-cluster.sh start     install slurm-wlm if missing, write the
#                                            configuration, start munged, slurmctld and
#                                            slurmd, wait until the node is idle
#   scripts/slurm/local-cluster.sh test      start, run scripts/slurm/array_test.sh, stop;
#                                            exits with the test's status
#   scripts/slurm/local-cluster.sh stop      cancel the jobs, stop the daemons, remove the
#                                            state (the logs stay in $DIR/log)
#   scripts/slurm/local-cluster.sh status    daemons, sinfo, squeue
#   scripts/slurm/local-cluster.sh env       prints `export SLURM_CONF=...`: then sbatch,
#                                            squeue, sacct -c ... talk to this cluster
#   scripts/slurm/local-cluster.sh logs      the daemons' logs (last lines)
#   scripts/slurm/local-cluster.sh clean     stop, and remove $DIR altogether
#
# Environment: CAMBOX_SLURM_DIR (state, default /tmp/cambox-slurm), CAMBOX_SLURM_PORT
# (slurmctld's port, default 16817; slurmd uses the next one), CAMBOX_SLURM_AUTH (munge,
# the default, or none), CAMBOX_SLURM_CGROUP (no, the default: proctrack/linuxproc; or
# v1: proctrack/cgroup and task/cgroup on cgroup v1, cores and memory confined), CAMBOX
# (the binary the test runs; default target/release/cambox, built if missing). Needs root (apt, daemons as root, munged as the munge user).
# See scripts/slurm/README.md for the choices (auth, proctrack, no cgroups, no slurmdbd).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
DIR=${CAMBOX_SLURM_DIR:-/tmp/cambox-slurm}
PORT=${CAMBOX_SLURM_PORT:-16817}
AUTH=${CAMBOX_SLURM_AUTH:-munge}
CGROUP=${CAMBOX_SLURM_CGROUP:-no}
CONF="$DIR/etc/slurm.conf"
export SLURM_CONF=$CONF
NODE=$(hostname -s 2>/dev/null || uname -n)
NODE=${NODE%%.*}

say() { echo "local-cluster: $*" >&2; }
die() {
  say "error: $*"
  exit 1
}

# wait_for SECONDS WHAT CMD...: runs CMD every 0.5 s until it succeeds; 1 on timeout.
wait_for() {
  local secs=$1 what=$2 deadline
  shift 2
  deadline=$(($(date +%s) + secs))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      say "timed out after ${secs}s waiting for $what"
      return 1
    fi
    sleep 0.5
  done
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

show_logs() {
  local f
  for f in "$DIR"/log/munged.log "$DIR"/log/slurmctld.log "$DIR"/log/slurmd.log; do
    [ -f "$f" ] || continue
    echo "----- $f (last 40 lines)" >&2
    tail -n 40 "$f" >&2
  done
}

install_slurm() {
  local missing=()
  command -v slurmctld >/dev/null || missing+=(slurmctld)
  command -v slurmd >/dev/null || missing+=(slurmd)
  command -v sbatch >/dev/null || missing+=(slurm-client)
  command -v munged >/dev/null || missing+=(munge)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "Slurm is not installed (${missing[*]}) and installing it needs root"
  say "installing slurm-wlm and munge with apt (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # The packages' scripts try to start the services; in a container without an init
  # system that is refused, harmlessly: this script starts the daemons itself.
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >"$DIR/log/apt.log" 2>&1 ||
    {
      tail -n 20 "$DIR/log/apt.log" >&2
      die "apt-get install slurm-wlm munge failed"
    }
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_config() {
  local node_line auth
  # The node as slurmd sees it (CPUs, sockets, cores, threads, memory), so that the
  # configuration never claims more than the machine has (the node would be drained).
  node_line=$(slurmd -C 2>/dev/null | grep '^NodeName=' | head -n 1)
  [ -n "$node_line" ] || die "slurmd -C printed no NodeName line"
  node_line=$(sed -e "s/^NodeName=[^ ]*/NodeName=$NODE/" <<<"$node_line")
  case "$AUTH" in
    munge)
      auth="AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/run/munge.socket,cred_expire=10"
      ;;
    none)
      auth="AuthType=auth/none
CredType=cred/none
AuthInfo=cred_expire=10"
      ;;
    *) die "CAMBOX_SLURM_AUTH=$AUTH: munge or none" ;;
  esac
  local tracking
  case "$CGROUP" in
    no)
      tracking="# No cgroups: processes are tracked through their parent process ids, tasks are not
# bound or confined (see scripts/slurm/README.md).
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectTypeParameters=CR_Core"
      rm -f "$DIR/etc/cgroup.conf"
      ;;
    v1)
      tracking="# cgroup v1: processes tracked by cgroup (freezer), tasks confined to their cores
# (cpuset) and memory (memory); see cgroup.conf.
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
SelectTypeParameters=CR_Core_Memory"
      printf '%s\n' "CgroupPlugin=cgroup/v1" "CgroupMountpoint=/sys/fs/cgroup" "ConstrainCores=yes" \
        "ConstrainRAMSpace=yes" >"$DIR/etc/cgroup.conf"
      ;;
    *) die "CAMBOX_SLURM_CGROUP=$CGROUP: no or v1" ;;
  esac
  cat >"$CONF" <<EOF
# Written by scripts/slurm/local-cluster.sh: a one-node cluster on $NODE for tests.
ClusterName=cambox-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
$auth
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
$tracking
JobAcctGatherType=jobacct_gather/none
# No slurmdbd: no accounting database. Finished jobs go to a text file that
# \`sacct --completion\` reads; \`scontrol show job\` keeps them for MinJobAge seconds.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
MinJobAge=900
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=1
SelectType=select/cons_tres
ReturnToService=2
KillWait=15
MpiDefault=none
SwitchType=switch/none
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  [ "$AUTH" = munge ] || return 0
  local m="$DIR/munge"
  if alive "$m/run/munged.pid"; then
    return 0
  fi
  # munged checks permissions: its key readable by it alone, its socket folder
  # searchable by all and writable by it alone.
  mkdir -p "$m/etc" "$m/run" "$m/lib"
  chown -R munge:munge "$m"
  chmod 755 "$m" "$m/run"
  chmod 700 "$m/etc" "$m/lib"
  if [ ! -s "$m/etc/munge.key" ]; then
    runuser -u munge -- mungekey --create --keyfile="$m/etc/munge.key" 2>/dev/null ||
      runuser -u munge -- sh -c "dd if=/dev/urandom bs=1 count=1024 of='$m/etc/munge.key' 2>/dev/null && chmod 600 '$m/etc/munge.key'"
  fi
  touch "$DIR/log/munged.log"
  chown munge:munge "$DIR/log/munged.log"
  runuser -u munge -- munged --socket="$m/run/munge.socket" --key-file="$m/etc/munge.key" \
    --pid-file="$m/run/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$m/lib/munged.seed" ||
    {
      show_logs
      die "munged did not start"
    }
  wait_for 10 "munged" sh -c "munge -n -S '$m/run/munge.socket' | unmunge -S '$m/run/munge.socket'" || {
    show_logs
    die "munge does not answer on $m/run/munge.socket"
  }
}

node_idle() { sinfo -h -n "$NODE" -o '%T' 2>/dev/null | grep -qx 'idle'; }

start() {
  [ "$(id -u)" = 0 ] || die "run me as root (the daemons run as root; munged as munge)"
  mkdir -p "$DIR"
  chmod 755 "$DIR"
  mkdir -p "$DIR/etc" "$DIR/log" "$DIR/run" "$DIR/state" "$DIR/spool"
  install_slurm
  if alive "$DIR/run/slurmctld.pid" && alive "$DIR/run/slurmd.pid" && node_idle; then
    say "already running (SLURM_CONF=$CONF)"
    return 0
  fi
  # A half-started or crashed cluster: stop what is left, then start afresh.
  stop_daemons quiet
  mkdir -p "$DIR/etc" "$DIR/log" "$DIR/run" "$DIR/state" "$DIR/spool"
  port_free "$PORT" || die "port $PORT is in use (another Slurm?); set CAMBOX_SLURM_PORT"
  port_free $((PORT + 1)) || die "port $((PORT + 1)) is in use; set CAMBOX_SLURM_PORT"
  write_config
  # A fresh cluster: the previous one's logs and job records go.
  rm -f "$DIR"/log/slurmctld.log "$DIR"/log/slurmd.log "$DIR"/log/jobcomp.txt "$DIR"/log/munged.log
  start_munge
  local t0=$SECONDS
  # -c: no saved state (a clean cluster each time); -i: ignore a stale state file.
  slurmctld -c -i -f "$CONF" || {
    show_logs
    die "slurmctld did not start"
  }
  wait_for 30 "slurmctld to answer" scontrol ping || {
    show_logs
    die "slurmctld does not answer"
  }
  slurmd -f "$CONF" || {
    show_logs
    die "slurmd did not start"
  }
  wait_for 60 "node $NODE to be idle" node_idle || {
    sinfo -N -l >&2 || true
    show_logs
    die "node $NODE never became idle"
  }
  say "Slurm is up in $((SECONDS - t0))s: node $NODE idle ($(sinfo -h -n "$NODE" -o '%c CPUs, %m MB')), auth/$AUTH, $(sed -n 's/^ProctrackType=//p' "$CONF"), SLURM_CONF=$CONF"
}

# The processes below PID (slurmstepd and the jobs it runs).
descendants() {
  local p
  for p in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    echo "$p"
    descendants "$p"
  done
}

stop_pid() { # PIDFILE NAME
  local f=$1 name=$2 pid
  alive "$f" || {
    rm -f "$f"
    return 0
  }
  pid=$(cat "$f")
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_for 15 "$name to exit" sh -c "! kill -0 $pid"; then
    say "$name (pid $pid) ignored SIGTERM: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

stop_daemons() {
  local quiet=${1:-} left=()
  if alive "$DIR/run/slurmctld.pid" && [ -f "$CONF" ]; then
    local jobs
    jobs=$(squeue -h -o '%A' 2>/dev/null | sort -u | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
      say "cancelling jobs: $jobs"
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      wait_for 30 "the jobs to end" sh -c '[ -z "$(squeue -h 2>/dev/null)" ]' || true
    fi
  fi
  if alive "$DIR/run/slurmd.pid"; then
    mapfile -t left < <(descendants "$(cat "$DIR/run/slurmd.pid")")
  fi
  stop_pid "$DIR/run/slurmd.pid" slurmd
  stop_pid "$DIR/run/slurmctld.pid" slurmctld
  # Job steps that outlived slurmd (there should be none once the jobs are cancelled).
  local p
  for p in "${left[@]}"; do
    kill -KILL "$p" 2>/dev/null || true
  done
  if [ -f "$DIR/munge/run/munged.pid" ]; then
    stop_pid "$DIR/munge/run/munged.pid" munged
  fi
  # The cgroups slurmd made (CAMBOX_SLURM_CGROUP=v1), once empty.
  local d
  for d in /sys/fs/cgroup/*/"slurm_$NODE"; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  [ -n "$quiet" ] || say "stopped"
}

stop() {
  [ -d "$DIR" ] || return 0
  stop_daemons
  rm -rf "${DIR:?}/state" "${DIR:?}/spool" "${DIR:?}/run" "${DIR:?}/munge/run" "${DIR:?}/etc"
}

status() {
  local f
  for f in "$DIR/munge/run/munged.pid" "$DIR/run/slurmctld.pid" "$DIR/run/slurmd.pid"; do
    if alive "$f"; then echo "$(basename "$f" .pid): running, pid $(cat "$f")"; else echo "$(basename "$f" .pid): not running"; fi
  done
  if alive "$DIR/run/slurmctld.pid"; then
    sinfo -N -l || true
    squeue || true
  fi
}

cambox_binary() {
  if [ -n "${CAMBOX:-}" ]; then
    realpath "$CAMBOX"
    return
  fi
  if [ ! -x "$root/target/release/cambox" ]; then
    say "building target/release/cambox"
    (cd "$root" && cargo build --release --quiet --bin cambox) >&2
  fi
  echo "$root/target/release/cambox"
}

run_test() {
  local status bin t1
  T_START=$SECONDS
  bin=$(cambox_binary)
  trap 'stop; say "total $((SECONDS - T_START))s"' EXIT
  start
  t1=$SECONDS
  set +e
  CAMBOX=$bin bash "$here/array_test.sh"
  status=$?
  set -e
  say "array test: exit $status, $((SECONDS - t1))s (Slurm start $((t1 - T_START))s)"
  if [ "$status" -ne 0 ]; then
    show_logs
  fi
  return "$status"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  logs) show_logs 2>&1 ;;
  clean)
    stop
    rm -rf "$DIR"
    ;;
  test) run_test ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
    exit 2
    ;;
esac
