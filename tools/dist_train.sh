#!/usr/bin/env bash
# Multi-GPU / multi-node training with torchrun, as mmdet's dist_train.sh:
#   bash tools/dist_train.sh CONFIG GPUS [train.py options]
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=host0 PORT=29500 bash tools/dist_train.sh CONFIG 8
set -euo pipefail
if [ $# -lt 2 ]; then echo "usage: bash tools/dist_train.sh CONFIG GPUS [train.py options]" >&2; exit 2; fi
TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$TOOLS/dist_launch.sh" "$2" "$TOOLS/train.py" "$1" --launcher pytorch "${@:3}"
