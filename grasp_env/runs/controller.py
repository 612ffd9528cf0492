"""The controller stage every runner shares: one episode, callbacks for what happens per round.

`run_episode(env, agent, seed, callbacks)` runs one controller episode with any agent of the
registry and calls each callback after every finished round (SB3's callback idea: the stage
itself knows nothing of files). The main job adds `RoundRecorder` (history.jsonl and
TensorBoard) and `RoundCheckpointer` (crash-safe round checkpoints); the benchmark runs the same
stage with no callbacks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from grasp_env.runs.checkpoint import maybe_fault, save_checkpoint

__all__ = ["RoundCallback", "RoundCheckpointer", "RoundRecorder", "resumable", "run_episode"]

RoundCallback = Callable[[Any, Any, dict[str, Any]], None]
"""callback(env, agent, record): called after every finished round, in order."""


def run_episode(
    env: Any,
    agent: Any,
    seed: int,
    callbacks: Sequence[RoundCallback] = (),
    resume: bool = False,
    progress: bool = False,
    rounds_before: int = 0,
) -> Any:
    """One controller episode; returns the agent's EpisodeResult.

    With `resume`, env and agent were restored from a round checkpoint and the episode
    continues (agents without round checkpoints restart it: see `resumable`).
    """
    from tqdm.auto import tqdm

    inner = env.unwrapped
    total = -(-inner.budget // inner.config.update_interval)  # the last round may be short
    desc = f"controller ({getattr(agent, 'name', 'agent')})"
    bar = tqdm(total=total, initial=rounds_before, desc=desc, leave=False, disable=not progress)
    with bar:

        def on_round(record: dict[str, Any]) -> None:
            for callback in callbacks:
                callback(env, agent, record)
            bar.update(1)
            bar.set_postfix(p=f"{inner.committed:.3f}")

        if resume:
            agent.learn(seed=seed, callback=on_round, resume=True)
        else:
            agent.learn(seed=seed, callback=on_round)
    return agent.result


def resumable(agent: Any) -> bool:
    """Whether the agent can continue an episode from a round checkpoint."""
    return hasattr(agent, "state_dict")


class RoundRecorder:
    """history.jsonl and TensorBoard, one record per round (through `RoundLogger`).

    The env has already trained the next round's K steps when a round is reported, so only
    the training losses up to the round's own step are logged, on their own step numbers.
    """

    def __init__(self, logger: Any, seen_losses: int = 0, rounds_logged: int = 0) -> None:
        """Log through `logger`; on resume, continue the counters of the checkpoint."""
        self.logger = logger
        self.seen_losses = seen_losses
        self.rounds_logged = rounds_logged

    def __call__(self, env: Any, agent: Any, record: dict[str, Any]) -> None:
        """Write the round that just finished."""
        inner = env.unwrapped
        last = inner.history[-1]
        first_step = self.seen_losses + 1
        losses = inner.train_losses[self.seen_losses : last["step"]]
        self.seen_losses = last["step"]
        kept = ("mu", "sigma", "frac_reward_zero_std")
        self.logger.round(
            {
                "round": last["round"],
                "step": last["step"],
                "first_step": first_step,
                "ratios": last["candidates"],
                "rewards": last["rewards"],
                "candidate_losses": last["losses"],
                "baseline_ratio": last["baseline_ratio"],
                "baseline_mask_ratio": last["baseline_mask_ratio"],
                "baseline_loss": last["baseline_loss"],
                **{k: record[k] for k in kept if k in record},
                "committed_ratio": last["committed_ratio"],
                "achieved_sparsity": last["achieved_sparsity"],
                "learned_ratio": inner.learned_ratio(),
                "train_losses": losses,
            }
        )
        self.rounds_logged += 1
        maybe_fault("controller_round")  # tests: a kill between the log and the checkpoint


class RoundCheckpointer:
    """A crash-safe checkpoint after every round: env (process included), agent, counters."""

    def __init__(
        self, path: Path, recorder: RoundRecorder, started: float, elapsed_before: float = 0.0
    ) -> None:
        """Write to `path`; the counters come from `recorder`; seconds count from `started`."""
        self.path = path
        self.recorder = recorder
        self.started = started
        self.elapsed_before = elapsed_before

    def __call__(self, env: Any, agent: Any, record: dict[str, Any]) -> None:
        """Checkpoint the state after the round that just finished."""
        if not resumable(agent):
            return
        save_checkpoint(
            self.path,
            {
                "env": env.unwrapped.state_dict(),
                "agent": agent.state_dict(),
                "rounds_logged": self.recorder.rounds_logged,
                "seen_losses": self.recorder.seen_losses,
                "controller_s": self.elapsed_before + time.perf_counter() - self.started,
            },
            "controller",
        )
        maybe_fault("controller_checkpoint")
