#!/usr/bin/env bash
# Multi-process training through torchrun and mmengine's pytorch launcher (OpenMMLab style).
#   tools/dist_train.sh {pretrain|train_det|train_seg} CONFIG NPROC [tool args...]
# Several machines: set NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT on each (as for torchrun).
# On CPU the processes talk over gloo, on GPU over nccl. PYTHON=/path/to/python overrides .venv/bin/python.
# A wrong argument is one "error: ..." line on stderr and exit status 1, before any process starts.
set -euo pipefail
die() { echo "error: $*" >&2; exit 1; }
usage="usage: $0 {pretrain|train_det|train_seg} CONFIG NPROC [args...]"
[ $# -ge 3 ] || die "expected a tool, a config and a process count, got $# argument(s) ($usage)"
TOOL=$1; CONFIG=$2; NPROC=$3; shift 3
case "$TOOL" in pretrain|train_det|train_seg) ;; *) die "unknown tool '$TOOL'; expected pretrain, train_det or train_seg";; esac
[[ "$NPROC" =~ ^[0-9]+$ ]] && [ "$((10#$NPROC))" -ge 1 ] || die "NPROC '$NPROC': expected a positive integer (processes on this machine)"
[ -f "$CONFIG" ] || die "config file not found: $CONFIG"
for var in NNODES NODE_RANK MASTER_PORT; do
  val=${!var:-}
  [ -z "$val" ] || [[ "$val" =~ ^[0-9]+$ ]] || die "$var '$val': expected a non-negative integer"
done
[ "${NNODES:-1}" -ge 1 ] || die "NNODES '${NNODES}': expected a positive integer"
[ "${NODE_RANK:-0}" -lt "${NNODES:-1}" ] || die "NODE_RANK ${NODE_RANK} must be below NNODES ${NNODES:-1}"
DIR=$(cd "$(dirname "$0")" && pwd)
if [ -n "${PYTHON:-}" ]; then
  PY=$PYTHON
  command -v "$PY" >/dev/null 2>&1 || die "PYTHON '$PY' is not an executable"
else
  PY=$DIR/../.venv/bin/python
  [ -x "$PY" ] || die "no $DIR/../.venv/bin/python: run 'make setup' first (or set PYTHON=/path/to/python with torch installed)"
fi
"$PY" -c 'import torch.distributed.run' 2>/dev/null || die "$PY cannot import torch.distributed.run: run 'make setup' (or set PYTHON)"
# Every process reports a user error as one "error:" line (tool_boundary), and torchrun then prints its
# own traceback of the failed child: on stderr, keep the first "error:" line only and drop what follows
# it; the exit status is then 1, as for the tools run alone, not torchrun's. (stdout, the training log,
# passes untouched.)
{ "$PY" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${MASTER_PORT:-29500}" \
    --nproc_per_node="$((10#$NPROC))" "$DIR/$TOOL.py" "$CONFIG" --launcher pytorch "$@" 2>&1 1>&3 3>&- |
  awk '/^error: / { if (!user) { print; fflush() } user = 1; next }
       user { next }
       { print; fflush() }
       END { exit user }' >&2; } 3>&1
