"""Every p* rule of the live controller runs, scored on the same seed's grid of final runs.

    .venv/bin/python scripts/live_rule_check.py docs/results/live-cost --agent thompson

Why: a controller run records p* under every rule (`learned_ratio_by_rule`), but trains its
final run at one (the configured rule). The benchmark's 8-point grid trained one final run per
ratio on the same prepared state, so each rule's ratio can be scored on the grid's final-run
curve (test loss, PCHIP between grid ratios, as the surrogate's `real` instances are):
a paired comparison of the rules on the same probes without one final run per rule. The
configured rule's own final run is printed beside its interpolated value, which says how far
the interpolation is from a measured final run.

Per pair and seed: the ratio and interpolated test loss of every rule, the grid's dev-selected
point, and the agent's final run; then the paired difference of each rule, the grid's point,
the agent's measured final run and a fixed ratio (`--fixed`, no search at all) to `--baseline`
(mean +- s.e. over every pair and seed, nats; negative: the lower loss).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from grasp_env.runs.grid_rows import grid_curve
from grasp_env.surrogate import pchip, pchip_eval


def at(ratios: np.ndarray, losses: np.ndarray, ratio: float) -> float:
    """The grid's final-run test loss at `ratio` (PCHIP; held flat outside the grid)."""
    return float(pchip_eval(ratios, losses, pchip(ratios, losses), ratio))


def rows_of(bench: dict, agent: str) -> list[dict]:
    """One row per seed: every rule's ratio and interpolated loss, the grid's and the agent's."""
    grid, runs = bench["methods"]["grid"]["per_seed"], bench["methods"][agent]["per_seed"]
    out = []
    for seed, g, run in zip(bench["config"]["seeds"], grid, runs, strict=True):
        ratios, losses = grid_curve(g, "test_loss")
        rules = run["learned_ratio_by_rule"]
        out.append(
            {
                "seed": seed,
                "grid_ratio": g["ratio"],
                "grid_test_loss": g["test_loss"],
                "final_ratio": run["ratio"],
                "final_test_loss": run["test_loss"],
                "final_interpolated": at(ratios, losses, run["ratio"]),
                "rules": {r: (v, at(ratios, losses, v)) for r, v in rules.items()},
                "curve": (ratios, losses),
            }
        )
    return out


def main(argv: list[str] | None = None) -> None:
    """Print the per-seed table and the paired differences."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path, help="a folder of <pair>/benchmark.json")
    parser.add_argument("--agent", default="thompson")
    parser.add_argument("--baseline", default="spline", help="the rule the others are paired to")
    parser.add_argument(
        "--fixed", type=float, default=0.1, help="also pair a fixed ratio (a grid point: no search)"
    )
    args = parser.parse_args(argv)
    files = sorted(args.root.glob("*/benchmark.json"))
    if not files:
        raise SystemExit(
            f"no */benchmark.json under {args.root}; fix: give runners/benchmark.py's out-dir"
        )
    every: list[tuple[str, dict]] = []
    for f in files:
        bench = json.loads(f.read_text(encoding="utf-8"))
        if args.agent not in bench["methods"]:
            raise SystemExit(
                f"{f} has no agent {args.agent!r}; fix: --agent one of {list(bench['methods'])}"
            )
        every += [(f.parent.name, r) for r in rows_of(bench, args.agent)]
    rules = list(every[0][1]["rules"])
    print(
        "| pair | seed | grid (dev-selected) | final run: ratio, test loss (interpolated) | "
        + " | ".join(rules)
        + " |"
    )
    print("|---|---|---|---|" + "---|" * len(rules))
    for pair, r in every:
        cells = " | ".join(f"{v:.2f}: {loss:.4f}" for v, loss in r["rules"].values())
        print(
            f"| {pair} | {r['seed']} | {r['grid_ratio']:.1f}: {r['grid_test_loss']:.4f} | "
            f"{r['final_ratio']:.2f}: {r['final_test_loss']:.4f} ({r['final_interpolated']:.4f}) "
            f"| {cells} |"
        )
    print()
    print(f"Paired against `{args.baseline}` (interpolated test loss, nats; n = {len(every)}):")
    print()
    base = np.array([r["rules"][args.baseline][1] for _, r in every])
    grid = np.array([r["grid_test_loss"] for _, r in every])
    for name, values in [
        *((rule, np.array([r["rules"][rule][1] for _, r in every])) for rule in rules),
        ("grid's dev-selected point (measured)", grid),
        ("the agent's final run (measured)", np.array([r["final_test_loss"] for _, r in every])),
        (f"fixed ratio {args.fixed:g}", np.array([at(*r["curve"], args.fixed) for _, r in every])),
    ]:
        diff = values - base
        se = diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else math.nan
        print(
            f"- {name}: {diff.mean():+.4f} ± {se:.4f} ({int((diff < 0).sum())} lower, "
            f"{int((diff > 0).sum())} higher)"
        )
    gap = np.array([r["final_test_loss"] - r["final_interpolated"] for _, r in every])
    print(
        f"- the agent's measured final run minus its interpolated value: {gap.mean():+.4f} "
        f"(mean), {np.abs(gap).max():.4f} (largest)"
    )


if __name__ == "__main__":
    main()
