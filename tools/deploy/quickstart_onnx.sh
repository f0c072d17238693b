#!/usr/bin/env bash
# The quick-start model deployed: export the quick start's trained checkpoint with mmdeploy, evaluate
# the ONNX model in ONNX Runtime on the held-out shapes val split, and print its box and mask AP next
# to PyTorch's. Run after tools/quickstart.sh (which trains the checkpoint and evaluates it in PyTorch);
# CI runs it through tools/deploy/ci_deploy.sh.
#
#   bash tools/deploy/quickstart_onnx.sh
#
# Environment: DEPLOY_MAX_AP_DIFF (default 0.02) is the largest |ONNX Runtime AP - PyTorch AP|, box
# and mask, that passes; above it the script exits 1.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
DEPLOY_VENV="${DEPLOY_VENV:-$ROOT/.venv-deploy}"
PY="$DEPLOY_VENV/bin/python"
CONFIG=configs/embedded/mask_rcnn_dsnet_t_fpn_shapes.py
DEPLOY_CFG=configs/deploy/instance-seg_onnxruntime_dynamic.py
WORK_DIR=work_dirs/mask_rcnn_dsnet_t_fpn_shapes
OUT=work_dirs/deploy/mask_rcnn_dsnet_t_fpn_shapes
MAX_DIFF="${DEPLOY_MAX_AP_DIFF:-0.02}"
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore}"
log() { echo "[deploy-quickstart $(date +%H:%M:%S)] $*"; }

[[ -x "$PY" ]] || { log "no deployment environment at $DEPLOY_VENV: run 'bash tools/deploy/setup_deploy_env.sh'"; exit 1; }
MAX_EPOCHS=$("$PY" -c "from mmengine.config import Config; print(Config.fromfile('$CONFIG').train_cfg.max_epochs)" 2>/dev/null | tail -n1)
CKPT="$WORK_DIR/epoch_${MAX_EPOCHS}.pth"
[[ -f "$CKPT" ]] || { log "no trained checkpoint $CKPT: run 'bash tools/quickstart.sh' first"; exit 1; }
[[ -d data/shapes ]] || "$PY" tools/dataset_converters/make_shapes_coco.py --out data/shapes

# PyTorch's AP: the quick start's own evaluation of this checkpoint, else evaluate it here
PT_JSON="$WORK_DIR/benchmark/benchmark.json"
if ! "$PY" -c "import json, os, sys; r = json.load(open('$PT_JSON'))['results'][0]; sys.exit(os.path.samefile(r['checkpoint'], '$CKPT') is False)" 2>/dev/null; then
  log "PyTorch: evaluating $CKPT (tools/benchmark_coco.py)"
  PT_JSON="$OUT/pytorch/benchmark.json"
  "$PY" tools/benchmark_coco.py --pair "$CONFIG" "$CKPT" --out-dir "$OUT/pytorch" --no-flops \
    --speed-images 0 2>&1 | grep -E "^\||ERROR" || true
fi

log "export: $CKPT -> $OUT/end2end.onnx (mmdeploy torch2onnx, $DEPLOY_CFG)"
"$PY" tools/deploy/export_onnx.py "$DEPLOY_CFG" "$CONFIG" "$CKPT" --work-dir "$OUT" 2>&1 \
  | grep -E "^\[(compat|export)\]|Error|Traceback" || true
[[ -f "$OUT/end2end.onnx" ]] || { log "the export failed"; exit 1; }

log "evaluate: ONNX Runtime on the held-out val split (mmdeploy test runner, CocoMetric)"
"$PY" tools/deploy/eval_onnx.py "$DEPLOY_CFG" "$CONFIG" "$OUT/end2end.onnx" --out-dir "$OUT/eval" \
  --speed-images 0 2>&1 | grep -E "^\[(compat|eval-onnx)\]|^\||Error|Traceback" || true

"$PY" - "$PT_JSON" "$OUT/eval/benchmark.json" "$MAX_DIFF" <<'EOF'
import json, sys
pt_path, ort_path, max_diff = sys.argv[1], sys.argv[2], float(sys.argv[3])
try:
    pt = json.load(open(pt_path))['results'][0]
    ort = json.load(open(ort_path))['results'][0]
except (OSError, IndexError, KeyError, ValueError) as e:
    print(f'[deploy-quickstart] an evaluation failed ({e}): see above')
    sys.exit(1)
print('\n================ deployed quick start: Mask R-CNN + DS-Net-T, ONNX Runtime vs PyTorch')
print('  held-out shapes val split, pycocotools          PyTorch   ONNX Runtime   difference')
ok = True
for task, name in (('bbox', 'box '), ('segm', 'mask')):
    for k, label in (('mAP', 'mAP '), ('mAP_50', 'AP50'), ('mAP_75', 'AP75')):
        a, b = pt[f'{task}_{k}'], ort[f'{task}_{k}']
        line = f'  {name} {label}                                       {a:.3f}     {b:.3f}         {b - a:+.3f}'
        if k == 'mAP':
            good = abs(b - a) <= max_diff
            ok &= good
            line += f'   ({"OK" if good else "FAILED"}: |diff| {"<=" if good else ">"} {max_diff})'
        print(line)
print(f'  checkpoint {pt["checkpoint"]}; ONNX {ort["checkpoint"]}')
print('================')
sys.exit(0 if ok else 1)
EOF
