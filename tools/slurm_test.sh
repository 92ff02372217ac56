#!/usr/bin/env bash
# Testing on a Slurm cluster, as mmdet's slurm_test.sh:
#   GPUS=8 bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py options]
set -euo pipefail
if [ $# -lt 4 ]; then echo "usage: bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py options]" >&2; exit 2; fi
TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$TOOLS/slurm_launch.sh" "$1" "$2" "$TOOLS/test.py" "$3" "$4" --launcher=slurm "${@:5}"
