#!/usr/bin/env bash
# Robustness evaluation on several GPUs / nodes with torchrun (same numbers as one process):
#   bash tools/dist_test_robustness.sh CONFIG CHECKPOINT GPUS --suite coco-c --corrupted-root DIR --work-dir DIR
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=host0 PORT=29500 bash tools/dist_test_robustness.sh CONFIG CKPT 8 ...
set -euo pipefail
if [ $# -lt 3 ]; then echo "usage: bash tools/dist_test_robustness.sh CONFIG CHECKPOINT GPUS [test_robustness.py options]" >&2; exit 2; fi
TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$TOOLS/dist_launch.sh" "$3" "$TOOLS/test_robustness.py" "$1" "$2" --launcher pytorch "${@:4}"
