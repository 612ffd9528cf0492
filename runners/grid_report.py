"""Ratio -> quality curves of several grid runs: a PNG and a markdown table, paired by seed.

    python runners/grid_report.py runs/grid-qa-en-ar-s42 runs/grid-qa-en-ar-s1337 ... \
        --out docs/img/grid-qa-en-ar.png

Each RUN_DIR holds the metrics.json that `grid_search.py` writes (run it with
`--baselines target_only target_only_pruned merged_no_prune` for the full picture). Arms are
compared seed by seed: the table gives each arm's mean and std over seeds and the paired
difference of the best merged point against each control.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import tyro

from grasp_env.runs.cli import run_cli
from grasp_env.runs.dirs import check_figure_path, read_json_record, save_figure


@dataclass(frozen=True)
class Args:
    """Plot and tabulate grid runs."""

    run_dirs: tyro.conf.Positional[tuple[Path, ...]]
    """Grid run directories (one per seed, same task and languages)."""
    out: Path = Path("grid.png")
    """Where the plot goes."""
    metric: str | None = None
    """Quality metric to plot (default: em for QA, rouge_l for summaries)."""


def _load(run_dirs: tuple[Path, ...]) -> list[dict]:
    runs = []
    fix = "pass run directories written by runners/grid_search.py"
    for d in run_dirs:
        if not d.is_dir():
            raise ValueError(f"{d} is not a run directory; fix: {fix}")
        needs = ("task", "source", "target", "points")
        runs.append(read_json_record(d / "metrics.json", "a grid search's metrics", needs, fix))
    keys = {(r["task"], r["source"], r["target"]) for r in runs}
    if len(keys) != 1:
        raise ValueError(f"runs mix tasks or languages {sorted(keys)}; fix: one pair per report")
    return runs


def _mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} +- {statistics.stdev(values):.2f}"


def table(runs: list[dict], metric: str) -> str:
    """Markdown: per ratio, merged and pruned-control values (mean +- std) and NLL."""
    lines = [
        f"| arm | ratio | test {metric} (mean +- std over {len(runs)} seeds) | test NLL |",
        "|---|---|---|---|",
    ]
    arms = ["merged", "target_only_pruned", "target_only", "merged_no_prune"]
    for arm in arms:
        rows: dict[float, tuple[list[float], list[float]]] = {}
        for run in runs:
            points = run["points"] if arm == "merged" else run.get("baselines", {}).get(arm, [])
            for p in points:
                vals, nlls = rows.setdefault(p["ratio"], ([], []))
                vals.append(p["test"][metric])
                nlls.append(p["test_loss"])
        for ratio in sorted(rows):
            vals, nlls = rows[ratio]
            lines.append(f"| {arm} | {ratio:.2f} | {_mean_std(vals)} | {_mean_std(nlls)} |")
    return "\n".join(lines)


def _per_seed(runs: list[dict], arm: str, metric: str) -> dict[float, list[float]]:
    out: dict[float, list[float]] = {}
    for run in runs:
        points = run["points"] if arm == "merged" else run.get("baselines", {}).get(arm, [])
        for p in points:
            out.setdefault(p["ratio"], []).append(p["test"][metric])
    return out


def paired(runs: list[dict], metric: str) -> str:
    """Seed-paired comparisons: does the ratio matter, and does the merge transfer?

    - spread: merged at its best mean ratio minus merged at its worst mean ratio, per seed;
    - transfer: best merged ratio minus target-only (control at ratio 0), and minus the pruned
      control at its own best mean ratio, per seed.
    """
    merged = _per_seed(runs, "merged", metric)
    means = {r: statistics.mean(v) for r, v in merged.items() if len(v) == len(runs)}
    best, worst = max(means, key=means.get), min(means, key=means.get)
    lines = [
        "| comparison (paired by seed) | per seed | mean +- std | same sign in every seed |",
        "|---|---|---|---|",
    ]

    def row(label: str, a: list[float], b: list[float]) -> None:
        d = [x - y for x, y in zip(a, b, strict=True)]
        same = all(x > 0 for x in d) or all(x < 0 for x in d)
        lines.append(
            f"| {label} | {', '.join(f'{x:+.2f}' for x in d)} | {_mean_std(d)} | "
            f"{'yes' if same else 'no'} |"
        )

    row(f"merged {best:.2f} (best) - merged {worst:.2f} (worst)", merged[best], merged[worst])
    control = _per_seed(runs, "target_only_pruned", metric)
    if 0.0 in control and len(control[0.0]) == len(runs):
        row(f"merged {best:.2f} - target-only", merged[best], control[0.0])
        cmeans = {r: statistics.mean(v) for r, v in control.items() if len(v) == len(runs)}
        cbest = max(cmeans, key=cmeans.get)
        row(
            f"merged {best:.2f} - pruned target-only at {cbest:.2f} (its best)",
            merged[best],
            control[cbest],
        )
    return "\n".join(lines)


def plot(runs: list[dict], metric: str, out: Path) -> None:
    """Test metric and test NLL against the ratio, one line per seed and arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    styles = {"merged": "-o", "target_only_pruned": "--s"}
    for run in runs:
        for arm, style in styles.items():
            points = run["points"] if arm == "merged" else run.get("baselines", {}).get(arm, [])
            if not points:
                continue
            xs = [p["ratio"] for p in points]
            axes[0].plot(
                xs,
                [p["test"][metric] for p in points],
                style,
                alpha=0.8,
                label=f"{arm} s{run['seed']}",
            )
            axes[1].plot(
                xs,
                [p["test_loss"] for p in points],
                style,
                alpha=0.8,
                label=f"{arm} s{run['seed']}",
            )
        for arm in ("target_only", "merged_no_prune"):
            for p in run.get("baselines", {}).get(arm, []):
                axes[0].axhline(p["test"][metric], ls=":", lw=1, color="grey")
                axes[1].axhline(p["test_loss"], ls=":", lw=1, color="grey")
    run = runs[0]
    axes[0].set(
        xlabel="prune ratio",
        ylabel=f"test {metric}",
        title=f"{run['task']} {run['source']}->{run['target']} ({run['preset']})",
    )
    axes[1].set(
        xlabel="prune ratio",
        ylabel="test answer NLL (nats/token)",
        title="dotted: target-only / merge without pruning",
    )
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out, dpi=110)  # atomic: a kill leaves the previous plot, never half a PNG


def main(args: Args) -> int:
    """Load, plot, print the table."""
    check_figure_path(args.out)
    runs = _load(args.run_dirs)
    metric = args.metric or ("em" if runs[0]["task"] == "qa" else "rouge_l")
    plot(runs, metric, args.out)
    print(table(runs, metric))
    if len(runs) > 1:
        print()
        print(paired(runs, metric))
    print(f"\nplot -> {args.out}")
    return 0


if __name__ == "__main__":
    run_cli(main, Args)
