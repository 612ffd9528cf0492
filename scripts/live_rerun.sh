#!/usr/bin/env bash
# Re-run GRASP agents on the four live pairs against the stored grids of docs/results/live
# (same prepared backbone, adapters and splits: --grid-from checks every seed's fingerprint),
# so that a changed default controller is scored live before it becomes the default (issue 22,
# point 7) without re-training the 8-point grids. scripts/results_page.py folds
# docs/results/live-bracket/<pair>/benchmark.json into docs/RESULTS.md.
#
#   bash scripts/live_rerun.sh OUT_DIR [benchmark.py flags ...]
#   bash scripts/live_rerun.sh docs/results/live-bracket --agents thompson --thompson.bracket 2.5
#
# About 2 minutes a pair on 2 cores for one agent x 3 seeds (the prepared state is cached).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?give the output folder, e.g. docs/results/live-bracket}
shift
PY=.venv/bin/python
mkdir -p "$OUT/logs"
for pair in qa-ar qa-zh summarization-ar summarization-zh; do
  task=${pair%-*}; target=${pair##*-}
  echo "== $pair ($(date -u +%H:%M:%S))"
  $PY runners/benchmark.py --task "$task" --target "$target" --seeds 42 1337 9001 \
    --grid-from "docs/results/live/$pair/benchmark.json" --workers 2 --threads 1 \
    --out-dir "$OUT" --run-name "$pair" --overwrite "$@" \
    > "$OUT/logs/$pair.out" 2> "$OUT/logs/$pair.err"
done
echo "done ($(date -u +%H:%M:%S))"
