#!/usr/bin/env bash
# Multi-GPU / multi-node testing with torchrun, as mmdet's dist_test.sh:
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py options]
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=host0 PORT=29500 bash tools/dist_test.sh CONFIG CKPT 8
set -euo pipefail
if [ $# -lt 3 ]; then echo "usage: bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py options]" >&2; exit 2; fi
TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$TOOLS/dist_launch.sh" "$3" "$TOOLS/test.py" "$1" "$2" --launcher pytorch "${@:4}"
