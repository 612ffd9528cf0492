"""What the real micro-dev curve looks like: dense probes after every controller round.

    .venv/bin/python scripts/probe_curves.py --task qa --target ar --seed 42 \
        --out docs/results/curves/qa-en-ar-s42.json

Runs one controller episode of GraspLoRA-v1 on the real pipeline (default preset) with the
chosen agent, and after every round probes a dense grid of ratios at that round's training
state (probes restore the weights, so the episode is the same as without them). The curves
show the shape the p* estimator has to cope with (flat regions, cliffs, round-to-round
jitter, how the committed ratio bends the curve), and they are the data the synthetic
stand-ins of `grasp_env.synthetic` are checked against. Writes JSON and a PNG beside it.
Run it alone: a second heavy job on 2 cores distorts everything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro


@dataclass(frozen=True)
class Args:
    """Probe a dense ratio grid after every round of one controller episode."""

    preset: str = "default"
    """Preset (tiny for a smoke test)."""
    task: str = "qa"
    """qa or summarization."""
    target: str = "ar"
    """Target language."""
    seed: int = 42
    """Data seed and episode seed."""
    agent: str = "grpo"
    """Agent that drives the episode."""
    grid: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(19))
    """Ratios probed after every round (0.0 .. 0.9)."""
    out: Path = Path("runs/curves.json")
    """Output JSON (the PNG goes beside it)."""


def main(args: Args) -> None:
    """Run the episode, probe the grid per round, write JSON and PNG."""
    from agents import make_agent
    from grasp_env.env import GraspLoRAEnv
    from grasp_env.lm.pipeline import PipelineConfig, prepare
    from grasp_env.lm.presets import get_preset

    prep = prepare(
        get_preset(args.preset),
        PipelineConfig(task=args.task, target=args.target, seed=args.seed),
        progress=False,
    )
    env = GraspLoRAEnv(prepared=prep)
    rounds: list[dict] = []

    def on_round(_: dict) -> None:
        last = env.history[-1]
        rounds.append(
            {
                "round": last["round"],
                "step": env.process.steps_done,
                "committed_ratio": env.committed,
                "mask_ratio": env.mask_ratio,
                "baseline_loss": env.l0,
                "grid_losses": [env.process.probe(r) for r in args.grid],
            }
        )

    agent = make_agent(args.agent, env, seed=args.seed)
    agent.learn(seed=args.seed, callback=on_round)
    result = agent.result
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "config": {**vars(args), "out": str(args.out), "grid": list(args.grid)},
        "learned_ratio": result.learned_ratio,
        "learned_ratio_by_rule": result.learned_ratio_by_rule,
        "rounds": rounds,
    }
    args.out.write_text(json.dumps(payload, indent=1))
    _plot(payload, args.out.with_suffix(".png"))
    print(f"-> {args.out}")


def _plot(payload: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.array(payload["config"]["grid"])
    rounds = payload["rounds"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    cmap = plt.get_cmap("viridis")
    for i, r in enumerate(rounds):
        losses = np.array(r["grid_losses"])
        colour = cmap(i / max(1, len(rounds) - 1))
        a1.plot(grid, losses, color=colour, lw=1)
        a1.plot([r["mask_ratio"]], [r["baseline_loss"]], "o", color=colour, ms=3)
        a2.plot(grid, losses - losses.mean(), color=colour, lw=1)
    a1.set(xlabel="prune ratio", ylabel="micro-dev loss", title="per round (dot: L0 at the mask)")
    a2.set(xlabel="prune ratio", ylabel="loss - round mean", title="shape (round level removed)")
    for ax in (a1, a2):
        ax.axvspan(0.1, 0.8, color="0.92", zorder=0)
    c = payload["config"]
    fig.suptitle(f"{c['task']} en->{c['target']}, seed {c['seed']}, agent {c['agent']}")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main(tyro.cli(Args))
