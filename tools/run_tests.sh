#!/usr/bin/env bash
# Run the test suite inside the project's venv (made by tools/setup_env.sh / tools/quickstart.sh).
#   bash tools/run_tests.sh               # everything, on CPU (CI: one OpenMP thread, ~10 min)
#   bash tools/run_tests.sh -m 'not slow' # without the real training / multi-process runs
#   bash tools/run_tests.sh -k backbone   # any pytest arguments (paths too: tests/test_env)
#   STACK=onedl bash tools/run_tests.sh   # in the OneDL environment (.venv-onedl)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/tools/stack.sh"          # STACK, VENV
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[tests] no environment at $VENV: run 'STACK=$STACK bash tools/setup_env.sh' (or tools/quickstart.sh) first" >&2
  exit 1
fi
cd "$ROOT"
exec "$VENV/bin/python" -m pytest "$@"   # pytest.ini: testpaths = tests
