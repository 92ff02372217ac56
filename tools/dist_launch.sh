#!/usr/bin/env bash
# torchrun for the dist_*.sh tools (one process per GPU; several nodes through the variables):
#   bash tools/dist_launch.sh GPUS SCRIPT [script arguments]
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=host0 PORT=29500 bash tools/dist_launch.sh 8 tools/train.py CONFIG ...
set -euo pipefail
if [ $# -lt 2 ]; then echo "usage: bash tools/dist_launch.sh GPUS SCRIPT [script arguments]" >&2; exit 2; fi
GPUS=$1
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
exec python -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "${@:2}"
