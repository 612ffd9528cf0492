"""Fidelity of the surrogate's `real` family against held-out real probes (docs/SURROGATE.md).

    .venv/bin/python scripts/surrogate_fidelity.py                # seconds; needs the probe data
    .venv/bin/python scripts/surrogate_fidelity.py --json docs/results/surrogate_fidelity.json

The surrogate replays the probe curves of recorded runs (grasp_env/data/probe_curves.json,
scripts/probe_curves.py). Its train and test instances replay seeds 42 and 1337 only; seed
9001 of every pair is held out. For each pair, each surrogate run T (seed 42, 1337) and each
round of the held-out run H (seed 9001), at H's share of training:

- rank: Spearman correlation over the grid ratios in [p_min, p_max] between the surrogate's
  expected curve (T's micro-dev curve at that share) and H's measured micro-dev curve;
- argmin: |argmin of the surrogate's curve - argmin of H's curve| on [p_min, p_max];
- end: the same two between T's end curve (its last round's dev curve) and H's last-round dev
  curve.

Against the final runs (`final_run_rows`): the 8-point grids of the live benchmark
(docs/results/live/<pair>/benchmark.json) train one final run per ratio from the same
prepared state; their losses (`grasp_env.surrogate.FINAL_LOSS`, the test loss) are the curve
the final run meets, and the surrogate's true curve for a `real` instance on that state. For
each recorded run with a grid on the same prepared state (same fingerprint): the rank
correlation of the controller run's end curve (its last-round dev curve, the true curve
before 2026-12-07's sixth session) with the grid's losses, both argmins, and the final-run
regret (share of the grid's range) of the end curve's argmin, of the argmin of the mean of
every round's micro-dev curve (what a rule that weighs all rounds alike reads) and of each
single round's argmin (which round points the final run to its best ratio).

Reference rows put the numbers in scale: `H micro vs H dev` (how well H's own 16-row curve
ranks its 50-row curve at the same state: the measurement's ceiling) and `T vs T'` (the two
surrogate seeds against each other). Noise ratio: the surrogate's modelled measurement noise
(fresh noise, micro-dev bias and round jitter of its replay modes, as std in units of the end
curve's range) over the same quantity measured on H: the std of H's micro-dev minus dev curve
on the rounds that have both (bias plus noise) and the round-to-round jitter near the minimum.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

from grasp_env.config import DEFAULT_PAIRS
from grasp_env.runs.grid_rows import grid_curve
from grasp_env.surrogate import FINAL_LOSS

P_MIN, P_MAX = 0.1, 0.8
PAIRS = tuple(DEFAULT_PAIRS.values())


@dataclass(frozen=True)
class Args:
    """Score the surrogate's replayed curves against the held-out seed's real probes."""

    data: Path = Path("grasp_env/data/probe_curves.json")
    """The probe data (scripts/probe_curves.py)."""
    surrogate_seeds: tuple[int, ...] = (42, 1337)
    """Seeds the surrogate's instances replay."""
    held_out: int = 9001
    """The seed no instance replays."""
    json: Path | None = None
    """Also write the figures as JSON here."""
    plot: Path | None = None
    """Also draw each same-state run's end curve against its final runs here (PNG)."""
    live: Path = Path("docs/results/live")
    """The live benchmark's folder (<pair>/benchmark.json with the 8-point grids); the final-run
    comparison is skipped for a pair without one."""


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    value = spearmanr(a, b).statistic
    return float(value) if not math.isnan(value) else 0.0


def _run(bundle: dict, task: str, target: str, seed: int) -> dict:
    for run in bundle["runs"]:
        if (run["task"], run["target"], run["seed"]) == (task, target, seed):
            return run
    raise SystemExit(
        f"no probe run for {task} en->{target} seed {seed} in the data; fix: "
        f"scripts/probe_curves.py --pairs {task}-{target} --seeds {seed}"
    )


def _at(run: dict, share: float, key: str = "grid_losses") -> np.ndarray:
    """`run`'s curve of the round nearest `share` of its training (rounds that have `key`)."""
    rounds = [r for r in run["rounds"] if r.get(key) is not None]
    last = max(r["step"] for r in run["rounds"])
    best = min(rounds, key=lambda r: abs(r["step"] / last - share))
    return np.asarray(best[key], float)


def _compare(a: np.ndarray, b: np.ndarray, grid: np.ndarray) -> tuple[float, float]:
    inside = (grid >= P_MIN - 1e-9) & (grid <= P_MAX + 1e-9)
    g = grid[inside]
    return _spearman(a[inside], b[inside]), abs(
        float(g[np.argmin(a[inside])]) - float(g[np.argmin(b[inside])])
    )


def _noise_measured(run: dict, grid: np.ndarray) -> tuple[float, float]:
    """(std of micro - dev, round jitter near the minimum) in units of the end dev range."""
    inside = (grid >= P_MIN - 1e-9) & (grid <= P_MAX + 1e-9)
    end = np.asarray(run["rounds"][-1]["dev_grid_losses"], float)[inside]
    span = float(np.ptp(end))
    diffs = []
    for r in run["rounds"]:
        if r.get("dev_grid_losses") is None:
            continue
        d = np.asarray(r["grid_losses"], float)[inside] - np.asarray(r["dev_grid_losses"])[inside]
        diffs.append(d - d.mean())  # a level offset is no error for a ratio choice
    micro = np.array([np.asarray(r["grid_losses"], float)[inside] for r in run["rounds"]])
    centred = micro - micro.mean(axis=1, keepdims=True)
    shape = centred.mean(axis=0)
    low = shape - shape.min() <= 0.25 * np.ptp(shape)
    jitter = float((centred - shape)[:, low].std())
    return float(np.concatenate(diffs).std()) / span, jitter / span


def _noise_modelled() -> dict[str, float]:
    """Total modelled std of each replay mode (noise, bias, jitter add in quadrature)."""
    from grasp_env.surrogate import NOISE_MODES

    return {
        mode: math.sqrt(nz.noise**2 + nz.bias**2 + nz.jitter**2)
        for mode, nz in NOISE_MODES.items()
        if mode.startswith("replay")
    }


def _final_regret(final: np.ndarray, curve: np.ndarray) -> float:
    """The final runs' loss at `curve`'s argmin above their best, over their range."""
    return float(final[np.argmin(curve)] - final.min()) / float(np.ptp(final))


def cost_fit(ratios: np.ndarray, end: np.ndarray, final: np.ndarray) -> dict[str, float]:
    """Fit final = a + b x end + c x ratio by least squares: how the final runs' curve is made.

    `gamma` = (c / b) x (ratio range) / (end curve's range): the final run's capacity cost over
    the grid as a share of the end curve's range (`grasp_env.surrogate.FINAL_COST`); `r2` and
    `r2_end_only` (b x end alone) say how much the linear cost explains.
    """

    def r2(design: np.ndarray) -> tuple[float, np.ndarray]:
        coef, *_ = np.linalg.lstsq(design, final, rcond=None)
        resid = final - design @ coef
        return 1.0 - float(resid @ resid) / float(((final - final.mean()) ** 2).sum()), coef

    one = np.ones_like(ratios)
    full, coef = r2(np.column_stack([one, end, ratios]))
    end_only, _ = r2(np.column_stack([one, end]))
    gamma = coef[2] / coef[1] * float(np.ptp(ratios)) / float(np.ptp(end)) if coef[1] else math.nan
    return {
        "b": float(coef[1]),
        "c": float(coef[2]),
        "r2": full,
        "r2_end_only": end_only,
        "gamma": float(gamma),
    }


def final_run_rows(bundle: dict, live: Path) -> list[dict]:
    """Each recorded run's end curve against the final runs of the live grid (same state)."""
    grid = np.asarray(bundle["grid"], float)
    rows = []
    for run in bundle["runs"]:
        pair = f"{run['task']}-{run['target']}"
        path = live / pair / "benchmark.json"
        if not path.is_file():
            continue
        bench = json.loads(path.read_text())
        seeds = list(bench["config"]["seeds"])
        if run["seed"] not in seeds:
            continue
        k = seeds.index(run["seed"])
        ratios, final = grid_curve(bench["methods"]["grid"]["per_seed"][k], FINAL_LOSS)
        end = np.interp(ratios, grid, _at(run, 1.0, "dev_grid_losses"))
        micro = np.array([np.asarray(r["grid_losses"], float) for r in run["rounds"]])
        mean = np.interp(ratios, grid, (micro - micro.mean(axis=1, keepdims=True)).mean(axis=0))
        rows.append(
            {
                "pair": pair,
                "seed": run["seed"],
                "same_state": run["fingerprint"] == bench["fingerprints"][k],
                "rank_end_vs_final": _spearman(end, final),
                "argmin_end": float(ratios[np.argmin(end)]),
                "argmin_final": float(ratios[np.argmin(final)]),
                "final_range": float(np.ptp(final)),
                "curves": {
                    "ratios": ratios.tolist(),
                    "final": final.tolist(),
                    "end": end.tolist(),
                    "all_rounds": mean.tolist(),
                },
                "regret_end_argmin": _final_regret(final, end),
                "regret_all_rounds_argmin": _final_regret(final, mean),
                "cost_fit": cost_fit(ratios, end, final),
                "regret_by_round": [
                    _final_regret(final, np.interp(ratios, grid, m)) for m in micro
                ],
            }
        )
    return rows


def _cost_lines(same: list[dict]) -> list[str]:
    """The fit final = a + b x end + c x ratio per same-state run (`cost_fit`)."""
    lines = [
        "",
        "The final runs' curve as the end curve plus a linear capacity cost (final = a + b x end "
        "+ c x ratio; gamma = the cost over [0.1, 0.8] as a share of the end curve's range):",
        "",
        "| pair | seed | b | c (nats per unit ratio) | R^2 | R^2 without the cost | gamma |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in same:
        f = r["cost_fit"]
        lines.append(
            f"| {r['pair']} | {r['seed']} | {f['b']:.3f} | {f['c']:.3f} | {f['r2']:.3f} | "
            f"{f['r2_end_only']:.3f} | {f['gamma']:.2f} |"
        )
    summ = [r["cost_fit"]["gamma"] for r in same if "summ" in r["pair"]]
    if summ:
        lines.append(f"| summarisation, median of {len(summ)} | | | | | | {np.median(summ):.2f} |")
    return lines


def _by_round_lines(same: list[dict]) -> list[str]:
    """Which round's micro-dev curve points the final run to its best ratio (same-state runs)."""
    rounds = min(len(r["regret_by_round"]) for r in same)
    per = np.array([r["regret_by_round"][:rounds] for r in same])
    summ = np.array([r["regret_by_round"][:rounds] for r in same if "summ" in r["pair"]])
    head = " | ".join(str(t + 1) for t in range(rounds))
    lines = [
        "",
        "Final-run regret (%) of the argmin of each round's micro-dev curve alone (mean over the "
        "same-state runs; the last row: summarisation only):",
        "",
        f"| runs | {head} |",
        "|---|" + "---|" * rounds,
        f"| all {len(per)} | " + " | ".join(f"{100 * v:.1f}" for v in per.mean(axis=0)) + " |",
    ]
    if len(summ):
        lines.append(
            f"| summarisation {len(summ)} | "
            + " | ".join(f"{100 * v:.1f}" for v in summ.mean(axis=0))
            + " |"
        )
    return lines


def plot_final_runs(rows: list[dict], out: Path) -> None:
    """One panel per same-state run: end curve, all-rounds mean and final runs, each scaled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    same = [r for r in rows if r["same_state"]]
    cols = 4
    fig, axes = plt.subplots(
        -(-len(same) // cols), cols, figsize=(3.6 * cols, 2.8 * -(-len(same) // cols))
    )
    for ax, r in zip(np.ravel(axes), same, strict=False):
        c = r["curves"]
        for key, label, style in (
            ("final", f"final runs (grid {FINAL_LOSS.replace('_', ' ')})", "k-o"),
            ("end", "controller run's end curve", "C1-"),
            ("all_rounds", "mean of every round's curve", "C0--"),
        ):
            y = np.asarray(c[key], float)
            ax.plot(
                c["ratios"], (y - y.min()) / max(float(np.ptp(y)), 1e-12), style, ms=3, label=label
            )
        ax.set_title(f"{r['pair']} seed {r['seed']}", fontsize=9)
        ax.set_xlabel("prune ratio", fontsize=8)
    for ax in np.ravel(axes)[len(same) :]:
        ax.axis("off")
    np.ravel(axes)[0].set_ylabel("loss, scaled to [0, 1]", fontsize=8)
    np.ravel(axes)[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(args: Args) -> int:
    """Print the fidelity tables (markdown) and optionally write JSON."""
    bundle = json.loads(args.data.read_text())
    grid = np.asarray(bundle["grid"], float)
    out: dict = {"data": str(args.data), "held_out": args.held_out, "pairs": {}}
    lines = [
        f"Held-out seed {args.held_out}; surrogate seeds {list(args.surrogate_seeds)}; "
        f"grid {grid[0]:.2f}..{grid[-1]:.2f} step {grid[1] - grid[0]:.2f}; "
        f"scored on [{P_MIN}, {P_MAX}].",
        "",
        "| pair | comparison | rank corr. per round (mean, min) | argmin distance per round "
        "(mean, max) | end: rank corr. | end: argmin distance |",
        "|---|---|---|---|---|---|",
    ]
    for task, target in PAIRS:
        pair = f"{task}-{target}"
        held = _run(bundle, task, target, args.held_out)
        last = max(r["step"] for r in held["rounds"])
        shares = [r["step"] / last for r in held["rounds"]]
        rows: dict[str, dict] = {}
        sources = {f"seed {s}": _run(bundle, task, target, s) for s in args.surrogate_seeds}
        for name, run in sources.items():
            per = [
                _compare(_at(run, u), np.asarray(h["grid_losses"], float), grid)
                for u, h in zip(shares, held["rounds"], strict=True)
            ]
            end = _compare(
                _at(run, 1.0, "dev_grid_losses"), _at(held, 1.0, "dev_grid_losses"), grid
            )
            rows[f"surrogate ({name}) vs H"] = {"per_round": per, "end": end}
        ceiling = [
            _compare(np.asarray(h["grid_losses"]), np.asarray(h["dev_grid_losses"]), grid)
            for h in held["rounds"]
            if h.get("dev_grid_losses") is not None
        ]
        rows["H micro vs H dev (ceiling)"] = {"per_round": ceiling, "end": ceiling[-1]}
        if len(sources) >= 2:  # the two replayed seeds against each other
            a, b = list(sources.values())[:2]
            shares_a = [r["step"] / max(x["step"] for x in a["rounds"]) for r in a["rounds"]]
            rows["seed vs seed (surrogate pair)"] = {
                "per_round": [
                    _compare(_at(b, u), np.asarray(r["grid_losses"], float), grid)
                    for u, r in zip(shares_a, a["rounds"], strict=True)
                ],
                "end": _compare(
                    _at(a, 1.0, "dev_grid_losses"), _at(b, 1.0, "dev_grid_losses"), grid
                ),
            }
        for name, row in rows.items():
            rho = [p[0] for p in row["per_round"]]
            dist = [p[1] for p in row["per_round"]]
            lines.append(
                f"| {pair} | {name} | {np.mean(rho):.2f} ({min(rho):.2f}) | "
                f"{np.mean(dist):.3f} ({max(dist):.3f}) | {row['end'][0]:.2f} | "
                f"{row['end'][1]:.3f} |"
            )
        bias_noise, jitter = _noise_measured(held, grid)
        out["pairs"][pair] = {
            "rows": rows,
            "measured_micro_minus_dev_std": bias_noise,
            "measured_round_jitter": jitter,
        }
    modelled = _noise_modelled()
    lines += [
        "",
        "Noise (std in units of the end dev curve's range on [p_min, p_max]):",
        "",
        "| pair | measured: micro-dev minus dev (bias + noise) | measured: round jitter near "
        "the minimum | " + " | ".join(f"ratio {m} / measured" for m in modelled) + " |",
        "|---|---|---|" + "---|" * len(modelled),
    ]
    for pair, row in out["pairs"].items():
        measured = math.hypot(row["measured_micro_minus_dev_std"], row["measured_round_jitter"])
        ratios = " | ".join(f"{v / measured:.2f}" for v in modelled.values())
        lines.append(
            f"| {pair} | {row['measured_micro_minus_dev_std']:.3f} | "
            f"{row['measured_round_jitter']:.3f} | {ratios} |"
        )
    out["modelled"] = modelled
    final = final_run_rows(bundle, args.live)
    if final:
        lines += [
            "",
            f"The end curve against the final runs (the live grid's {FINAL_LOSS}, same "
            "prepared state, the surrogate's true curve for `real` instances; final-run regret "
            "in % of the grid's range):",
            "",
            "| pair | seed | same state | final runs' range (nats) | rank corr. end vs final "
            "runs | argmin: end curve | argmin: final runs | final-run regret of the end curve's "
            "argmin | of the all-rounds mean's argmin |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in final:
            lines.append(
                f"| {r['pair']} | {r['seed']} | {'yes' if r['same_state'] else 'no'} | "
                f"{r['final_range']:.3f} | {r['rank_end_vs_final']:.2f} | {r['argmin_end']:.1f} | "
                f"{r['argmin_final']:.1f} | {100 * r['regret_end_argmin']:.1f} | "
                f"{100 * r['regret_all_rounds_argmin']:.1f} |"
            )
        same = [r for r in final if r["same_state"]]
        if same:
            lines.append(
                f"| mean over the {len(same)} runs on the same state | | | | "
                f"{np.mean([r['rank_end_vs_final'] for r in same]):.2f} | | | "
                f"{100 * np.mean([r['regret_end_argmin'] for r in same]):.1f} | "
                f"{100 * np.mean([r['regret_all_rounds_argmin'] for r in same]):.1f} |"
            )
        if same:
            lines += _by_round_lines(same)
            lines += _cost_lines(same)
    out["final_runs"] = final
    if args.plot is not None and final:
        plot_final_runs(final, args.plot)
    print("\n".join(lines))
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(tyro.cli(Args)))
