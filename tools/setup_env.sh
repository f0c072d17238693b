#!/usr/bin/env bash
# Turn a fresh machine (Python 3.11, no GPU needed) into a working `.venv/` with the pinned
# OpenMMLab stack and dsnet_mm installed in editable mode, then prove the stack works.
#
#   bash tools/setup_env.sh                       # uses ../shared/wheels/ for mmcv when present
#   MMCV_WHEEL_DIR=/path/to/wheels bash tools/setup_env.sh
#   PYTHON=/usr/bin/python3.11 VENV=/opt/venv bash tools/setup_env.sh
#   MMCV_FROM_SOURCE=1 bash tools/setup_env.sh    # ignore ready wheels, build mmcv from the sdist
#   FORCE_REINSTALL=1 bash tools/setup_env.sh     # ignore the "already set up" stamp
#
# Idempotent: a second run on a ready machine only re-checks the stack (seconds).
# Nothing is installed outside the venv (pip's own download/wheel cache aside).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-}"
TORCH_PIN="torch===2.13.0"          # '===': the index build; a local '2.13.0+cpu' breaks torchvision
TORCHVISION_PIN="torchvision==0.28.0"
MMCV_PIN="mmcv==2.1.0"
MIM_PIN="openmim==0.3.9"

log()  { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }
die()  { printf '\033[1;31m[setup] ERROR:\033[0m %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- python + venv
if [[ -z "$PYTHON" ]]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1; then PYTHON="$(command -v "$cand")"; break; fi
  done
fi
[[ -n "$PYTHON" ]] || die "no python3 found. Install Python 3.11 or set PYTHON=/path/to/python3.11."
PYVER="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[[ "$PYVER" == "3.11" ]] || log "warning: $PYTHON is Python $PYVER; the stack is pinned and tested on 3.11 (the shared mmcv wheel only fits 3.11, so mmcv will be built from source)."

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating virtual environment $VENV ($PYTHON, Python $PYVER)"
  "$PYTHON" -m venv "$VENV" || die "could not create $VENV. On Debian/Ubuntu: apt-get install python3.11-venv"
fi
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip --disable-pip-version-check)

# The stamp records exactly what was installed; same inputs + a passing check = nothing to do.
STAMP="$VENV/.dsnet_mm_setup_stamp"
stamp_inputs() {
  cat "$ROOT/tools/setup_env.sh" "$ROOT/requirements/"*.txt "$ROOT/setup.py"
  echo "$PYVER $TORCH_PIN $TORCHVISION_PIN $MMCV_PIN $MIM_PIN"
}
WANT="$(stamp_inputs | sha256sum | cut -d' ' -f1)"
if [[ -z "${FORCE_REINSTALL:-}" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  log "environment $VENV already set up for these pins; checking the stack"
  if "$VPY" "$ROOT/tools/check_env.py"; then exit 0; fi
  log "the check failed: reinstalling"
fi
rm -f "$STAMP"

# ---------------------------------------------------------------- build tooling + torch
log "[1/5] pip, setuptools<82 (mmcv, mmengine and mim still import pkg_resources), wheel"
"${PIP[@]}" install -q --upgrade "pip>=23" "setuptools<82" wheel

log "[2/5] $TORCH_PIN and $TORCHVISION_PIN (the package index build; first run downloads ~3 GB)"
"${PIP[@]}" install "$TORCH_PIN" "$TORCHVISION_PIN"

# ---------------------------------------------------------------- mmcv with ops
if "$VPY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" >/dev/null 2>&1; then
  log "[3/5] mmcv 2.1.0 with ops already installed"
else
  WHEEL_DIRS=()
  if [[ -z "${MMCV_FROM_SOURCE:-}" ]]; then
    [[ -n "${MMCV_WHEEL_DIR:-}" ]] && WHEEL_DIRS+=("$MMCV_WHEEL_DIR")
    [[ -d "$ROOT/../shared/wheels" ]] && WHEEL_DIRS+=("$(cd "$ROOT/../shared/wheels" && pwd)")
  fi
  MMCV_WHEEL=""
  for d in "${WHEEL_DIRS[@]}"; do
    w="$(ls "$d"/mmcv-2.1.0-cp${PYVER/./}-*.whl 2>/dev/null | head -n1 || true)"
    if [[ -n "$w" ]]; then MMCV_WHEEL="$w"; break; fi
  done
  # The shared wheel is CPU-only: on a CUDA machine build from source so the CUDA kernels exist.
  HAVE_CUDA=0
  if command -v nvcc >/dev/null 2>&1 && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then HAVE_CUDA=1; fi
  if [[ -n "$MMCV_WHEEL" && "$HAVE_CUDA" == 0 ]]; then
    log "[3/5] mmcv 2.1.0 from the ready wheel $MMCV_WHEEL"
    "${PIP[@]}" install "$MMCV_WHEEL"
  else
    export MMCV_WITH_OPS=1
    if [[ "$HAVE_CUDA" == 1 ]]; then export FORCE_CUDA=1; log "GPU and nvcc found: building mmcv with CUDA ops (FORCE_CUDA=1)"; fi
    BUILD_LOG="$VENV/mmcv-build.log"
    log "[3/5] building $MMCV_PIN from source with ops: tens of minutes on 2 cores (pip caches the wheel,"
    log "      so this happens once per machine). Full log: $BUILD_LOG"
    # --no-build-isolation: build against the torch installed above, else mmcv silently skips its ops.
    "${PIP[@]}" install -v --no-build-isolation "$MMCV_PIN" >"$BUILD_LOG" 2>&1 &
    pid=$!
    start=$SECONDS
    while kill -0 "$pid" 2>/dev/null; do
      sleep 30
      # ninja prints "[done/total] c++ ..." per source file
      n="$(grep -oE '^\s*\[[0-9]+/[0-9]+\]' "$BUILD_LOG" 2>/dev/null | tail -n1 | tr -d ' []' || true)"
      log "      mmcv build: $(( (SECONDS - start) / 60 )) min elapsed, ${n:-0/?} source files compiled"
    done
    wait "$pid" || { tail -n 40 "$BUILD_LOG" >&2; die "mmcv build failed (log above and in $BUILD_LOG). It needs gcc/g++ and the Python headers (apt-get install build-essential python3.11-dev)."; }
  fi
fi

# ---------------------------------------------------------------- OpenMMLab + tests + mim
log "[4/5] mmengine, mmdet, mmpretrain, mmsegmentation, pycocotools, test tools, openmim (no opendatalab)"
"${PIP[@]}" install -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt" -r "$ROOT/requirements/mim.txt" "$TORCH_PIN" "$TORCHVISION_PIN" "$MMCV_PIN"
"${PIP[@]}" install -q --no-deps "$MIM_PIN"

log "[5/5] dsnet_mm in editable mode"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"

log "checking the stack"
"$VPY" "$ROOT/tools/check_env.py" || die "the environment is installed but the check above failed; fix the part it names and re-run with FORCE_REINSTALL=1."
echo "$WANT" > "$STAMP"
log "done: activate with 'source ${VENV#$ROOT/}/bin/activate'"
