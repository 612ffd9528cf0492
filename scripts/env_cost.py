"""Measure what a controller round costs: one probe, one optimizer step, one whole round.

    .venv/bin/python scripts/env_cost.py --preset tiny --controller.train-steps 60
    .venv/bin/python scripts/env_cost.py --preset default --controller.train-steps 60

Runs one episode of GraspLoRA-v1 with the reference knobs (K=10, C=3, 16 micro-dev rows) and
uniformly random actions, timing each phase with perf_counter. Prints a markdown row for
docs/BENCHMARKS.md. Run it alone: a second heavy job on 2 cores distorts every number.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from grasp_env.config import ExperimentConfig
from grasp_env.runs.cli import experiment_of, parse


@dataclass(frozen=True)
class Args(ExperimentConfig):
    """Time the phases of a controller round.

    The experiment's flags choose the run; the budget is --controller.train-steps (e.g. 60 =
    6 rounds at K=10).
    """


def main(args: Args) -> None:
    """Run one timed episode and print the per-phase costs."""
    from grasp_env.env import GraspLoRAEnv
    from grasp_env.lm.pipeline import prepare

    cfg = experiment_of(args)
    prep = prepare(cfg, progress=False, log=lambda _: None)
    env = GraspLoRAEnv(prepared=prep)
    proc = env.process
    timings: dict[str, list[float]] = {"probe": [], "train_step": [], "baseline": [], "commit": []}
    for name in ("probe", "baseline_loss", "commit", "train"):
        original = getattr(proc, name)

        def timed(*a, _f=original, _n=name, **kw):
            t = time.perf_counter()
            out = _f(*a, **kw)
            dt = time.perf_counter() - t
            if _n == "train":
                if a and a[0]:
                    timings["train_step"].append(dt / a[0])
            else:
                timings[{"baseline_loss": "baseline"}.get(_n, _n)].append(dt)
            return out

        setattr(proc, name, timed)
    rng = np.random.default_rng(cfg.seed)
    t0 = time.perf_counter()
    env.reset(seed=cfg.seed)
    done = False
    while not done:
        _, _, done, _, _ = env.step(rng.uniform(-1, 1, size=1).astype(np.float32))
    total = time.perf_counter() - t0
    rounds = len(env.history)
    probe = statistics.median(timings["probe"])
    step = statistics.median(timings["train_step"])
    base = statistics.median(timings["baseline"])
    k, c = env.config.update_interval, env.config.group_size
    round_cost = k * step + base + c * probe + statistics.median(timings["commit"])
    share = (base + c * probe) / round_cost
    print(
        f"| {cfg.preset} | {cfg.data.task} {cfg.data.target} | {probe * 1000:.0f} ms | "
        f"{step * 1000:.0f} ms | {probe / step:.1f} | {round_cost:.2f} s | {share:.0%} | "
        f"{rounds} rounds in {total:.1f} s |"
    )


if __name__ == "__main__":
    main(parse(Args)[0])
