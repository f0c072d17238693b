#!/usr/bin/env bash
# The README's first command: set up (or reuse) .venv, then run the main job on the embedded
# dataset. See README "Quick start".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
