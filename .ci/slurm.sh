#!/usr/bin/env bash
# A single-node Slurm cluster for the scale-out tests (raygent-cli/tests/slurm.rs):
# installs slurm-wlm and munge from Debian, creates the munge key, writes
# slurm.conf for this host, starts munged, slurmctld and slurmd as root, and
# waits until sinfo shows the node idle. Safe to run again: what runs is kept.
set -euo pipefail

if ! command -v sbatch >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge
fi

# PyYAML parses `raygent k8s manifest` in raygent-cli/tests/shard.rs.
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet pyyaml

host=$(hostname)
cpus=$(nproc)

if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
conf=$(cat <<CONF
ClusterName=localcluster
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
)
if [ "$(cat /etc/slurm/slurm.conf 2>/dev/null)" != "$conf" ]; then
  printf '%s\n' "$conf" > /etc/slurm/slurm.conf
  restart=1
fi

# munged as the munge user (it refuses to run as root without --force).
if ! pgrep -x munged >/dev/null; then
  runuser -u munge -- munged --force 2>/dev/null || munged --force
fi
if [ "${restart:-0}" = 1 ]; then
  scontrol shutdown >/dev/null 2>&1 || true
  for _ in $(seq 1 50); do pgrep -x slurmctld >/dev/null || break; sleep 0.2; done
fi
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd

for _ in $(seq 1 120); do
  state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
  case "$state" in
    idle|mixed|allocated) echo "slurm: node $host is $state"; exit 0 ;;
    down*|drain*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
  esac
  sleep 0.5
done
echo "slurm: node $host did not become idle (sinfo: ${state:-nothing})" >&2
sinfo >&2 || true
exit 1
