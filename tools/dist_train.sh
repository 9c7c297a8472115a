#!/usr/bin/env bash
# Multi-process training through torchrun and mmengine's pytorch launcher (OpenMMLab style).
#   tools/dist_train.sh {pretrain|train_det|train_seg} CONFIG NPROC [tool args...]
# Several machines: set NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT on each (as for torchrun).
# On CPU the processes talk over gloo, on GPU over nccl.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 {pretrain|train_det|train_seg} CONFIG NPROC [args...]" >&2; exit 2
fi
TOOL=$1; CONFIG=$2; NPROC=$3; shift 3
case "$TOOL" in pretrain|train_det|train_seg) ;; *) echo "unknown tool '$TOOL' (pretrain, train_det, train_seg)" >&2; exit 2;; esac
DIR=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-$DIR/../.venv/bin/python}
[ -x "$PY" ] || PY=python
exec "$PY" -m torch.distributed.run \
  --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${MASTER_PORT:-29500}" \
  --nproc_per_node="$NPROC" "$DIR/$TOOL.py" "$CONFIG" --launcher pytorch "$@"
