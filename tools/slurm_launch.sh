#!/usr/bin/env bash
# srun for the slurm_*.sh tools (one task per GPU; mmengine reads rank, world size and the master
# address from Slurm's variables):
#   GPUS=16 GPUS_PER_NODE=8 bash tools/slurm_launch.sh PARTITION JOB_NAME SCRIPT [script arguments]
# CPUS_PER_TASK (5) and SRUN_ARGS (more srun options) as in mmdet's scripts.
set -euo pipefail
if [ $# -lt 3 ]; then echo "usage: bash tools/slurm_launch.sh PARTITION JOB_NAME SCRIPT [script arguments]" >&2; exit 2; fi
PARTITION=$1
JOB_NAME=$2
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# shellcheck disable=SC2086  # SRUN_ARGS is a list of options
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
exec srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    python -u "${@:3}"
