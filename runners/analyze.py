"""Reward analysis from TensorBoard event files: ratio trajectories and reward curves, side by side.

    python runners/analyze.py runs/grpo-qa-en-ar-s42 runs/grpo-qa-en-zh-s42 --out analysis.png

Reads only the event files (no run-specific JSON), so it works on any run that logged the
`controller/`, `rewards/` and `env/` tags. Prints a small table per run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tyro

from grasp_env.runs.cli import run_cli
from grasp_env.runs.dirs import check_figure_path, save_figure

PANELS = (
    ("controller/committed_ratio", "committed ratio p"),
    ("controller/mu", "policy mean mu"),
    ("controller/sigma", "policy std sigma"),
    ("rewards/mean", "mean reward per round"),
    ("rewards/max", "max reward per round"),
    ("env/baseline_loss", "baseline micro-dev loss L0"),
)


@dataclass(frozen=True)
class Args:
    """Plot ratio trajectories and reward curves of several runs."""

    run_dirs: tyro.conf.Positional[tuple[Path, ...]]
    """Run directories with TensorBoard event files."""
    out: Path = Path("analysis.png")
    """Where the figure goes."""


def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Tag -> [(step, value)] for every scalar tag in the run's event files.

    A run killed mid-write may end an events file in a torn record: TensorBoard's reader
    checks each record's CRC, stops that file there and reads the next one (the resumed
    run's), so such a run reads fine (tests/test_interrupted_writes.py).
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not run_dir.is_dir() or not list(run_dir.glob("events.out.tfevents.*")):
        raise ValueError(f"{run_dir} holds no TensorBoard event files; fix: pass a run directory")
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def summary_row(name: str, scalars: dict[str, list[tuple[int, float]]]) -> str:
    """One markdown row: rounds, final committed ratio, learned ratio, reward stats, eval."""

    def last(tag: str) -> str:
        values = scalars.get(tag)
        return f"{values[-1][1]:.4f}" if values else "-"

    rewards = [v for _, v in scalars.get("rewards/mean", [])]
    mean_reward = f"{sum(rewards) / len(rewards):.4f}" if rewards else "-"
    evals = ", ".join(
        f"{t[5:]} {v[-1][1]:.2f}" for t, v in sorted(scalars.items()) if t.startswith("eval/")
    )
    return (
        f"| {name} | {len(scalars.get('controller/committed_ratio', []))} | "
        f"{last('controller/committed_ratio')} | {last('controller/learned_ratio')} | "
        f"{mean_reward} | {evals} |"
    )


def main(args: Args) -> int:
    """Read, plot, print."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    check_figure_path(args.out)
    if not args.run_dirs:
        raise ValueError("no run directory given; fix: pass the run directories to compare")
    runs = {d.name: read_scalars(d) for d in args.run_dirs}
    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    for ax, (tag, title) in zip(axes.ravel(), PANELS, strict=True):
        for name, scalars in runs.items():
            points = scalars.get(tag, [])
            if points:
                ax.plot([s for s, _ in points], [v for _, v in points], marker=".", label=name)
        ax.set(title=title, xlabel="optimizer step")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, args.out, dpi=100)  # atomic: a kill leaves the previous figure
    print("| run | rounds | final p | learned p* | mean reward | eval |")
    print("|---|---|---|---|---|---|")
    for name, scalars in runs.items():
        print(summary_row(name, scalars))
    print(f"\nfigure -> {args.out}")
    return 0


if __name__ == "__main__":
    run_cli(main, Args)
