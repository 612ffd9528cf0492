#!/usr/bin/env bash
# Issue 15: each speed lever alone, then combined, against one 8-point grid per pair, 3 seeds.
# The grid and GRASP under the paper protocol first (two runs: controller, then a fresh final
# run at p*), then every lever with --grid-from (the same grid: its seconds are that run's).
# Every run is spread over 2 Ray workers of one thread each (--workers 2 --threads 1): grid
# points and GRASP runs are timed inside their tasks under the same conditions. The decoding
# lever changes the grid's cost too, so it gets its own grid ("-decode"), and the combinations
# that include it reuse that one. Resumable: a run whose benchmark.json exists is skipped.
# Run it alone (2 cores).
#
#   bash scripts/speed_levers.sh [OUT_DIR] [PAIR ...]     # PAIR: qa-ar qa-zh summarization-ar ...
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/results/speed}
shift || true
PAIRS=("$@")
[ ${#PAIRS[@]} -eq 0 ] && PAIRS=(qa-ar)
PY=.venv/bin/python
SEEDS=(42 1337 9001)

run() {  # run NAME ARGS...: skip when done
  local name=$1; shift
  if [ -f "$OUT/$name/benchmark.json" ]; then echo "skip $name"; return; fi
  mkdir -p "$OUT/logs"
  echo "== $name: $*"
  $PY runners/benchmark.py --out-dir "$OUT" --run-name "$name" --overwrite --seeds "${SEEDS[@]}" \
    --workers 2 --threads 1 "$@" > "$OUT/logs/$name.out" 2> "$OUT/logs/$name.err"
}

for pair in "${PAIRS[@]}"; do
  task=${pair%-*}; target=${pair#*-}; base="$task-en-$target"
  grid=(--task "$task" --target "$target" --agents grpo)
  from=(--grid-from "$OUT/$base/benchmark.json")
  run "$base" "${grid[@]}"
  run "$base-single" "${grid[@]}" "${from[@]}" --protocol single-pass
  run "$base-settle" "${grid[@]}" "${from[@]}" --settle-rounds 2
  run "$base-md8" "${grid[@]}" "${from[@]}" --micro-dev-size 8
  run "$base-fast" "${grid[@]}" "${from[@]}" --train-steps 60 --micro-dev-size 8
  run "$base-settle-single" "${grid[@]}" "${from[@]}" --settle-rounds 2 --protocol single-pass
  run "$base-fast-single" "${grid[@]}" "${from[@]}" --train-steps 60 --micro-dev-size 8 \
    --protocol single-pass
  decode=(--decode-batch-size 64 --decode-order length)
  run "$base-decode" "${grid[@]}" "${decode[@]}"
  from=(--grid-from "$OUT/$base-decode/benchmark.json")
  run "$base-decode-settle-single" "${grid[@]}" "${decode[@]}" "${from[@]}" --settle-rounds 2 \
    --protocol single-pass
  run "$base-decode-fast-single" "${grid[@]}" "${decode[@]}" "${from[@]}" --train-steps 60 \
    --micro-dev-size 8 --protocol single-pass
done
