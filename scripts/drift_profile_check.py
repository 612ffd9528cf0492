"""How the probe curves move while the adapter trains, and which drift model reads them best.

    .venv/bin/python scripts/drift_profile_check.py --plot docs/img/drift-profile.png  # 5 s
    T="--agents thompson --instances train-final --seeds 10 --keep-probes --out /tmp/tv"
    nice -n 10 .venv/bin/python runners/agent_table.py $T                  # 90 s: stored probes
    .venv/bin/python scripts/drift_profile_check.py --probes /tmp/tv.json  # 80 s: re-read them

Why: the round-aware spline (`grasp_env.pstar.spline_posterior`) reads the LAST round's curve
through a drift term s(u) h(x). Until 2026-12-07's eighth session s was linear in the run
fraction u and h one direction; a window of the last 8 rounds halved the moving family's regret
but doubled the static families', which points at the drift's shape, not at how old rounds
are weighted. Two things are measured here, the first on data the package did not generate:

1. The live process's own movement (grasp_env/data/probe_curves.json, every grid ratio after
   every round, 4 pairs x 3 seeds): each round's centred curve projected on the whole run's
   change (first round minus last), s_r, and the rate k of the profile
   s(u) = expm1(-k u) / expm1(-k) - 1 that fits s_r best by least squares (k = 0: linear);
   REML's choice among `grasp_env.pstar.DRIFT_RATES` with one drift direction and with two.
2. With `--probes`: the regret of p* (with the final run's cost, as rule 'spline_recent_cost'
   reads) on an agent table's stored episodes, re-read under each drift model (order 1 or 2,
   linear only or the profile menu), per family, at each budget. The same probes for every
   model: the difference is the reading's alone.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from grasp_env.pstar import (
    DRIFT_RATES,
    FINAL_COST,
    Probes,
    drift_profile,
    spline_posterior,
    with_final_cost,
)
from grasp_env.runs.agent_table import stored_probes
from grasp_env.surrogate import instance_set

PROBE_DATA = Path(__file__).resolve().parents[1] / "grasp_env" / "data" / "probe_curves.json"
FIT_RATES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
"""Rates the least-squares fit of the live movement chooses from."""
MODELS = {
    "order 1, linear (before)": {"drift_orders": (1,), "drift_rates": (0.0,)},
    "order 1, profile menu (default)": {"drift_orders": (1,), "drift_rates": DRIFT_RATES},
    "order 2, linear": {"drift_orders": (2,), "drift_rates": (0.0,)},
    "order 2, profile menu": {"drift_orders": (2,), "drift_rates": DRIFT_RATES},
    "order 1 or 2, profile menu": {"drift_orders": (1, 2), "drift_rates": DRIFT_RATES},
}
FAMILIES = ("moving", "morphing", "two_minima", "kink", "real")
"""Families reported on their own; the rest are grouped as static."""


def movement(curves: np.ndarray) -> np.ndarray:
    """s_r: each round's centred curve projected on the first-minus-last change (1 ... 0)."""
    c = curves - curves.mean(axis=1, keepdims=True)
    change = c[0] - c[-1]
    return (c - c[-1]) @ change / float(change @ change)


def best_rate(s: np.ndarray) -> tuple[float, float, float]:
    """(rate, its squared error, the linear profile's) of the profile nearest to -s."""
    u = np.arange(len(s)) / (len(s) - 1)
    sse = {k: float(((s + drift_profile(u, k)) ** 2).sum()) for k in FIT_RATES}
    k = min(sse, key=sse.get)
    return k, sse[k], sse[0.0]


def live_movement(path: Path, p_min: float, p_max: float, plot: Path | None = None) -> None:
    """Print the live runs' movement, the least-squares rate and REML's choices (and plot)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    grid = np.asarray(data["grid"], float)
    keep = (grid >= p_min - 1e-9) & (grid <= p_max + 1e-9)
    print(f"Live probe curves ({path.name}), ratios {p_min}-{p_max}:")
    print()
    print(
        "| run | s_r at rounds 0, 2, 4, 7, 10, last | LS rate k | SSE linear / best "
        "| REML rate, order 1 | REML rate, order 2 |"
    )
    print("|---|---|---|---|---|---|")
    rates, lines = [], []
    for run in data["runs"]:
        curves = np.array([r["grid_losses"] for r in run["rounds"]], float)[:, keep]
        s = movement(curves)
        k, sse, sse_lin = best_rate(s)
        rates.append(k)
        lines.append((f"{run['task']} {run['target']} s{run['seed']}", s))
        n = len(curves)
        rounds = np.repeat(np.arange(n), keep.sum())
        probes = Probes(rounds, np.tile(grid[keep], n), curves.ravel())
        chosen = []
        for order in (1, 2):
            post = spline_posterior(probes, p_min, p_max, drift_orders=(order,))
            chosen.append(f"{post.hyper['drift_rate']:g}")
        at = [0, 2, 4, 7, 10, n - 1]
        name = f"{run['task']} {run['source']}->{run['target']} s{run['seed']}"
        print(
            f"| {name} | {', '.join(f'{s[i]:.2f}' for i in at)} | {k:g} | "
            f"{sse_lin:.2f} / {sse:.2f} | {chosen[0]} | {chosen[1]} |"
        )
    rates = np.asarray(rates)
    print()
    print(
        f"Least-squares rate > 0 (fast early) on {int((rates > 0).sum())} of {len(rates)} "
        f"runs; median {np.median(rates):g}."
    )
    if plot is not None:
        plot_movement(lines, plot)


def plot_movement(lines: list[tuple[str, np.ndarray]], path: Path) -> None:
    """Each live run's movement s_r against the run fraction, with the profiles REML offers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, s in lines:
        u = np.arange(len(s)) / (len(s) - 1)
        style = "-" if name.startswith("summarization") else ":"
        ax.plot(u, s, style, color="0.6", lw=1)
    u = np.linspace(0, 1, 101)
    for rate in DRIFT_RATES:
        label = "linear (k = 0)" if rate == 0 else f"fast early, k = {rate:g}"
        ax.plot(u, -drift_profile(u, rate), lw=2.2, label=label)
    ax.set_xlabel("share of the controller run trained (u)")
    ax.set_ylabel("share of the curve's move still ahead (s_r)")
    ax.set_title("Live probe curves (12 runs; grey: summarisation solid, QA dotted)")
    ax.set_ylim(-1.2, 1.6)
    ax.axhline(0, color="0.8", lw=0.8)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"-> {path}")


def reread(path: Path) -> None:
    """Print the mean regret (%) of each drift model on the stored episodes' probes."""
    payload = json.loads(path.read_text(encoding="utf-8"))
    cfg = payload["config"]
    ctrl = cfg["experiment"]["controller"]
    p_min, p_max = ctrl["p_min"], ctrl["p_max"]
    instances = instance_set(cfg["instances"])
    scores: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    seconds: dict[str, float] = defaultdict(float)
    for e, inst, probes in stored_probes(payload, instances, path):
        fam = inst.family if inst.family in FAMILIES else "static"
        for name, kwargs in MODELS.items():
            start = time.perf_counter()
            post = spline_posterior(probes, p_min, p_max, **kwargs)
            ratio = with_final_cost(post, FINAL_COST, p_min, p_max).pessimistic_ratio(0.0)
            seconds[name] += time.perf_counter() - start
            for key in ((e["agent"], e["rounds"], fam), (e["agent"], e["rounds"], "all")):
                scores[key][name].append(inst.regret(ratio))
    print(
        f"Mean regret (%) on `{cfg['instances']}`, {cfg['seeds']} seeds, from {path} "
        f"(p* with the final run's cost {FINAL_COST:g})"
    )
    print()
    print("| agent | rounds | family | n | " + " | ".join(MODELS) + " |")
    print("|---|---|---|---|" + "---|" * len(MODELS))
    for key in sorted(scores, key=lambda k: (k[0], -k[1], k[2] != "all", k[2])):
        row = scores[key]
        cells = " | ".join(f"{100 * np.mean(row[m]):.2f}" for m in MODELS)
        print(f"| {key[0]} | {key[1]} | {key[2]} | {len(row[next(iter(MODELS))])} | {cells} |")
    n = len(payload["episodes"])
    print()
    print(
        "Fit time per episode (ms): "
        + ", ".join(f"{m} {1000 * s / n:.1f}" for m, s in seconds.items())
    )


def main(argv: list[str] | None = None) -> None:
    """Print the live movement table and, with --probes, the re-reading table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--curves", type=Path, default=PROBE_DATA, help="probe-curve JSON")
    parser.add_argument("--probes", type=Path, help="runners/agent_table.py --keep-probes JSON")
    parser.add_argument("--plot", type=Path, help="write the live movement's figure here (PNG)")
    parser.add_argument("--p-min", type=float, default=0.1)
    parser.add_argument("--p-max", type=float, default=0.8)
    args = parser.parse_args(argv)
    live_movement(args.curves, args.p_min, args.p_max, args.plot)
    if args.probes is not None:
        print()
        reread(args.probes)


if __name__ == "__main__":
    main()
