#!/usr/bin/env bash
# Multi-process training on one or more nodes (torchrun, --launcher pytorch), as mmdet's own
# tools/dist_train.sh, running mmdet's tools/train.py (shipped in the wheel) with dsnet_mm on
# the path. GPUs: one process per GPU (nccl). CPUs: gloo, set in the config
# (env_cfg.dist_cfg.backend='gloo', as configs/embedded/ does).
#
#   bash tools/dist_train.sh CONFIG NPROC [train.py args: --work-dir DIR --resume --amp
#                                           --cfg-options k=v ...]
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 PORT=29500 bash tools/dist_train.sh CONFIG 8
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 CONFIG NPROC [train.py args]" >&2
  exit 2
fi
CONFIG=$1
NPROC=$2
shift 2
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
TRAIN_PY=$("$PYTHON" -c "import os, mmdet; print(os.path.join(os.path.dirname(mmdet.__file__), '.mim', 'tools', 'train.py'))" 2>/dev/null)
# no thread oversubscription when several processes share the CPU cores
CORES=$(nproc 2>/dev/null || echo 1)
THREADS=$(( CORES / NPROC ))
if [[ $THREADS -lt 1 ]]; then THREADS=1; fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$THREADS}
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" \
    --master_port="$PORT" \
    "$TRAIN_PY" \
    "$CONFIG" \
    --launcher pytorch "$@"
