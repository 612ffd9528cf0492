"""The GRPO controller: a Gaussian policy over the prune ratio, updated once per round.

It talks to GraspLoRA only through the Gymnasium API: it samples a ratio, turns it into an
action in [-1, 1], reads the reward, and after `num_generations` probes (one round, the env's
group size) turns the group's rewards into advantages (TRL semantics, `grpo_math`) and applies
the policy update: the natural-gradient update by default, the reference update of PAPER.md
with `update="reference"` (see `GRPOConfig.paper()` for all the paper's settings). The env
applies the commit rule; the episode's result (p*) is `agent.result` after `learn`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from agents.grpo_math import (
    SCALE_REWARDS,
    UPDATES,
    GaussianPolicy,
    group_advantages,
    natural_update,
    reference_update,
)
from grasp_env.atomic import atomic_write_text

__all__ = ["GRPOConfig", "GRPOController"]


@dataclass(frozen=True)
class GRPOConfig:
    """GRPO controller settings (TRL names where TRL has one; PAPER.md defaults)."""

    num_generations: int | None = None
    """Candidates per round (TRL's name); None takes the env's group_size, the one knob that
    sets it. A value that differs from the env's is an error."""
    update: str = "natural"
    """Policy update: 'natural' (natural gradient, clipped mean step, bounded sigma: stable)
    or 'reference' (PAPER.md's rule; see `GRPOConfig.paper()`)."""
    scale_rewards: str = "group"
    """Advantage scaling: 'group' (TRL default), 'batch' or 'none' (the reference: centred
    only)."""
    learning_rate: float | None = None
    """eta of the mean step; None: 1.0 for 'natural' (natural evolution strategies' default),
    0.05 for 'reference' (the paper)."""
    sigma_learning_rate: float = 0.6
    """'natural' only: eta of the log-sigma step (separable NES's default in one dimension)."""
    beta: float = 0.05
    """KL pull of mu towards the committed ratio (beta_kl)."""
    entropy_bonus: float | None = None
    """Added every round: to sigma for 'reference' (beta_h; None: 0.01, the paper), to log
    sigma for 'natural' (None: 0, since sigma_min keeps it exploring). Any positive value
    makes sigma drift up whatever the rewards say."""
    sigma_min: float | None = None
    """Floor of sigma; None: 0.05 for 'natural' (probes keep a spread the p* fit can use),
    1e-3 for 'reference' (the paper)."""
    max_mu_step: float = 0.20
    """'natural' only: largest change of mu in one round (the reference has none)."""
    sigma_init: float | None = None
    """Initial sigma; None: (p_max - p_min) / 3.5 for 'natural' (the first rounds probe most
    of the range, so an optimum near a bound is found within the 6-round budget too),
    (p_max - p_min) / 6 for 'reference' (the paper)."""
    seed: int | None = None
    """Seed of the policy's samples; None: fresh entropy (`make_agent` and the runners pass
    the run's seed)."""

    @classmethod
    def paper(cls, **overrides: Any) -> GRPOConfig:
        """The reference controller of PAPER.md: reference update, centred advantages."""
        return cls(**{"update": "reference", "scale_rewards": "none", **overrides})

    @property
    def eta(self) -> float:
        """The mean step's learning rate in effect."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 1.0 if self.update == "natural" else 0.05

    @property
    def bonus(self) -> float:
        """The entropy bonus in effect."""
        if self.entropy_bonus is not None:
            return self.entropy_bonus
        return 0.0 if self.update == "natural" else 0.01

    @property
    def floor(self) -> float:
        """The sigma floor in effect."""
        if self.sigma_min is not None:
            return self.sigma_min
        return 0.05 if self.update == "natural" else 1e-3

    def initial_sigma(self, p_min: float, p_max: float) -> float:
        """The starting sigma in effect for the ratio range [p_min, p_max]."""
        if self.sigma_init is not None:
            return self.sigma_init
        return (p_max - p_min) / (3.5 if self.update == "natural" else 6.0)

    def __post_init__(self) -> None:
        if self.num_generations is not None and self.num_generations < 2:
            raise ValueError(f"num_generations={self.num_generations}; fix: use >= 2")
        if self.scale_rewards not in SCALE_REWARDS:
            raise ValueError(
                f"scale_rewards={self.scale_rewards!r}; fix: use one of {SCALE_REWARDS}"
            )
        if self.update not in UPDATES:
            raise ValueError(f"update={self.update!r}; fix: use one of {UPDATES}")
        for name in ("learning_rate", "sigma_min"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name}={value}; fix: use a positive value (or leave it unset)")
        for name in ("sigma_learning_rate", "max_mu_step"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)}; fix: use a positive value")
        if self.sigma_init is not None and not self.sigma_init > 0:
            raise ValueError(
                f"sigma_init={self.sigma_init}; fix: use a positive spread, or leave it unset "
                "for the update's default ((p_max - p_min) / 3.5 natural, / 6 reference)"
            )
        for name in ("beta", "entropy_bonus"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name}={value}; fix: use a value >= 0")
        if self.seed is not None and self.seed < 0:
            raise ValueError(f"seed={self.seed}; fix: use a seed >= 0")


class GRPOController:
    """GRPO over the prune ratio; `learn` runs one controller episode in the env."""

    name = "grpo"
    archive_suffix = ".json"

    def __init__(self, env: Any, config: GRPOConfig | None = None) -> None:
        """Bind to an env (GraspLoRA or a wrapper of it)."""
        self.env = env
        self.config = config or GRPOConfig()
        ctrl = env.unwrapped.config
        if self.config.num_generations is None:
            self.config = replace(self.config, num_generations=ctrl.group_size)
        elif ctrl.group_size != self.config.num_generations:
            raise ValueError(
                f"num_generations={self.config.num_generations} but the env's group_size="
                f"{ctrl.group_size}; fix: make them equal (one policy update per round)"
            )
        self.ctrl = ctrl
        sigma = self.config.initial_sigma(ctrl.p_min, ctrl.p_max)
        self.policy = GaussianPolicy(ctrl.p_init, sigma)
        self.rng = np.random.default_rng(self.config.seed)
        self.result: Any = None
        """The EpisodeResult of the last `learn` (None before)."""

    # ------------------------------------------------------------------ acting

    def sample(self, deterministic: bool = False) -> float:
        """A raw (unclamped) sample of the policy; its mean when `deterministic`."""
        if deterministic:
            return self.policy.mu
        return float(self.rng.normal(self.policy.mu, self.policy.sigma))

    def predict(self, obs: Any = None, deterministic: bool = False) -> tuple[np.ndarray, None]:
        """SB3-style: (action, state). The observation is not needed by this policy."""
        return self.ctrl.action_of(self.sample(deterministic)), None

    # ----------------------------------------------------------------- learning

    def update(
        self, samples: list[float], rewards: list[float], committed: float
    ) -> dict[str, float]:
        """One policy update from a finished round; returns what to log.

        `samples` are the policy's raw draws (the env probes them clamped to [p_min, p_max]);
        the reference update, like the paper's code, uses the clamped ratios.
        """
        cfg = self.config
        adv, frac_zero = group_advantages(np.array([rewards]), cfg.scale_rewards)
        lo, hi = self.ctrl.p_min, self.ctrl.p_max
        if cfg.update == "natural":
            self.policy = natural_update(
                self.policy,
                np.array(samples),
                adv[0],
                committed,
                eta=cfg.eta,
                eta_sigma=cfg.sigma_learning_rate,
                beta_kl=cfg.beta,
                entropy_bonus=cfg.bonus,
                sigma_min=cfg.floor,
                sigma_max=(hi - lo) / 2,
                max_mu_step=cfg.max_mu_step,
                p_min=lo,
                p_max=hi,
            )
        else:
            self.policy = reference_update(
                self.policy,
                np.clip(samples, lo, hi),
                adv[0],
                committed,
                eta=cfg.eta,
                beta_kl=cfg.beta,
                beta_h=cfg.bonus,
                sigma_min=cfg.floor,
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
        env = self.env.unwrapped
        if resume:
            done, committed = env._done, env.committed
        else:
            _, info = self.env.reset(seed=seed)
            done, committed = env._done, info["committed_ratio"]
        samples: list[float] = []
        rewards: list[float] = []
        ahead = self.ctrl.probe_batch == "group"
        group: list[float] = []
        while not done:
            if ahead and not samples:
                # The group is drawn up front (the same draws in the same order as one at a
                # time) so that the env can score the C candidates together.
                group = [self.sample() for _ in range(self.config.num_generations)]
                env.probe_ahead([self.ctrl.action_of(s) for s in group])
            sample = group[len(samples)] if ahead else self.sample()
            _, reward, terminated, truncated, info = self.env.step(self.ctrl.action_of(sample))
            done = terminated or truncated
            samples.append(sample)
            rewards.append(reward)
            if len(samples) == self.config.num_generations:
                logged = self.update(samples, rewards, committed)
                if callback is not None:
                    ratios = [float(np.clip(s, self.ctrl.p_min, self.ctrl.p_max)) for s in samples]
                    callback({"ratios": ratios, "rewards": rewards, **logged, **info})
                samples, rewards = [], []
                committed = info["committed_ratio"]
        self.result = env.episode_result()
        return self

    # -------------------------------------------------------------- persistence

    def state_dict(self) -> dict[str, Any]:
        """Policy and sampler state as plain data (a round checkpoint's agent part)."""
        return {
            "mu": self.policy.mu,
            "sigma": self.policy.sigma,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict`: the next sample is the one the checkpoint would draw."""
        self.policy = GaussianPolicy(float(state["mu"]), float(state["sigma"]))
        self.rng.bit_generator.state = state["rng"]

    def save(self, path: str | Path) -> None:
        """Policy and config as JSON (no pickle)."""
        state = {"config": asdict(self.config), "mu": self.policy.mu, "sigma": self.policy.sigma}
        atomic_write_text(path, json.dumps(state, indent=2))

    @classmethod
    def load(cls, path: str | Path, env: Any) -> GRPOController:
        """Rebuild a controller saved with `save`, bound to `env`."""
        state = json.loads(Path(path).read_text())
        agent = cls(env, GRPOConfig(**state["config"]))
        agent.policy = GaussianPolicy(state["mu"], state["sigma"])
        return agent
