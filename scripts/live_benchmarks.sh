#!/usr/bin/env bash
# The paper's table on the embedded default preset: for each of the four pairs, the 8-point
# grid, GRASP (default GRPO controller, the Thompson and amortised controllers, random
# proposals, and GRPO
# under --method paper) and the paper's baselines (zero-shot, source-only, target-only,
# merge without pruning, TIES, DARE linear/TIES, magnitude prune, LoRAHub), 3 seeds, on the
# same prepared adapters. Results: docs/results/live/<pair>/benchmark.json; then
# scripts/results_page.py turns them into docs/RESULTS.md.
# Resumable: a pair whose benchmark.json exists is skipped. Run it alone on the 2 cores.
#
#   [WORKERS=2] bash scripts/live_benchmarks.sh [OUT_DIR] [PAIR ...]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/results/live}
shift || true
PY=.venv/bin/python
PAIRS=("$@")
[ ${#PAIRS[@]} -gt 0 ] || PAIRS=(qa-ar qa-zh summarization-ar summarization-zh)
BASELINES=(zero_shot source_only target_only merged_no_prune ties dare_linear dare_ties
  magnitude_prune lorahub)

for pair in "${PAIRS[@]}"; do
  task=${pair%-*}; target=${pair##*-}
  if [ -f "$OUT/$pair/benchmark.json" ]; then echo "skip $pair"; continue; fi
  mkdir -p "$OUT/logs"
  echo "== $pair ($(date -u +%H:%M:%S))"
  $PY runners/benchmark.py --task "$task" --target "$target" --seeds 42 1337 9001 \
    --agents grpo thompson amortised random --paper-agents grpo --baselines "${BASELINES[@]}" \
    --workers "${WORKERS:-2}" --threads 1 --out-dir "$OUT" --run-name "$pair" --overwrite \
    > "$OUT/logs/$pair.out" 2> "$OUT/logs/$pair.err"
done
echo "done ($(date -u +%H:%M:%S))"
