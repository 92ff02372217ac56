#!/usr/bin/env bash
# Training on a Slurm cluster, as mmdet's slurm_train.sh:
#   GPUS=16 GPUS_PER_NODE=8 bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py options]
set -euo pipefail
if [ $# -lt 4 ]; then echo "usage: bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py options]" >&2; exit 2; fi
TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$TOOLS/slurm_launch.sh" "$1" "$2" "$TOOLS/train.py" "$3" --work-dir="$4" --launcher=slurm "${@:5}"
