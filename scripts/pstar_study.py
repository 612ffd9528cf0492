"""How much does each p* rule and agent lose on curves of several shapes (issue 11)?

    .venv/bin/python scripts/pstar_study.py                      # the full study (~30 min)
    .venv/bin/python scripts/pstar_study.py --seeds 20 --modes probe --rounds 6

Every agent runs whole controller episodes of GraspLoRA-v1 on the synthetic stand-ins of
`grasp_env.synthetic` (real probe semantics: absolute probes, unpruned start, L0 at the mask in
force), for every shape x optimum x noise mode x budget, and every p* rule is read from the
same episodes. Scores: regret (the true curve's excess at p* over its minimum, relative to its
range over [p_min, p_max]) and |p* - optimum|. In the `bias` mode the floor is the regret of
the exact argmin of the biased micro-dev curve, which no rule that sees only micro-dev losses
can beat on average. The `before` agent replays this package before issue 11: no stash, pruned
at p_init from the start, the reference GRPO update and the quadratic rule.

Noise modes (the real process's round-to-round shape change is about 5% of the curve's range
near its minimum: scripts/probe_curves.py, docs/BENCHMARKS.md):
- probe: fresh Gaussian noise on every evaluation, std 5% of the range;
- bias: a fixed smooth random function per seed (the same micro-dev rows every probe), std 5%;
- jitter: a fresh smooth random function after every training round, std 5%;
- paper: fresh noise 0.01 on a curve of range 0.06 (17%: PAPER.md's simulation setting).

Writes <out>.json (every cell) and <out>.md (the tables of docs/BENCHMARKS.md), and a PNG.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

from grasp_env.env import PSTAR_RULES
from grasp_env.synthetic import SHAPES, Curve, SyntheticProcess

MODES: dict[str, dict[str, float]] = {
    "probe": {"depth": 0.3, "noise": 0.015},
    "bias": {"depth": 0.3, "noise": 0.0, "bias": 0.02},
    "jitter": {"depth": 0.3, "noise": 0.0, "jitter": 0.02},
    "paper": {"depth": 0.06, "noise": 0.01},
}
"""Noise modes; a bias or jitter scale of 0.02 gives a function of std ~0.015 = 5% of 0.3."""
OPTIMA: tuple[float, ...] = (0.12, 0.30, 0.45, 0.60, 0.78)
AGENTS: tuple[str, ...] = ("grpo", "grpo-paper", "random", "before")
BAR_SHAPES = tuple(s for s in SHAPES if s != "kink")
"""Shapes the issue's bar covers; `kink` (a non-differentiable optimum) is reported apart."""


@dataclass(frozen=True)
class Args:
    """Regret of every p* rule and agent over the stand-in family."""

    seeds: int = 100
    """Episodes per cell (shape x optimum x mode x budget x agent)."""
    rounds: tuple[int, ...] = (15, 6)
    """Budgets in rounds (K = 10 optimizer steps each): the paper's 15 and a short 6."""
    modes: tuple[str, ...] = tuple(MODES)
    """Noise modes to run."""
    agents: tuple[str, ...] = AGENTS
    """Agents: grpo (default), grpo-paper (the reference update), random, before."""
    workers: int = 1
    """Processes (the machine has 2 cores; leave 1 when something else runs)."""
    out: Path = Path("docs/results/pstar_study")
    """Output stem: <out>.json, <out>.md, <out>.png."""
    report_only: bool = False
    """Rewrite <out>.md and <out>.png from an existing <out>.json without running anything."""


def episode(shape: str, optimum: float, seed: int, agent: str, rounds: int, mode: str) -> dict:
    """One controller episode; regret and error of every rule (and the floor in bias mode)."""
    from agents import make_agent
    from grasp_env.config import ExperimentConfig
    from grasp_env.env import ControllerConfig, GraspLoRAEnv

    curve = Curve(shape, optimum)
    before = agent == "before"
    process = SyntheticProcess(curve, semantics="no_stash" if before else "stash", **MODES[mode])
    start = "p_init" if before else "unpruned"
    controller = ControllerConfig(train_steps=rounds * 10, start=start)
    env = GraspLoRAEnv(process=process, controller=controller)
    paper = agent in ("grpo-paper", "before")
    name = "grpo" if agent.startswith("grpo") or before else agent
    config = ExperimentConfig.from_preset(method="paper" if paper else "default")
    result = make_agent(name, env, seed=seed, config=config).learn(seed=seed).result
    rules = ("quadratic", "best_reward", "last_committed") if before else PSTAR_RULES
    out = {}
    for rule in rules:
        p = result.learned_ratio_by_rule[rule]
        out[rule] = (curve.regret(p), abs(p - optimum))
    if MODES[mode].get("bias"):
        grid = curve.grid()
        out["floor"] = (curve.regret(curve.argmin_of(process.micro_dev_curve(grid))), 0.0)
    return out


def cell(task: tuple) -> dict:
    """Mean regret and mean |error| of every rule over the seeds of one cell."""
    shape, optimum, agent, rounds, mode, seeds = task
    runs = [episode(shape, optimum, s, agent, rounds, mode) for s in range(seeds)]
    return {
        "shape": shape,
        "optimum": optimum,
        "agent": agent,
        "rounds": rounds,
        "mode": mode,
        "regret": {k: float(np.mean([r[k][0] for r in runs])) for k in runs[0]},
        "error": {k: float(np.mean([r[k][1] for r in runs])) for k in runs[0]},
    }


def main(args: Args) -> None:
    """Run every cell, write JSON, markdown tables and a plot."""
    tasks = [
        (shape, opt, agent, rounds, mode, args.seeds)
        for mode in args.modes
        for rounds in args.rounds
        for agent in args.agents
        for shape in SHAPES
        for opt in OPTIMA
    ]
    if args.report_only:
        cells = json.loads(args.out.with_suffix(".json").read_text())["cells"]
        report(cells, args.out)
        return
    t0 = time.perf_counter()
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            cells = list(pool.map(cell, tasks, chunksize=4))
    else:
        cells = [cell(t) for t in tasks]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    config = {**vars(args), "out": str(args.out), "noise_modes": MODES, "optima": OPTIMA}
    payload = {"config": config, "seconds": time.perf_counter() - t0, "cells": cells}
    args.out.with_suffix(".json").write_text(json.dumps(payload, indent=1))
    report(cells, args.out)
    print(f"{payload['seconds']:.0f} s -> {args.out}.json/.md/.png")


def report(cells: list[dict], out: Path) -> None:
    """Write <out>.md (summary, then every table) and <out>.png; print the summary."""
    text = summary(cells) + tables(cells)
    out.with_suffix(".md").write_text(text)
    plot(cells, out.with_suffix(".png"))
    print(summary(cells))


def summary(cells: list[dict]) -> str:
    """One row per noise mode and budget: worst and mean cell regret per agent and rule.

    Worst = the largest per-cell mean regret over the bar's shapes and every optimum; in the
    bias mode also the largest excess over the floor. `kink` is reported apart.
    """
    columns = [
        ("grpo", "spline"),
        ("grpo", "quadratic"),
        ("grpo", "best_reward"),
        ("grpo", "last_committed"),
        ("grpo-paper", "spline"),
        ("random", "spline"),
        ("before", "quadratic"),
    ]
    lines = [
        "### Summary: mean regret (%) per cell, worst cell / mean over cells\n",
        "Cells: 5 shapes (kink apart) x 5 optima; agent: rule. Bias mode: worst excess over "
        "the floor in brackets.\n",
        "| noise, rounds | "
        + " | ".join(f"{a}: {r}" for a, r in columns)
        + " | grpo: spline on kink | floor (bias) |",
        "|---" * (len(columns) + 3) + "|",
    ]
    for mode in sorted({c["mode"] for c in cells}, key=list(MODES).index):
        for rounds in sorted({c["rounds"] for c in cells}, reverse=True):
            row = []
            for agent, rule in columns:
                sel = [
                    c
                    for c in cells
                    if (c["mode"], c["rounds"], c["agent"]) == (mode, rounds, agent)
                    and c["shape"] in BAR_SHAPES
                    and rule in c["regret"]
                ]
                if not sel:
                    row.append("")
                    continue
                vals = [c["regret"][rule] for c in sel]
                cell_text = f"{_pct(max(vals))} / {_pct(np.mean(vals))}"
                if "floor" in sel[0]["regret"]:
                    gap = max(c["regret"][rule] - c["regret"]["floor"] for c in sel)
                    cell_text += f" ({_pct(gap)})"
                row.append(cell_text)
            kink = [
                c["regret"]["spline"]
                for c in cells
                if (c["mode"], c["rounds"], c["agent"], c["shape"])
                == (mode, rounds, "grpo", "kink")
            ]
            floors = [
                c["regret"]["floor"]
                for c in cells
                if (c["mode"], c["rounds"], c["agent"]) == (mode, rounds, "grpo")
                and c["shape"] in BAR_SHAPES
                and "floor" in c["regret"]
            ]
            kink_text = f"{_pct(max(kink))} / {_pct(np.mean(kink))}" if kink else ""
            floor_text = f"{_pct(max(floors))} / {_pct(np.mean(floors))}" if floors else ""
            lines.append(
                f"| {mode}, {rounds} | " + " | ".join(row) + f" | {kink_text} | {floor_text} |"
            )
    return "\n".join(lines) + "\n"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def tables(cells: list[dict]) -> str:
    """Markdown: per mode and budget, worst-optimum mean regret per shape and rule."""
    lines: list[str] = []
    modes = sorted({c["mode"] for c in cells}, key=list(MODES).index)
    for mode in modes:
        for rounds in sorted({c["rounds"] for c in cells}, reverse=True):
            sel = [c for c in cells if c["mode"] == mode and c["rounds"] == rounds]
            agents = [a for a in AGENTS if any(c["agent"] == a for c in sel)]
            lines += [f"\n#### {mode} noise, {rounds} rounds\n"]
            lines += [
                "Mean regret (%) in the worst of the five optima (mean over optima in brackets); "
                "rule x agent.\n"
            ]
            columns = [
                (a, r) for a in agents for r in sel[[c["agent"] for c in sel].index(a)]["regret"]
            ]
            lines.append("| shape | " + " | ".join(f"{a}: {r}" for a, r in columns) + " |")
            lines.append("|---" * (len(columns) + 1) + "|")
            for shape in SHAPES:
                row = []
                for a, r in columns:
                    vals = [c["regret"][r] for c in sel if c["agent"] == a and c["shape"] == shape]
                    row.append(f"{_pct(max(vals))} ({_pct(np.mean(vals))})")
                lines.append(f"| {shape} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def plot(cells: list[dict], out: Path) -> None:
    """Regret per optimum for the default agent and rule, one panel per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = sorted({c["mode"] for c in cells}, key=list(MODES).index)
    fig, axes = plt.subplots(1, len(modes), figsize=(4 * len(modes), 3.4), squeeze=False)
    for ax, mode in zip(axes[0], modes, strict=True):
        for rounds, style in ((15, "-"), (6, ":")):
            for colour, shape in enumerate(SHAPES):
                sel = [
                    c
                    for c in cells
                    if c["mode"] == mode
                    and c["rounds"] == rounds
                    and c["agent"] == "grpo"
                    and c["shape"] == shape
                ]
                if not sel:
                    continue
                ys = [100 * c["regret"]["spline"] for c in sel]
                label = shape if rounds == 15 else None
                ax.plot(
                    [c["optimum"] for c in sel],
                    ys,
                    style,
                    color=f"C{colour}",
                    marker="o",
                    ms=3,
                    label=label,
                )
        ax.axhline(1, color="0.5", lw=0.8)
        ax.axhline(2, color="0.5", lw=0.8, ls=":")
        ax.set(title=f"{mode} noise", xlabel="optimum", ylabel="mean regret (%)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("default agent (grpo) and rule (spline): 15 rounds solid, 6 rounds dotted")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main(tyro.cli(Args))
