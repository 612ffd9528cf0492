#!/usr/bin/env bash
# The GPU check (issue 13): run it whenever a CUDA machine is at hand; a few minutes.
#
#   bash scripts/gpu_check.sh                 # with .venv (a CUDA build of torch installed)
#   PYTHON=python3 bash scripts/gpu_check.sh  # with another environment
#
# What it runs, each on CUDA in bfloat16, each printing its times and peak memory:
#   1. the tiny preset's main job (builds its tiny backbone and adapters: seconds);
#   2. the default preset's main job (QA en->ar, seed 42; the first run builds the default
#      backbone and adapters, about a minute on a GPU), then the same run again warm;
#   3. the paper preset's --dry-run (what Llama-3-8B would need per device), nothing loaded;
#   4. with two or more GPUs: the tiny main job on 2 processes, ddp and fsdp (torchrun);
#   5. a controller round's probes on the default preset, one forward per candidate against
#      all candidates together (scripts/probe_cost.py: --controller.probe-batch single vs group).
# Runs go to $OUT (default runs/gpu-check); the summary (scripts/gpu_report.py) is printed
# and written to $OUT/gpu_check.md: paste it into docs/BENCHMARKS.md with the date and GPU.
# The CPU machine's figures for the same runs are in docs/BENCHMARKS.md ("GPU check").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-runs/gpu-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
"$PY" - <<'PY'
import torch
if not torch.cuda.is_available():
    raise SystemExit(
        "gpu_check: torch.cuda.is_available() is False (torch " + torch.__version__ + "); fix: "
        "run on a CUDA machine with a CUDA build of torch"
    )
print("torch", torch.__version__, "|", torch.cuda.device_count(), "x", torch.cuda.get_device_name(0))
PY
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
common=(--device cuda --dtype bfloat16 --out-dir "$OUT" --overwrite)
"$PY" runners/train_agent.py --preset tiny "${common[@]}" --run-name tiny
"$PY" runners/train_agent.py --preset default "${common[@]}" --run-name default-cold
"$PY" runners/train_agent.py --preset default "${common[@]}" --run-name default-warm
"$PY" runners/train_agent.py --preset paper --device cuda --dry-run > "$OUT/paper-dry-run.json"
gpus=$("$PY" -c "import torch; print(torch.cuda.device_count())")
if [ "$gpus" -ge 2 ]; then
  for strategy in ddp fsdp; do
    "$PY" -m torch.distributed.run --nproc_per_node 2 runners/train_agent.py --preset tiny \
      "${common[@]}" --strategy "$strategy" --run-name "tiny-2proc-$strategy"
  done
fi
"$PY" scripts/probe_cost.py --preset default --device cuda --dtype bfloat16 \
  --out "$OUT/probe_cost.json" > "$OUT/probe_cost.md"
"$PY" scripts/gpu_report.py "$OUT" | tee "$OUT/gpu_check.md"
cat "$OUT/probe_cost.md" | tee -a "$OUT/gpu_check.md"
