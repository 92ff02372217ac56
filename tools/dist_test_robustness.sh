#!/usr/bin/env bash
# Robustness evaluation on several GPUs / nodes with torchrun (same numbers as one process):
#   bash tools/dist_test_robustness.sh CONFIG CHECKPOINT GPUS --suite coco-c --corrupted-root DIR --work-dir DIR
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=host0 PORT=29500 bash tools/dist_test_robustness.sh CONFIG CKPT 8 ...
set -euo pipefail
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
python -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$ROOT/tools/test_robustness.py" \
    "$CONFIG" "$CHECKPOINT" \
    --launcher pytorch "${@:4}"
