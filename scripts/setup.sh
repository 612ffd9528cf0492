#!/usr/bin/env bash
# Create .venv and install the project. torch==2.13.0 goes first: it is the CPU build that
# lies on the reference machine's disk; letting another package pick torch pulls a CUDA build.
# On a GPU machine, name the CUDA build's index (README "Run on a GPU"), e.g.
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  .venv/bin/python -m pip install -q "torch==2.13.0" --index-url "$TORCH_INDEX_URL"
else
  .venv/bin/python -m pip install -q "torch==2.13.0"
fi
# constraints.txt pins every dependency to the versions the recorded figures were measured
# with (another transformers rounds floats differently and trains other adapters);
# GRASP_UNPINNED=1 takes the newest releases pyproject.toml allows.
if [ "${GRASP_UNPINNED:-0}" = 1 ]; then
  .venv/bin/python -m pip install -q -e ".[dev]"
else
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[dev]"
fi
