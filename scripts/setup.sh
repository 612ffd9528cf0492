#!/usr/bin/env bash
# Create .venv and install the project. torch==2.13.0 goes first: it is the CPU build that
# lies on the reference machine's disk; letting another package pick torch pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev]"
