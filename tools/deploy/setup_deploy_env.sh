#!/usr/bin/env bash
# Make the deployment environment `.venv-deploy/` (beside the main `.venv/`): the same pinned stack
# as the main environment plus mmdeploy, onnx, onnxruntime and protobuf (requirements/deploy.txt),
# then prove it works (tools/deploy/check_deploy_env.py: imports, the compatibility layer, a tiny
# detector exported with mmdeploy and run in ONNX Runtime).
#
#   bash tools/deploy/setup_deploy_env.sh
#   DEPLOY_VENV=/opt/venv-deploy bash tools/deploy/setup_deploy_env.sh
#   FORCE_REINSTALL=1 bash tools/deploy/setup_deploy_env.sh      # ignore both "already set up" stamps
#
# Why a second environment: mmdeploy 1.3.1 requires protobuf<=3.20.2; the main environment's onnx and
# onnxruntime need a newer one. Torch, torchvision and mmcv are the main environment's pins, installed
# by tools/setup_env.sh itself (called with VENV=.venv-deploy): torch from pip's cache / the package
# index, mmcv 2.1.0 from ../shared/wheels when there, else built from source exactly as for .venv.
#
# Idempotent: a second run on a ready machine re-checks both layers (tens of seconds).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEPLOY_VENV="${DEPLOY_VENV:-$ROOT/.venv-deploy}"
log() { printf '\033[1;34m[setup-deploy]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[setup-deploy] ERROR:\033[0m %s\n' "$*" >&2; exit 1; }

# 1. the pinned stack + dsnet_mm (editable), with tools/setup_env.sh's own stamp and check
log "step 1/3: the pinned stack in $DEPLOY_VENV (tools/setup_env.sh with VENV=${DEPLOY_VENV#$ROOT/})"
VENV="$DEPLOY_VENV" bash "$ROOT/tools/setup_env.sh" || die "tools/setup_env.sh failed for $DEPLOY_VENV (see above)"

VPY="$DEPLOY_VENV/bin/python"
PIP=("$VPY" -m pip --disable-pip-version-check)
STAMP="$DEPLOY_VENV/.dsnet_mm_deploy_stamp"
WANT="$(cat "$ROOT/tools/deploy/setup_deploy_env.sh" "$ROOT/requirements/deploy.txt" | sha256sum | cut -d' ' -f1)"

# 2. the deployment packages (pip leaves them alone when already at these versions)
if [[ -z "${FORCE_REINSTALL:-}" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  log "step 2/3: deployment packages already installed for these pins"
else
  rm -f "$STAMP"
  log "step 2/3: $(grep -vE '^\s*(#|$)' "$ROOT/requirements/deploy.txt" | sed 's/\s*#.*//' | tr '\n' ' ')"
  "${PIP[@]}" install -r "$ROOT/requirements/deploy.txt" \
    || die "installing requirements/deploy.txt failed (see above)"
fi

# 3. prove it
log "step 3/3: checking the deployment environment"
if ! "$VPY" "$ROOT/tools/deploy/check_deploy_env.py"; then
  rm -f "$STAMP"
  die "the deployment environment is installed but the check above failed; fix the part it names and re-run with FORCE_REINSTALL=1."
fi
echo "$WANT" > "$STAMP"
log "done: export with '${DEPLOY_VENV#$ROOT/}/bin/python tools/deploy/export_onnx.py ...' (docs/deployment.md)"
