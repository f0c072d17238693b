#!/usr/bin/env bash
# The README's first command: set up (or reuse) .venv, then run the quick start on the embedded
# dataset. See README "Quick start" and docs/quickstart.md.
#
#   1. tools/setup_env.sh                      pinned stack in .venv (idempotent)
#   2. make_shapes_coco.py                     data/shapes/ (skipped when present and valid)
#   3. mim train mmdet <config>                Mask R-CNN + DS-Net-T from scratch, mmengine runner
#                                              (resumes an interrupted run; skipped when finished)
#   4. tools/benchmark_coco.py                 mmdet test loop + CocoMetric (pycocotools) on the
#                                              held-out val split, params, FLOPs, images/s
#   5. quickstart_pictures.py                  mim test --show-dir (mmdet's DetLocalVisualizer):
#                                              predictions next to ground truth on held-out
#                                              images; mim run mmdet analyze_logs plot_curve:
#                                              losses and val mAP over the epochs (PNGs)
#   6. summary: box and mask AP, times, where the pictures are
#
# Environment: QUICKSTART_RETRAIN=1 trains again from scratch; QUICKSTART_MIN_BOX_AP (default 0.6)
# is the box mAP below which the run counts as failed (exit 1): training did not learn.
# STACK=onedl runs it on the OneDL stack (.venv-onedl); see tools/stack.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/tools/stack.sh"          # STACK, VENV
bash "$ROOT/tools/setup_env.sh"

cd "$ROOT"
PY="$VENV/bin/python"
MIM="$VENV/bin/mim"
MIM_MMDET="$("$PY" tools/check_env.py --mim-name mmdet)"   # `mmdet` upstream, `mmdetection` on OneDL
DEVICE="$("$PY" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")"
CONFIG=configs/embedded/mask_rcnn_dsnet_t_fpn_shapes.py
WORK_DIR=work_dirs/mask_rcnn_dsnet_t_fpn_shapes
MIN_BOX_AP="${QUICKSTART_MIN_BOX_AP:-0.6}"
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore}"   # pkg_resources / deprecation noise
export PATH="$VENV/bin:$PATH"                      # mim runs mmdet's tools with this python
export MPLBACKEND=Agg                              # pictures are written, never shown
log() { echo "[quickstart $(date +%H:%M:%S)] $*"; }
t_all=$SECONDS

# Threads: on a machine shared with other jobs, two OpenMP threads on two busy cores spin-wait
# on each other (measured: 15 s/iteration instead of 1.5 s with one thread at load 8). Use the
# cores that are idle now (sampled, not the load average that the set-up's pip keeps high for a
# minute), at least one; OMP_NUM_THREADS=N overrides.
if [[ -z "${OMP_NUM_THREADS:-}" ]]; then
  OMP_NUM_THREADS=$("$PY" tools/idle_cores.py --window 2)
  export OMP_NUM_THREADS
fi
log "$(getconf _NPROCESSORS_ONLN) cores, load $(cut -d' ' -f1 /proc/loadavg), OMP_NUM_THREADS=$OMP_NUM_THREADS"

log "step 1/4: embedded dataset (data/shapes)"
"$PY" tools/dataset_converters/make_shapes_coco.py --out data/shapes

MAX_EPOCHS=$("$PY" -c "from mmengine.config import Config; print(Config.fromfile('$CONFIG').train_cfg.max_epochs)" 2>/dev/null | tail -n1)
FINAL="$WORK_DIR/epoch_${MAX_EPOCHS}.pth"
if [[ "${QUICKSTART_RETRAIN:-0}" == 1 ]]; then
  log "QUICKSTART_RETRAIN=1: removing $WORK_DIR"
  rm -rf "$WORK_DIR"
fi
t_train=$SECONDS
if [[ -f "$FINAL" ]]; then
  log "step 2/4: training already finished ($FINAL); QUICKSTART_RETRAIN=1 trains again"
else
  RESUME=()
  if [[ -f "$WORK_DIR/last_checkpoint" ]]; then
    RESUME=(--resume)
    log "step 2/4: resuming the interrupted run from $(cat "$WORK_DIR/last_checkpoint")"
  else
    log "step 2/4: training Mask R-CNN + DS-Net-T from scratch, $MAX_EPOCHS epochs on $DEVICE" \
        "(10-15 min on one CPU core; progress every 10 iterations)"
  fi
  "$MIM" train "$MIM_MMDET" "$CONFIG" --work-dir "$WORK_DIR" "${RESUME[@]}" 2>&1 \
    | grep --line-buffered -E "Epoch\(|Saving checkpoint|resumed epoch|coco/|Error|Traceback|^  File|Exception|Killed|bbox_mAP|segm_mAP" \
    || true
  if [[ ! -f "$FINAL" ]]; then
    log "training did not produce $FINAL: see the log under $WORK_DIR/*/ (re-running this script resumes)"
    exit 1
  fi
fi
t_train=$((SECONDS - t_train))

log "step 3/4: evaluating $FINAL on the held-out val split (mmdet test loop, CocoMetric)"
t_eval=$SECONDS
"$PY" tools/benchmark_coco.py --pair "$CONFIG" "$FINAL" --out-dir "$WORK_DIR/benchmark" \
  --speed-images 50 2>&1 | grep --line-buffered -vE "^\s*$|mmengine - (INFO|WARNING)|pkg_resources|_bootstrap|index created|loading annotations|creating index|^Done \(t=|^backbone\.|never called during the trace" || true
t_eval=$((SECONDS - t_eval))

log "step 4/4: pictures (predictions next to ground truth, loss and val mAP curves)"
PICTURES="$WORK_DIR/pictures"
"$PY" tools/analysis_tools/quickstart_pictures.py "$CONFIG" "$FINAL" "$WORK_DIR" \
  --out-dir "$PICTURES" --num-images 6 --mim-name "$MIM_MMDET" > "$WORK_DIR/pictures.log" 2>&1 \
  || log "pictures failed (the AP below is unaffected): see $WORK_DIR/pictures.log"

"$PY" - "$WORK_DIR/benchmark/benchmark.json" "$MIN_BOX_AP" "$PICTURES" "$t_train" "$t_eval" "$((SECONDS - t_all))" <<'EOF'
import json, os, sys
path, min_ap, pictures = sys.argv[1], float(sys.argv[2]), sys.argv[3]
t_train, t_eval, t_all = map(int, sys.argv[4:])
res = json.load(open(path))
if not res['results']:
    print('[quickstart] evaluation failed:', res['failures'])
    sys.exit(1)
r = res['results'][0]
print('\n================ quick start: Mask R-CNN + DS-Net-T on the embedded shapes val split')
for task, name in (('bbox', 'box '), ('segm', 'mask')):
    print(f"  {name} mAP {r[task + '_mAP']:.3f}   AP50 {r[task + '_mAP_50']:.3f}   "
          f"AP75 {r[task + '_mAP_75']:.3f}   (pycocotools, held-out images)")
flops = f"{r['flops_G']:.2f} GFLOPs at {r['flops_input_hw'][1]}x{r['flops_input_hw'][0]}" \
    if r.get('flops_G') else 'FLOPs not counted'
speed = f"{r['images_per_s']:.1f} img/s" if r.get('images_per_s') else ''
print(f"  params {r['params_M']:.2f} M, {flops}, {speed} on {r['device']}")
print(f'  time: training {t_train // 60} min {t_train % 60} s, evaluation {t_eval} s, '
      f'whole quick start {t_all // 60} min {t_all % 60} s')
print(f'  checkpoint {r["checkpoint"]}; table {path[:-5]}.md')
for name, what in (('val_predictions.png', 'predictions (right) next to ground truth (left), held-out images'),
                   ('loss.png', 'training losses over the iterations'),
                   ('val_mAP.png', 'val box / mask mAP over the epochs')):
    p = os.path.join(pictures, name)
    print(f'  picture: {p}  ({what})' if os.path.isfile(p) else f'  picture missing: {p}')
ok = r['bbox_mAP'] >= min_ap
print(f"  box mAP {'>=' if ok else '<'} {min_ap} (QUICKSTART_MIN_BOX_AP): "
      f"{'OK' if ok else 'FAILED: the detector did not learn'}")
print('================')
sys.exit(0 if ok else 1)
EOF
