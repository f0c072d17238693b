# Sourced by tools/setup_env.sh, tools/quickstart.sh and tools/run_tests.sh (needs ROOT): which
# OpenMMLab stack to work on, its pins and its virtual environment.
#   STACK=upstream (default)  requirements/stacks/upstream.txt  .venv
#   STACK=onedl               requirements/stacks/onedl.txt     .venv-onedl
# VENV=/path overrides the environment (tools/check_env.py --stack tells which stack it holds).
STACK="${STACK:-upstream}"
STACK_PINS="$ROOT/requirements/stacks/$STACK.txt"
if [[ ! -f "$STACK_PINS" ]]; then
  echo "unknown STACK=$STACK: use one of: $(cd "$ROOT/requirements/stacks" && ls *.txt | sed 's/\.txt$//' | tr '\n' ' ')" >&2
  exit 2
fi
if [[ "$STACK" == upstream ]]; then VENV="${VENV:-$ROOT/.venv}"; else VENV="${VENV:-$ROOT/.venv-$STACK}"; fi
