#!/usr/bin/env bash
# Training on a slurm cluster, as mmdet's tools/slurm_train.sh: srun starts one task per GPU,
# mmengine reads the rank / world size from slurm (--launcher slurm), mmdet's tools/train.py runs
# with dsnet_mm on the path.
#
#   GPUS=16 GPUS_PER_NODE=8 bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]
#   e.g. GPUS=8 bash tools/slurm_train.sh gpu dsnet_s configs/mask_rcnn_dsnet_s_fpn_1x_coco.py \
#            work_dirs/mask_rcnn_dsnet_s_fpn_1x_coco --resume
set -euo pipefail
set -x
if [[ $# -lt 4 ]]; then
  echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]" >&2
  exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi
TRAIN_PY=$("$PYTHON" -c "import os, mmdet; print(os.path.join(os.path.dirname(mmdet.__file__), '.mim', 'tools', 'train.py'))")

PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
srun -p "${PARTITION}" \
    --job-name="${JOB_NAME}" \
    --gres=gpu:"${GPUS_PER_NODE}" \
    --ntasks="${GPUS}" \
    --ntasks-per-node="${GPUS_PER_NODE}" \
    --cpus-per-task="${CPUS_PER_TASK}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    "$PYTHON" -u "$TRAIN_PY" "${CONFIG}" --work-dir="${WORK_DIR}" --launcher="slurm" "$@"
