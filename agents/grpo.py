"""The GRPO controller: a Gaussian policy over the prune ratio, updated once per round.

It talks to GraspLoRA-v0 only through the Gymnasium API: it samples a ratio, turns it into an
action in [-1, 1], reads the reward, and after `num_generations` probes (one round, the env's
group size) turns the group's rewards into advantages (TRL semantics, `grpo_math`) and applies
the reference update of PAPER.md. The env applies the commit rule; the learned ratio p* is read
from the env (`learned_ratio`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.grpo_math import SCALE_REWARDS, GaussianPolicy, group_advantages, reference_update

__all__ = ["GRPOConfig", "GRPOController"]


@dataclass(frozen=True)
class GRPOConfig:
    """GRPO controller settings (TRL names where TRL has one; PAPER.md defaults)."""

    num_generations: int = 3
    """Candidates per round; must equal the env's group_size."""
    scale_rewards: str = "none"
    """Advantage scaling: 'none' (reference: centred only), 'group' (TRL default) or 'batch'."""
    learning_rate: float = 0.05
    """eta of the reference update."""
    beta: float = 0.05
    """KL pull of mu towards the committed ratio (beta_kl)."""
    entropy_bonus: float = 0.01
    """beta_h: added to sigma every round (the reference's entropy bonus)."""
    sigma_init: float | None = None
    """Initial sigma; None means (p_max - p_min) / 6 as in the reference."""
    seed: int | None = None
    """Seed of the policy's samples; None: the runner uses the run's --seed (0 elsewhere)."""

    def __post_init__(self) -> None:
        if self.num_generations < 2:
            raise ValueError(f"num_generations={self.num_generations}; fix: use >= 2")
        if self.scale_rewards not in SCALE_REWARDS:
            raise ValueError(
                f"scale_rewards={self.scale_rewards!r}; fix: use one of {SCALE_REWARDS}"
            )
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate={self.learning_rate}; fix: use a positive step")
        if self.sigma_init is not None and not self.sigma_init > 0:
            raise ValueError(
                f"sigma_init={self.sigma_init}; fix: use a positive spread, or leave it unset "
                "for (p_max - p_min) / 6"
            )
        for name in ("beta", "entropy_bonus"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)}; fix: use a value >= 0")
        if self.seed is not None and self.seed < 0:
            raise ValueError(f"seed={self.seed}; fix: use a seed >= 0")


class GRPOController:
    """GRPO over the prune ratio; `learn` runs one controller episode in the env."""

    name = "grpo"
    archive_suffix = ".json"

    def __init__(self, env: Any, config: GRPOConfig | None = None) -> None:
        """Bind to an env (GraspLoRA-v0 or a wrapper of it)."""
        self.env = env
        self.config = config or GRPOConfig()
        ctrl = env.unwrapped.config
        if ctrl.group_size != self.config.num_generations:
            raise ValueError(
                f"num_generations={self.config.num_generations} but the env's group_size="
                f"{ctrl.group_size}; fix: make them equal (one policy update per round)"
            )
        self.p_min, self.p_max = ctrl.p_min, ctrl.p_max
        sigma = self.config.sigma_init
        if sigma is None:
            sigma = (ctrl.p_max - ctrl.p_min) / 6
        self.policy = GaussianPolicy(ctrl.p_init, sigma)
        self.rng = np.random.default_rng(self.config.seed or 0)

    # ------------------------------------------------------------------ acting

    def sample_ratio(self, deterministic: bool = False) -> float:
        """A candidate ratio from the policy, clamped to [p_min, p_max]."""
        rho = (
            self.policy.mu if deterministic else self.rng.normal(self.policy.mu, self.policy.sigma)
        )
        return float(np.clip(rho, self.p_min, self.p_max))

    def action_of(self, ratio: float) -> np.ndarray:
        """The env action that maps onto `ratio`."""
        a = (ratio - self.p_min) / (self.p_max - self.p_min) * 2.0 - 1.0
        return np.array([np.clip(a, -1.0, 1.0)], dtype=np.float32)

    def predict(self, obs: Any = None, deterministic: bool = False) -> tuple[np.ndarray, None]:
        """SB3-style: (action, state). The observation is not needed by this policy."""
        return self.action_of(self.sample_ratio(deterministic)), None

    # ----------------------------------------------------------------- learning

    def update(
        self, ratios: list[float], rewards: list[float], committed: float
    ) -> dict[str, float]:
        """One policy update from a finished round; returns what to log."""
        adv, frac_zero = group_advantages(np.array([rewards]), self.config.scale_rewards)
        self.policy = reference_update(
            self.policy,
            np.array(ratios),
            adv[0],
            committed,
            eta=self.config.learning_rate,
            beta_kl=self.config.beta,
            beta_h=self.config.entropy_bonus,
            p_min=self.p_min,
            p_max=self.p_max,
        )
        return {"mu": self.policy.mu, "sigma": self.policy.sigma, "frac_reward_zero_std": frac_zero}

    def learn(
        self,
        seed: int | None = None,
        callback: Callable[[dict[str, Any]], None] | None = None,
        resume: bool = False,
    ) -> GRPOController:
        """Run one controller episode; `callback` receives one dict per finished round.

        With `resume`, the env and this controller were restored from a round checkpoint
        (`load_state_dict` on both): the episode continues without a reset.
        """
        if resume:
            env = self.env.unwrapped
            done, committed = env._done, env.committed
        else:
            obs, info = self.env.reset(seed=seed)
            done, committed = False, info["committed_ratio"]
        ratios: list[float] = []
        rewards: list[float] = []
        while not done:
            ratio = self.sample_ratio()
            obs, reward, terminated, truncated, info = self.env.step(self.action_of(ratio))
            done = terminated or truncated
            ratios.append(info["candidate_ratio"])
            rewards.append(reward)
            if len(ratios) == self.config.num_generations:
                logged = self.update(ratios, rewards, committed)
                if callback is not None:
                    callback({"ratios": ratios, "rewards": rewards, **logged, **info})
                ratios, rewards = [], []
                committed = info["committed_ratio"]
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
        Path(path).write_text(json.dumps(state, indent=2))

    @classmethod
    def load(cls, path: str | Path, env: Any) -> GRPOController:
        """Rebuild a controller saved with `save`, bound to `env`."""
        state = json.loads(Path(path).read_text())
        agent = cls(env, GRPOConfig(**state["config"]))
        agent.policy = GaussianPolicy(state["mu"], state["sigma"])
        return agent
