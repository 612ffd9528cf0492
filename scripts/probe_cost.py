"""Time a controller round's probes one forward per candidate against all candidates together.

    .venv/bin/python scripts/probe_cost.py --preset default --threads 1 2
    .venv/bin/python scripts/probe_cost.py --preset default --device cuda --dtype bfloat16

On the real process of a preset (cached backbone and adapters; the first run builds them), the
merged adapter is trained 10 steps and committed at 0.4 as a controller run would be, then
`repeats` times, alternately: C candidates probed one by one (`LoraProcess.probe`, the
reference, --controller.probe-batch single) and the same C together (`LoraProcess.probe_group`,
--controller.probe-batch group). Prints one markdown row per thread count with the median
seconds of each, their ratio and the largest loss difference between the two paths; `--out`
also writes them as JSON. Run it alone: a second heavy job on 2 cores distorts every number. The GPU
check (`scripts/gpu_check.sh`) runs it on CUDA.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from grasp_env.config import ExperimentConfig
from grasp_env.runs.cli import experiment_of, parse


@dataclass(frozen=True)
class Args(ExperimentConfig):
    """Time one round's probes, single against group (the experiment's flags choose the run)."""

    ratios: tuple[float, ...] = (0.25, 0.4, 0.55)
    """The round's candidates (C of them)."""
    repeats: int = 7
    """Timed repetitions of each path (alternated)."""
    threads: tuple[int, ...] = (1,)
    """torch thread counts to measure (CPU)."""
    out: Path | None = None
    """Also write the rows as JSON here."""


def _timed(fn, sync) -> tuple[float, list[float]]:
    sync()
    start = time.perf_counter()
    losses = fn()
    sync()
    return time.perf_counter() - start, losses


def main(args: Args) -> None:
    """Build the process, time both paths per thread count, print the rows."""
    import torch

    from grasp_env.lm.pipeline import prepare
    from grasp_env.process import LoraProcess

    cfg = experiment_of(args)
    prep = prepare(cfg, progress=False, log=lambda _: None)
    proc = LoraProcess(prep)
    proc.reset(seed=0)
    proc.train(10)
    proc.commit(0.4)
    cuda = proc.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    ratios = list(args.ratios)
    rows = []
    for threads in args.threads if not cuda else (torch.get_num_threads(),):
        torch.set_num_threads(threads)
        proc.probe_group(ratios)  # warm-up: candidate adapters made, kernels chosen
        [proc.probe(r) for r in ratios]
        single, group, diff = [], [], 0.0
        for _ in range(args.repeats):
            t_single, l_single = _timed(lambda: [proc.probe(r) for r in ratios], sync)
            t_group, l_group = _timed(lambda: proc.probe_group(ratios), sync)
            single.append(t_single)
            group.append(t_group)
            diff = max(diff, *(abs(a - b) for a, b in zip(l_single, l_group, strict=True)))
        row = {
            "preset": cfg.preset,
            "task": cfg.data.task,
            "target": cfg.data.target,
            "device": str(proc.device),
            "dtype": prep.placement.dtype,
            "threads": threads,
            "candidates": len(ratios),
            "micro_dev_rows": cfg.data.micro_dev_rows,
            "single_s": statistics.median(single),
            "group_s": statistics.median(group),
            "max_loss_diff": diff,
        }
        row["single_over_group"] = row["single_s"] / row["group_s"]
        rows.append(row)
    proc.close()
    print(
        "| preset | task | device | dtype | threads | C x rows | single s | group s "
        "| single / group | largest loss difference |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['preset']} | {r['task']} {r['target']} | {r['device']} | {r['dtype']} "
            f"| {r['threads']} | {r['candidates']} x {r['micro_dev_rows']} "
            f"| {r['single_s']:.3f} | {r['group_s']:.3f} | {r['single_over_group']:.2f}x "
            f"| {r['max_loss_diff']:.1e} |"
        )
    if args.out is not None:
        from grasp_env.atomic import atomic_write_text

        atomic_write_text(args.out, json.dumps(rows, indent=2))


if __name__ == "__main__":
    main(parse(Args)[0])
