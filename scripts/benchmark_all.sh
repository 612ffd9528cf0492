#!/usr/bin/env bash
# GRASP against the 8-point grid on all four pairs of the default preset, 3 seeds: the paper
# protocol (150-step controller run, 16 micro-dev rows) with the grid, then the fast recipe
# (--controller.train-steps 60 --micro-dev-rows 8) on the same grids. Then, for QA en->ar and
# summarisation en->ar, the grid and GRASP again with the final-run mask built once
# (--final.rebuild-every 0, the package before issue 11) to measure the final-run change.
# Resumable: a pair whose benchmark.json exists is skipped. Run it alone (2 cores: about
# 80 minutes with the adapters cached).
#
#   GRASP_CACHE_DIR=... bash scripts/benchmark_all.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/results/benchmark-v1}
PY=.venv/bin/python
SEEDS=(42 1337 9001)
PAIRS=("qa ar qa-en-ar" "qa zh qa-en-zh" "summarization ar sum-en-ar" "summarization zh sum-en-zh")

run() {  # run NAME ARGS...: skip when done
  local name=$1; shift
  if [ -f "$OUT/$name/benchmark.json" ]; then echo "skip $name"; return; fi
  mkdir -p "$OUT/logs"
  echo "== $name: $*"
  $PY runners/benchmark.py --out-dir "$OUT" --run-name "$name" --overwrite --seeds "${SEEDS[@]}" \
    "$@" > "$OUT/logs/$name.out" 2> "$OUT/logs/$name.err"
}

for pair in "${PAIRS[@]}"; do
  set -- $pair
  run "$3" --task "$1" --target "$2" --agents grpo random
done
for pair in "${PAIRS[@]}"; do
  set -- $pair
  run "$3-fast" --task "$1" --target "$2" --agents grpo random --controller.train-steps 60 \
    --micro-dev-rows 8 --grid-from "$OUT/$3/benchmark.json"
done
for pair in "qa ar qa-en-ar" "summarization ar sum-en-ar"; do
  set -- $pair
  run "$3-mask-once" --task "$1" --target "$2" --agents grpo --final.rebuild-every 0
done
$PY scripts/benchmark_summary.py "$OUT"/*/benchmark.json --plot "$OUT/benchmark.png"
