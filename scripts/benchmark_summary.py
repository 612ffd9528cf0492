"""One markdown table (and one figure) over several benchmark.json files.

    .venv/bin/python scripts/benchmark_summary.py docs/results/benchmark/*/benchmark.json \
        --plot docs/img/benchmark-all.png

One row per (benchmark, method): task and languages, ratio per seed, the task's headline test
metric (EM for QA, ROUGE-L for summarisation) mean +- std, wall seconds per seed, and the
speedup over the grid under both accountings (see runners/benchmark.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _rows(path: Path) -> tuple[str, str, dict]:
    bench = json.loads(path.read_text())
    cfg = bench["config"]
    cfg = cfg.get("data", cfg)  # task and languages live in the data section since the config tree
    metric = "em" if cfg["task"] == "qa" else "rouge_l"
    task = "QA" if cfg["task"] == "qa" else "Sum"
    return f"{task} {cfg['source']}->{cfg['target']}", metric, bench


def main() -> int:
    """Print the table; draw the figure when asked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    print(
        "| pair | method | ratio per seed | test metric | paired diff vs grid | wall s / seed "
        "| speedup (all scored) | speedup (dev-select) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    panels = []
    for path in args.files:
        pair, metric, bench = _rows(path)
        panels.append((pair, metric, bench["methods"]))
        grid_q = [r["test"][metric] for r in bench["methods"]["grid"]["per_seed"]]
        for name, res in bench["methods"].items():
            q = res["test"][metric]
            ratios = ", ".join(f"{r:.2f}" for r in res["ratios"])
            diff = _paired([r["test"][metric] for r in res["per_seed"]], grid_q)
            print(
                f"| {pair} | {name} | {ratios} | {metric} {q[0]:.2f} +- {q[1]:.2f} | {diff} | "
                f"{res['seconds'][0]:.1f} | {res['speedup_vs_grid']:.2f}x | "
                f"{res['speedup_vs_grid_select']:.2f}x |"
            )
    if args.plot:
        _plot(panels, args.plot)
    return 0


def _paired(values: list[float], grid: list[float]) -> str:
    """Mean +- std of the per-seed differences (same seeds, same test rows)."""
    import statistics

    d = [v - g for v, g in zip(values, grid, strict=True)]
    std = statistics.stdev(d) if len(d) > 1 else 0.0
    return f"{statistics.mean(d):+.2f} +- {std:.2f}"


def _plot(panels: list, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)
    for ax, (pair, metric, methods) in zip(axes[0], panels, strict=True):
        for name, res in methods.items():
            if name == "grid-best-test":
                q = res["test"][metric][0]
                ax.axhline(q, color="grey", ls=":", lw=1, label="best grid point (oracle)")
                continue
            (q, q_std), (t, t_std) = res["test"][metric], res["seconds"]
            ax.errorbar([t], [q], xerr=[t_std], yerr=[q_std], fmt="o", capsize=3, label=name)
            if name == "grid":
                sel = res["seconds_select"][0]
                ax.plot([sel], [q], "s", mfc="none", color="C0", label="grid, dev-select cost")
        ax.set(title=pair, xlabel="wall time per seed (s)", ylabel=f"test {metric}")
        ax.set_xlim(left=0)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("GRASP and baselines against the 8-point grid (mean +- std over 3 seeds)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
