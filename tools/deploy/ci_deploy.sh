#!/usr/bin/env bash
# CI's deployment step (.ci/run, after the quick start and the main test suite):
#   1. tools/deploy/setup_deploy_env.sh   .venv-deploy with mmdeploy (idempotent), checked
#   2. tests/test_tools/test_deploy.py    mmdeploy -> ONNX -> ONNX Runtime == mmdeploy's PyTorch model
#   3. tools/deploy/quickstart_onnx.sh    the quick-start checkpoint in ONNX Runtime: AP vs PyTorch
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
DEPLOY_VENV="${DEPLOY_VENV:-$ROOT/.venv-deploy}"
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore}"
t=$SECONDS
bash tools/deploy/setup_deploy_env.sh
echo "[ci-deploy] deployment environment: $((SECONDS - t)) s"
t=$SECONDS
"$DEPLOY_VENV/bin/python" -m pytest tests/test_tools/test_deploy.py -p no:cacheprovider
echo "[ci-deploy] deployment tests: $((SECONDS - t)) s"
t=$SECONDS
bash tools/deploy/quickstart_onnx.sh
echo "[ci-deploy] quick-start model through ONNX Runtime: $((SECONDS - t)) s"
