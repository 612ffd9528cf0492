#!/usr/bin/env bash
# Issue 15: each speed lever alone, then combined, against an 8-point grid per pair, 3 seeds.
#
# QA en->ar (the lever study): the grid and GRASP under the paper protocol (two runs:
# controller, then a fresh final run at p*), then every lever alone with --grid-from that grid
# (its seconds are that run's). The decoding lever changes the grid's cost too, so it gets its
# own grid ("-decode", with GRASP under the paper protocol beside it), and the combinations
# reuse that one. The other pairs: the "-decode" grid with the paper protocol, then the
# combinations.
#
# Every run is spread over 2 Ray workers of one thread each (--workers 2 --threads 1): grid
# points and GRASP runs are timed inside their tasks under the same conditions. Resumable: a
# run whose benchmark.json exists is skipped. Run it alone (2 cores).
#
#   bash scripts/speed_levers.sh [OUT_DIR] [PAIR ...]   # PAIR: qa-ar qa-zh summarization-ar ...
#   LOGITS=1 bash scripts/speed_levers.sh               # then the logits lever (see the end)
#   PROBE=1 bash scripts/speed_levers.sh OUT -          # group probing (--controller.probe-batch group)
#   FINAL=1 bash scripts/speed_levers.sh OUT -          # the four-pair table, current code
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/results/speed}
shift || true
PAIRS=("$@")
[ ${#PAIRS[@]} -eq 0 ] && PAIRS=(qa-ar qa-zh summarization-ar summarization-zh)
[ "${PAIRS[*]}" = - ] && PAIRS=()  # only the blocks switched on below
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

for pair in ${PAIRS[@]+"${PAIRS[@]}"}; do
  task=${pair%-*}; target=${pair#*-}; base="$task-en-$target"
  grid=(--task "$task" --target "$target" --agents grpo)
  fast=(--controller.train-steps 60 --micro-dev-rows 8)
  single=(--final.protocol single-pass)
  if [ "$pair" = qa-ar ]; then  # every lever alone
    from=(--grid-from "$OUT/$base/benchmark.json")
    run "$base" "${grid[@]}"
    run "$base-single" "${grid[@]}" "${from[@]}" "${single[@]}"
    run "$base-settle" "${grid[@]}" "${from[@]}" --controller.settle-rounds 2
    run "$base-md8" "${grid[@]}" "${from[@]}" --micro-dev-rows 8
    run "$base-fast" "${grid[@]}" "${from[@]}" "${fast[@]}"
    run "$base-settle-single" "${grid[@]}" "${from[@]}" --controller.settle-rounds 2 "${single[@]}"
    run "$base-fast-single" "${grid[@]}" "${from[@]}" "${fast[@]}" "${single[@]}"
  fi
  decode=(--eval.decode-batch-size 64 --eval.decode-order length)
  from=(--grid-from "$OUT/$base-decode/benchmark.json")
  run "$base-decode" "${grid[@]}" "${decode[@]}"
  run "$base-decode-settle-single" "${grid[@]}" "${decode[@]}" "${from[@]}" --controller.settle-rounds 2 \
    "${single[@]}"
  run "$base-decode-fast-single" "${grid[@]}" "${decode[@]}" "${from[@]}" "${fast[@]}" \
    "${single[@]}"
  run "$base-decode-fast-single-c25" "${grid[@]}" "${decode[@]}" "${from[@]}" "${fast[@]}" \
    "${single[@]}" --final.continue-steps 25
  run "$base-decode-single" "${grid[@]}" "${decode[@]}" "${from[@]}" "${single[@]}"
done
# Logits at the target positions only (answer_loss, after commit "logits_to_keep"): it
# changes every run's training and evaluation cost, so the grid is run again with it.
if [ "${LOGITS:-0}" = 1 ]; then
  for pair in ${LOGITS_PAIRS:-qa-ar summarization-ar}; do
    task=${pair%-*}; target=${pair#*-}; base="$task-en-$target"
    grid=(--task "$task" --target "$target" --agents grpo)
    decode=(--eval.decode-batch-size 64 --eval.decode-order length)
    run "$base-logits" "${grid[@]}" "${decode[@]}"
    run "$base-logits-fast-single" "${grid[@]}" "${decode[@]}" \
      --grid-from "$OUT/$base-logits/benchmark.json" --controller.train-steps 60 --micro-dev-rows 8 \
      --final.protocol single-pass
  done
fi
# Group probing (--controller.probe-batch group: a round's candidates in shared forward passes) against
# one forward per candidate, both run now on the logits grid of QA en->ar (paper protocol).
if [ "${PROBE:-0}" = 1 ]; then
  grid=(--task qa --target ar --agents grpo --eval.decode-batch-size 64 --eval.decode-order length
    --grid-from "$OUT/qa-en-ar-logits/benchmark.json")
  run qa-en-ar-logits-probe-single "${grid[@]}" --controller.probe-batch single
  run qa-en-ar-logits-probe-group "${grid[@]}" --controller.probe-batch group
fi
# The four-pair table with every lever of the current code (decoding batch 64 longest first,
# logits at the target positions), all in one install: per pair the grid with GRASP under the
# paper protocol beside it, then the combinations on that grid.
if [ "${FINAL:-0}" = 1 ]; then
  for pair in ${FINAL_PAIRS:-qa-ar qa-zh summarization-ar summarization-zh}; do
    task=${pair%-*}; target=${pair#*-}; base="$task-en-$target"
    grid=(--task "$task" --target "$target" --agents grpo --eval.decode-batch-size 64
      --eval.decode-order length)
    from=(--grid-from "$OUT/$base/benchmark.json")
    fast=(--controller.train-steps 60 --micro-dev-rows 8)
    single=(--final.protocol single-pass)
    run "$base" "${grid[@]}"
    run "$base-single" "${grid[@]}" "${from[@]}" "${single[@]}"
    run "$base-settle-single" "${grid[@]}" "${from[@]}" --controller.settle-rounds 2 "${single[@]}"
    run "$base-fast-single" "${grid[@]}" "${from[@]}" "${fast[@]}" "${single[@]}"
    run "$base-fast-settle-single" "${grid[@]}" "${from[@]}" "${fast[@]}" --controller.settle-rounds 2 \
      "${single[@]}"
  done
fi
