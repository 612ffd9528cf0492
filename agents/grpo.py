"""The GRPO controller: a Gaussian policy over the prune ratio, updated once per round.

It talks to GraspLoRA only through the Gymnasium API (`reset`, `step`, `info`, and the env's
documented extras through `get_wrapper_attr`): it samples a ratio, turns it into an action,
reads the reward, and after one round's probes (the env's `group_size`, TRL's
`num_generations`) turns the group's rewards into advantages (TRL semantics, `grpo_math`) and
applies the policy update: the natural-gradient update by default, the reference update of
PAPER.md with `update="reference"` (`--method paper` sets all of the paper's values). The env
applies the commit rule; the episode's result (p*) is `agent.result` after `learn`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agents.grpo_math import GaussianPolicy, group_advantages, natural_update, reference_update
from grasp_env.atomic import atomic_write_text
from grasp_env.config import GRPOConfig

__all__ = ["GRPOConfig", "GRPOController", "action_for"]


def action_for(env: gym.Env, ratio: float) -> np.ndarray:
    """The action that makes `env` probe `ratio`, in the action space the agent sees.

    The env maps its own actions linearly onto [p_min, p_max] (`ControllerConfig.action_of`).
    Action wrappers between the agent and the env either rescale linearly (RescaleAction: a
    bounded space of their own) or pass in-range actions through (ClipAction: an unbounded
    space). So the action is the inner one carried linearly onto the outermost bounded space
    on the way in; a wrapper that maps actions non-linearly is not supported.
    """
    inner = env.get_wrapper_attr("config").action_of(ratio).astype(np.float64)
    layer = env
    while True:
        space = layer.action_space
        low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
        if np.all(np.isfinite(low)) and np.all(np.isfinite(high)):
            break
        layer = getattr(layer, "env", None)
        if layer is None:
            return inner.astype(np.float32)
    outer = low + (inner + 1.0) * 0.5 * (high - low)
    return outer.astype(env.action_space.dtype)


class GRPOController:
    """GRPO over the prune ratio; `learn` runs one controller episode in the env."""

    name = "grpo"
    archive_suffix = ".json"

    def __init__(
        self, env: gym.Env, config: GRPOConfig | None = None, seed: int | None = 0
    ) -> None:
        """Bind to an env (GraspLoRA or a wrapper of it); `seed` seeds the policy's samples."""
        self.env = env
        self.config = config or GRPOConfig()
        self.seed = seed
        self.ctrl = env.get_wrapper_attr("config")
        self.group_size = self.ctrl.group_size
        """Probes per round: the env's `group_size` (TRL's `num_generations`)."""
        sigma = self.config.initial_sigma(self.ctrl.p_min, self.ctrl.p_max)
        self.policy = GaussianPolicy(self.ctrl.p_init, sigma)
        self.rng = np.random.default_rng(seed)
        self.groups: list[list[float]] = []
        """Every finished round's rewards (the batch of `scale_rewards='batch'`)."""
        self.result: Any = None
        """The EpisodeResult of the last `learn` (None before)."""

    # ------------------------------------------------------------------ acting

    def sample(self, deterministic: bool = False) -> float:
        """A raw (unclamped) sample of the policy; its mean when `deterministic`."""
        if deterministic:
            return self.policy.mu
        return float(self.rng.normal(self.policy.mu, self.policy.sigma))

    def _ratio(self, sample: float) -> float:
        """The ratio a raw sample proposes (clamped to [p_min, p_max], as the env would)."""
        return float(np.clip(sample, self.ctrl.p_min, self.ctrl.p_max))

    def predict(self, obs: Any = None, deterministic: bool = False) -> tuple[np.ndarray, None]:
        """SB3-style: (action, state). The observation is not needed by this policy."""
        return action_for(self.env, self._ratio(self.sample(deterministic))), None

    # ----------------------------------------------------------------- learning

    def update(
        self, samples: list[float], rewards: list[float], committed: float
    ) -> dict[str, float]:
        """One policy update from a finished round; returns what to log.

        `samples` are the policy's raw draws (the env probes them clamped to [p_min, p_max]);
        the reference update, like the paper's code, uses the clamped ratios. With
        `scale_rewards='batch'` the advantages are scaled by the std of every reward of the run
        so far (TRL's batch scaling, with the run's rounds as the batch).
        """
        cfg = self.config
        self.groups.append([float(r) for r in rewards])
        batch = np.array(self.groups if cfg.scale_rewards == "batch" else self.groups[-1:])
        adv, frac_zero = group_advantages(batch, cfg.scale_rewards)
        lo, hi = self.ctrl.p_min, self.ctrl.p_max
        if cfg.update == "natural":
            self.policy = natural_update(
                self.policy,
                np.array(samples),
                adv[-1],
                committed,
                eta=cfg.learning_rate,
                eta_sigma=cfg.sigma_learning_rate,
                beta_kl=cfg.beta,
                entropy_bonus=cfg.entropy_bonus,
                sigma_min=cfg.sigma_min,
                sigma_max=(hi - lo) / 2,
                max_mu_step=cfg.max_mu_step,
                p_min=lo,
                p_max=hi,
            )
        else:
            self.policy = reference_update(
                self.policy,
                np.clip(samples, lo, hi),
                adv[-1],
                committed,
                eta=cfg.learning_rate,
                beta_kl=cfg.beta,
                beta_h=cfg.entropy_bonus,
                sigma_min=cfg.sigma_min,
                p_min=lo,
                p_max=hi,
            )
        return {"mu": self.policy.mu, "sigma": self.policy.sigma, "frac_reward_zero_std": frac_zero}

    def learn(
        self,
        seed: int | None = None,
        callback: Callable[[dict[str, Any]], None] | None = None,
        resume: bool = False,
    ) -> GRPOController:
        """Run one controller episode; `callback` receives one dict per finished round.

        `seed` seeds the env's reset (the policy's sampler was seeded at construction). With
        `resume`, the env and this controller were restored from a round checkpoint
        (`load_state_dict` on both): the episode continues without a reset.
        """
        episode_result = self.env.get_wrapper_attr("episode_result")
        if resume:
            status = episode_result()
            done, committed = status.termination != "", status.committed_ratio
        else:
            _, info = self.env.reset(seed=seed)
            done, committed = info["termination"] != "", info["committed_ratio"]
        ahead = self.ctrl.probe_batch == "group"
        samples: list[float] = []
        rewards: list[float] = []
        group: list[float] = []
        while not done:
            if ahead and not samples:
                # The group is drawn up front (the same draws in the same order as one at a
                # time) so that the env can score the C candidates together.
                group = [self.sample() for _ in range(self.group_size)]
                self.env.get_wrapper_attr("probe_ahead")([self._ratio(g) for g in group])
            sample = group[len(samples)] if ahead else self.sample()
            action = action_for(self.env, self._ratio(sample))
            _, reward, terminated, truncated, info = self.env.step(action)
            done = terminated or truncated
            samples.append(sample)
            rewards.append(reward)
            if len(samples) == self.group_size:
                logged = self.update(samples, rewards, committed)
                if callback is not None:
                    ratios = [self._ratio(x) for x in samples]
                    callback({"ratios": ratios, "rewards": rewards, **logged, **info})
                samples, rewards = [], []
                committed = info["committed_ratio"]
        self.result = episode_result()
        return self

    # -------------------------------------------------------------- persistence

    def state_dict(self) -> dict[str, Any]:
        """Policy, sampler and reward history as plain data (a round checkpoint's agent part)."""
        return {
            "mu": self.policy.mu,
            "sigma": self.policy.sigma,
            "rng": self.rng.bit_generator.state,
            "groups": [list(g) for g in self.groups],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict`: the next sample is the one the checkpoint would draw."""
        self.policy = GaussianPolicy(float(state["mu"]), float(state["sigma"]))
        self.rng.bit_generator.state = state["rng"]
        self.groups = [list(g) for g in state.get("groups", [])]

    def save(self, path: str | Path) -> None:
        """Policy and config as JSON (no pickle)."""
        state = {
            "config": asdict(self.config),
            "seed": self.seed,
            "mu": self.policy.mu,
            "sigma": self.policy.sigma,
        }
        atomic_write_text(path, json.dumps(state, indent=2))

    @classmethod
    def load(cls, path: str | Path, env: gym.Env) -> GRPOController:
        """Rebuild a controller saved with `save`, bound to `env`."""
        state = json.loads(Path(path).read_text())
        agent = cls(env, GRPOConfig(**state["config"]), seed=state.get("seed"))
        agent.policy = GaussianPolicy(state["mu"], state["sigma"])
        return agent
