#!/usr/bin/env bash
# Turn a fresh machine (Python 3.11; a GPU is optional) into a virtual environment with one
# OpenMMLab stack and dsnet_mm installed in editable mode, then prove the stack works.
#
#   bash tools/setup_env.sh                       # upstream OpenMMLab   -> .venv
#   STACK=onedl bash tools/setup_env.sh           # OneDL (VBTI's fork)  -> .venv-onedl
#   MMCV_WHEEL_DIR=/path/to/wheels bash tools/setup_env.sh   # ../shared/wheels/ is used when present
#   PYTHON=/usr/bin/python3.11 VENV=/opt/venv bash tools/setup_env.sh
#   MMCV_FROM_SOURCE=1 bash tools/setup_env.sh    # ignore ready wheels, build mmcv from the sdist
#   FORCE_REINSTALL=1 bash tools/setup_env.sh     # ignore the "already set up" stamp
#   KEEP_TORCH=1 VENV=/my/env bash tools/setup_env.sh   # keep the torch (e.g. a CUDA build) VENV has
#   CPU_ONLY=1 bash tools/setup_env.sh            # ignore an NVIDIA driver, train on the CPU
#
# Pins: requirements/stacks/$STACK.txt, the only place (used as pip constraints in every step below,
# and read by tools/check_env.py). GPU: with an NVIDIA driver, torch is a build the driver runs
# (tools/torch_cuda.py picks it) and the set-up stops, naming the fix, if torch cannot use the GPU.
# Idempotent: a second run on a ready machine only re-checks the stack (seconds).
# Nothing is installed outside the venv (pip's own download/wheel cache aside).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/tools/stack.sh"          # STACK, STACK_PINS, VENV
PYTHON="${PYTHON:-}"

log()  { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }
die()  { printf '\033[1;31m[setup] ERROR:\033[0m %s\n' "$*" >&2; exit 1; }

# the requirement line of a distribution (an extended regex of names) in the stack's pins
pin() {
  local line
  line="$(grep -E "^($1)[=<>!~]" "$STACK_PINS" | head -n1 | sed 's/[[:space:]]*#.*//')"
  [[ -n "$line" ]] || die "no pin for '$1' in $STACK_PINS"
  echo "$line"
}
TORCH_PIN="$(pin torch)"; TORCHVISION_PIN="$(pin torchvision)"
MMCV_PIN="$(pin 'mmcv|onedl-mmcv')"; MIM_PIN="$(pin 'openmim|onedl-mim')"
TORCH_VERSION="${TORCH_PIN##*=}"; TORCHVISION_VERSION="${TORCHVISION_PIN##*=}"
MMCV_NAME="${MMCV_PIN%%[=<>!~]*}"; MMCV_VERSION="${MMCV_PIN##*=}"

# ---------------------------------------------------------------- python + venv
if [[ -z "$PYTHON" ]]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1; then PYTHON="$(command -v "$cand")"; break; fi
  done
fi
[[ -n "$PYTHON" ]] || die "no python3 found. Install Python 3.11 or set PYTHON=/path/to/python3.11."
PYVER="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[[ "$PYVER" == "3.11" ]] || log "warning: $PYTHON is Python $PYVER; the stacks are pinned and tested on 3.11 (the shared mmcv wheels only fit 3.11, so mmcv will be built from source)."

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating virtual environment $VENV ($PYTHON, Python $PYVER) for the $STACK stack"
  "$PYTHON" -m venv "$VENV" || die "could not create $VENV. On Debian/Ubuntu: apt-get install python3.11-venv"
fi
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip --disable-pip-version-check)

# The two stacks share import names (mmcv, mmengine, mmdet, ...): never mix them in one environment.
HAVE_STACK="$("$VPY" "$ROOT/tools/check_env.py" --stack 2>/dev/null || true)"
if [[ -n "$HAVE_STACK" && "$HAVE_STACK" != none && "$HAVE_STACK" != "$STACK" ]]; then
  die "$VENV holds the $HAVE_STACK stack, not $STACK: the two cannot share an environment (same import names). Use another VENV, or leave VENV unset: STACK=$STACK then uses its own (tools/stack.sh)."
fi

# ---------------------------------------------------------------- which torch build (GPU or not)
if [[ -n "${KEEP_TORCH:-}" ]]; then
  HAVE_TORCH="$("$VPY" -c 'import importlib.metadata as m, torch, torchvision; print(m.version("torch"), m.version("torchvision"))' 2>/dev/null)" \
    || die "KEEP_TORCH=1, but $VENV has no working torch + torchvision to keep."
  read -r have_torch have_tv <<< "$HAVE_TORCH"
  [[ "${have_torch%%+*}" == "$TORCH_VERSION" ]] \
    || die "KEEP_TORCH=1 keeps a build of torch $TORCH_VERSION (any CUDA variant: mmcv is built against it); $VENV has torch $have_torch. Install torch $TORCH_VERSION there, or drop KEEP_TORCH."
  TORCH_SPEC="torch===$have_torch"; TORCHVISION_SPEC="torchvision===$have_tv"; TORCH_INDEX=""
  log "KEEP_TORCH=1: keeping torch $have_torch and torchvision $have_tv"
elif [[ -n "${CPU_ONLY:-}" ]]; then
  TORCH_SPEC="$TORCH_PIN"; TORCHVISION_SPEC="$TORCHVISION_PIN"; TORCH_INDEX=""
else
  # prints TORCH_SPEC, TORCHVISION_SPEC, TORCH_INDEX, ... (or an error and `exit 3`)
  eval "$("$PYTHON" "$ROOT/tools/torch_cuda.py" plan "$TORCH_VERSION" "$TORCHVISION_VERSION")"
  [[ -n "${DRIVER_CUDA:-}" ]] && log "NVIDIA driver for CUDA $DRIVER_CUDA: torch built for CUDA $TORCH_CUDA ($TORCH_SPEC)"
fi

# Every pip call below is constrained by the stack's pins (torch: the build chosen above).
CONSTRAINTS="$VENV/dsnet_mm-constraints.txt"
{ grep -vE '^(torch|torchvision)[=<>!~]' "$STACK_PINS"; echo "$TORCH_SPEC"; echo "$TORCHVISION_SPEC"; } > "$CONSTRAINTS"

# The stamp records exactly what was installed; same inputs + a passing check = nothing to do.
STAMP="$VENV/.dsnet_mm_setup_stamp"
WANT="$(cat "$ROOT/tools/setup_env.sh" "$ROOT/tools/stack.sh" "$ROOT/tools/torch_cuda.py" "$CONSTRAINTS" \
          "$ROOT/requirements/"*.txt "$ROOT/setup.py" | sha256sum | cut -d' ' -f1) $PYVER ${CPU_ONLY:-}"
if [[ -z "${FORCE_REINSTALL:-}" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  log "environment $VENV already set up for the $STACK pins; checking the stack"
  if "$VPY" "$ROOT/tools/check_env.py" --expect "$STACK"; then exit 0; fi
  log "the check failed: reinstalling"
fi
rm -f "$STAMP"

# A new environment takes ~6 GB (torch with its CUDA libraries ~5 GB): say so before pip fails
# half-way with "No space left on device".
if ! "$VPY" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("torch") is None)' 2>/dev/null; then
  need_gb="${SETUP_MIN_FREE_GB:-7}"
  free_kb="$(df -Pk "$VENV" | awk 'NR == 2 {print $4}')"
  if [[ -n "$free_kb" ]] && (( free_kb < need_gb * 1024 * 1024 )); then
    die "$(awk -v k="$free_kb" 'BEGIN {printf "%.1f", k / 1048576}') GB free on the file system of $VENV; a new environment needs about $need_gb GB (torch with its CUDA libraries ~5 GB, and pip unpacks beside them). Free space there, or put the environment on another disk: VENV=/path/with/space bash tools/setup_env.sh"
  fi
fi

# ---------------------------------------------------------------- build tooling + torch
log "[1/5] pip, setuptools, wheel, packaging (as $(basename "$STACK_PINS") pins them: mmcv's build needs them)"
"${PIP[@]}" install -q -c "$CONSTRAINTS" --upgrade "pip>=23" setuptools wheel packaging

if [[ -n "${KEEP_TORCH:-}" ]]; then
  log "[2/5] torch: kept"
else
  log "[2/5] $TORCH_SPEC and $TORCHVISION_SPEC${TORCH_INDEX:+ from $TORCH_INDEX} (first run downloads ~3 GB)"
  "${PIP[@]}" install -c "$CONSTRAINTS" ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} "$TORCH_SPEC" "$TORCHVISION_SPEC"
fi
if [[ -z "${CPU_ONLY:-}" ]]; then
  # with an NVIDIA driver: stops (exit 3) with the driver's and torch's CUDA and the pip fix
  "$VPY" "$ROOT/tools/torch_cuda.py" verify
fi

# ---------------------------------------------------------------- mmcv with ops
if "$VPY" - "$MMCV_NAME" "$MMCV_VERSION" >/dev/null 2>&1 <<'EOF'
import importlib.metadata as md, sys
import mmcv, mmcv.ops  # noqa: E401  (mmcv.ops needs the compiled mmcv._ext)
assert md.version(sys.argv[1]) == sys.argv[2] == mmcv.__version__
EOF
then
  log "[3/5] $MMCV_NAME $MMCV_VERSION with ops already installed"
else
  WHEEL_DIRS=()
  if [[ -z "${MMCV_FROM_SOURCE:-}" ]]; then
    [[ -n "${MMCV_WHEEL_DIR:-}" ]] && WHEEL_DIRS+=("$MMCV_WHEEL_DIR")
    [[ -d "$ROOT/../shared/wheels" ]] && WHEEL_DIRS+=("$(cd "$ROOT/../shared/wheels" && pwd)")
  fi
  MMCV_WHEEL=""
  for d in "${WHEEL_DIRS[@]}"; do
    w="$(ls "$d/${MMCV_NAME//-/_}-$MMCV_VERSION-cp${PYVER/./}-"*.whl 2>/dev/null | head -n1 || true)"
    if [[ -n "$w" ]]; then MMCV_WHEEL="$w"; break; fi
  done
  # The shared wheels are CPU-only: on a CUDA machine build from source so the CUDA kernels exist.
  HAVE_CUDA=0
  if [[ -z "${CPU_ONLY:-}" ]] && command -v nvcc >/dev/null 2>&1 && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then HAVE_CUDA=1; fi
  if [[ -n "$MMCV_WHEEL" && "$HAVE_CUDA" == 0 ]]; then
    log "[3/5] $MMCV_NAME $MMCV_VERSION from the ready wheel $MMCV_WHEEL"
    "${PIP[@]}" install -c "$CONSTRAINTS" "$MMCV_WHEEL"
  else
    export MMCV_WITH_OPS=1
    if [[ "$HAVE_CUDA" == 1 ]]; then export FORCE_CUDA=1; log "GPU and nvcc found: building mmcv with CUDA ops (FORCE_CUDA=1)"; fi
    BUILD_LOG="$VENV/mmcv-build.log"
    log "[3/5] building $MMCV_PIN from source with ops: tens of minutes on 2 cores (pip caches the wheel,"
    log "      so this happens once per machine). Full log: $BUILD_LOG"
    # --no-build-isolation: build against the torch installed above, else mmcv silently skips its ops.
    "${PIP[@]}" install -c "$CONSTRAINTS" -v --no-build-isolation "$MMCV_PIN" >"$BUILD_LOG" 2>&1 &
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
log "[4/5] the $STACK stack ($(basename "$STACK_PINS")), pycocotools, test tools, mim's dependencies"
STACK_REQS="$VENV/dsnet_mm-stack-requirements.txt"
# everything the pins name except torch (installed above) and mim (no dependencies, below)
grep -vE '^(torch|torchvision|openmim|onedl-mim)[=<>!~]' "$STACK_PINS" > "$STACK_REQS"
"${PIP[@]}" install -c "$CONSTRAINTS" -r "$STACK_REQS" -r "$ROOT/requirements/runtime.txt" \
  -r "$ROOT/requirements/tests.txt" -r "$ROOT/requirements/mim.txt"
"${PIP[@]}" install -q -c "$CONSTRAINTS" --no-deps "$MIM_PIN"

log "[5/5] dsnet_mm in editable mode"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"

log "checking the stack"
"$VPY" "$ROOT/tools/check_env.py" --expect "$STACK" || die "the environment is installed but the check above failed; fix the part it names and re-run with FORCE_REINSTALL=1."
echo "$WANT" > "$STAMP"
log "done: activate with 'source ${VENV#$ROOT/}/bin/activate'"
