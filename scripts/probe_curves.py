"""Real probe data: the micro-dev and dev curves of the live process after every round.

    .venv/bin/python scripts/probe_curves.py   # 4 pairs x 3 seeds, resumable
    .venv/bin/python scripts/probe_curves.py --pairs qa-ar --seeds 42 --out /tmp/one.json

For every pair (task, target) and seed: one controller episode of GraspLoRA-v1 on the default
preset's real pipeline (cached backbone and adapters) driven by the GRPO controller (default
method's settings), and after every round a dense grid of ratios probed at that round's
training state, both on the 16-row micro-dev split (what an agent sees) and on the 50-row
dev split (a larger sample of the same curve). Probes restore the weights, so the episode is
the one it would be without them.
The file is the data the surrogate environment is fitted to (`grasp_env.surrogate`) and its
fidelity report is measured on (docs/SURROGATE.md); each run records the fingerprint of its
prepared state (`Prepared.fingerprint`), so a rebuild on other adapters is visible.
Run it alone: a second heavy job on 2 cores distorts every number.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

from grasp_env.config import DEFAULT_PAIRS, ExperimentConfig
from grasp_env.runs.cli import experiment_of, parse

PAIRS = DEFAULT_PAIRS


@dataclass(frozen=True)
class Args(ExperimentConfig):
    """Probe a dense ratio grid after every round of controller episodes."""

    pairs: tuple[str, ...] = tuple(PAIRS)
    """Pairs to collect (qa-ar, qa-zh, summarization-ar, summarization-zh)."""
    seeds: tuple[int, ...] = (42, 1337, 9001)
    """Seeds (target rows, adapters, episode)."""
    grid: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(19))
    """Ratios probed after every round (0.0 .. 0.9)."""
    out: Path = Path("grasp_env/data/probe_curves.json")
    """Output JSON."""
    plots_dir: Path = Path("docs/results/curves")
    """Where --plots draws one PNG per run."""
    plots: bool = False
    """Also draw one PNG per run into --plots-dir."""
    dev_every: int = 5
    """Probe the dev split's grid every this many rounds (and on the last round); the 50-row
    dev probes cost three times the micro-dev ones."""


def collect(cfg: ExperimentConfig, grid: tuple[float, ...], dev_every: int) -> dict:
    """One episode's rounds with both curves on the grid."""
    from agents import make_agent
    from grasp_env.env import GraspLoRAEnv
    from grasp_env.lm.pipeline import prepare

    prep = prepare(cfg, progress=False, log=lambda _: None)
    env = GraspLoRAEnv(prepared=prep)
    process = env.process
    rounds: list[dict] = []

    def on_round(_: dict) -> None:
        last = env.history[-1]
        final = process.steps_done >= cfg.budget
        dev = final or last["round"] % dev_every == 0
        rounds.append(
            {
                "round": last["round"],
                "step": process.steps_done,
                "committed_ratio": env.committed,
                "mask_ratio": env.mask_ratio,
                "baseline_loss": env.l0,
                "candidates": last["candidates"],
                "candidate_losses": last["losses"],
                "grid_losses": [process.probe(r) for r in grid],
                "dev_grid_losses": (
                    [process.probe(r, split=prep.encoded["dev"]) for r in grid] if dev else None
                ),
            }
        )

    agent = make_agent("grpo", env, seed=cfg.seed, config=cfg)
    agent.learn(seed=cfg.seed, callback=on_round)
    env.close()
    return {
        "task": cfg.data.task,
        "source": cfg.data.source,
        "target": cfg.data.target,
        "seed": cfg.seed,
        "fingerprint": prep.fingerprint(),
        "learned_ratio": agent.result.learned_ratio,
        "rounds": rounds,
    }


def _keys(runs: list[dict]) -> set[tuple]:
    """(task, target, seed) of every run: a re-recorded run replaces its earlier record."""
    return {(r["task"], r["target"], r["seed"]) for r in runs}


def main(args: Args) -> None:
    """Collect every pair and seed into one JSON file, rewritten after every run.

    Resumable: a run already in the file for the same grid and prepared state is kept.
    """
    from grasp_env.atomic import atomic_write_text
    from grasp_env.lm.pipeline import prepare

    base = experiment_of(args)
    done: dict[tuple, dict] = {}
    if args.out.is_file():
        old = json.loads(args.out.read_text())
        if old.get("grid") == list(args.grid) and old.get("preset") == base.preset:
            done = {(r["task"], r["target"], r["seed"]): r for r in old["runs"]}
    runs, t0 = [], time.perf_counter()
    for pair in args.pairs:
        task, target = PAIRS[pair]
        tree = ExperimentConfig.from_preset(base.preset, base.method, task)
        tree = replace(tree, data=replace(tree.data, target=target))
        for seed in args.seeds:
            cfg = replace(tree, seed=seed)
            t = time.perf_counter()
            kept = done.get((task, target, seed))
            quiet = prepare(cfg, progress=False, log=lambda _: None) if kept else None
            if kept and kept["fingerprint"] == quiet.fingerprint():
                runs.append(kept)
                print(f"{pair} seed {seed}: kept", flush=True)
                continue
            runs.append({**collect(cfg, args.grid, args.dev_every), "seconds": 0.0})
            runs[-1]["seconds"] = round(time.perf_counter() - t, 1)
            print(
                f"{pair} seed {seed}: {len(runs[-1]['rounds'])} rounds, "
                f"{runs[-1]['seconds']:.0f} s",
                flush=True,
            )
            payload = {
                "made_by": "scripts/probe_curves.py",
                "command": "scripts/probe_curves.py --plots",
                "preset": base.preset,
                "grid": list(args.grid),
                "micro_dev_rows": base.data.micro_dev_rows,
                "dev_rows": base.data.dev_rows,
                "dev_every": args.dev_every,
                "seconds": round(time.perf_counter() - t0, 1),
                "runs": runs + [r for k, r in done.items() if k not in _keys(runs)],
            }
            args.out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(args.out, json.dumps(payload, separators=(",", ":")))
    print(f"-> {args.out}")
    if args.plots:
        for run in runs:
            _plot(
                run,
                args.grid,
                args.plots_dir / f"{run['task']}-en-{run['target']}-s{run['seed']}.png",
            )


def _plot(run: dict, grid: tuple[float, ...], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.array(grid)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=False)
    cmap = plt.get_cmap("viridis")
    for i, r in enumerate(run["rounds"]):
        colour = cmap(i / max(1, len(run["rounds"]) - 1))
        for ax, key in zip(axes, ("grid_losses", "dev_grid_losses"), strict=True):
            if r[key] is not None:
                ax.plot(x, r[key], color=colour, lw=1)
    for ax, title in zip(axes, ("micro-dev (16 rows)", "dev (50 rows)"), strict=True):
        ax.set(xlabel="prune ratio", ylabel="loss", title=title)
        ax.axvspan(0.1, 0.8, color="0.92", zorder=0)
    fig.suptitle(f"{run['task']} en->{run['target']}, seed {run['seed']} (colour: round)")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main(parse(Args)[0])
