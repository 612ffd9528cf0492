#!/usr/bin/env bash
# Issue 3's benchmark: the widened grid (0.0 .. 0.8) for merged and pruned target-only arms,
# QA and summarisation, en->ar and en->zh, seeds 42 1337 9001, then one report per pair.
# Runs one job at a time (two at once on 2 cores slow both more than tenfold).
#   bash scripts/grid_benchmark.sh [OUT_DIR]      (default docs/results/grid: small JSON, committed)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/results/grid}
mkdir -p "$OUT/logs" docs/img
PAIRS=${PAIRS:-"qa:ar qa:zh summarization:ar summarization:zh"}
SEEDS=${SEEDS:-"42 1337 9001"}
for pair in $PAIRS; do
  task=${pair%%:*}; tgt=${pair##*:}
  for seed in $SEEDS; do
    name="grid-$task-en-$tgt-s$seed"
    [ -f "$OUT/$name/metrics.json" ] && continue
    .venv/bin/python runners/grid_search.py --preset default --task "$task" --target "$tgt" \
      --seed "$seed" --ratios 0 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 \
      --baselines target_only_pruned --out-dir "$OUT" --run-name "$name" --overwrite \
      2> "$OUT/logs/$name.err" | tee "$OUT/logs/$name.log"
  done
  dirs=$(for seed in $SEEDS; do echo "$OUT/grid-$task-en-$tgt-s$seed"; done)
  .venv/bin/python runners/grid_report.py $dirs --out "docs/img/grid-$task-en-$tgt.png" \
    > "docs/grid-$task-en-$tgt.md"
done
