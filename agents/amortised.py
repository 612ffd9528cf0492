"""An amortised controller: one policy trained across many surrogate instances, frozen at run time.

Every other agent of the registry starts each episode knowing nothing and learns (or fits) from
that episode's probes alone. `AmortisedAgent` instead acts with a Stable-Baselines3 PPO policy
that was trained beforehand on thousands of episodes of the surrogate gym's TRAIN instances
(`grasp_env.surrogate.instance_set('train')`, round-robin, budgets of 4 to 15 rounds), rewarded
by the regret of p* only: at every round's close, the change of the regret of the p* the episode
would report so far (a potential-based shaping that sums to the final regret; the true curve is
known on a surrogate instance, never on the live process; `scripts/train_amortised.py`). At run
time nothing is learned: the policy maps a summary of the episode so far to the next probe, and
p* is read from the episode's probes by the package's p* rule, as for every other agent
(`EpisodeResult`).

The observation the policy sees (`HistoryFeatures`, 71 numbers) is built from the episode's
transitions alone (the env's observation, reward and info of every step), so the same features
come out on the surrogate and on the live environment, and a round-level resume that replays the
logged transitions rebuilds them exactly:

- the env's own observation, mapped onto [-1, 1] action units: committed ratio, best-reward ratio,
  share of the budget used, position in the round, and the budget in rounds (/ 15);
- a running p* estimate: the penalised spline of `grasp_env.pstar.fit_spline` on every probe so
  far (round fixed effects absorb each round's L0, so rewards serve as losses), refitted when a
  round closes;
- the last 12 probes (newest first): ratio, reward normalised by the RMS of the episode's
  rewards so far, age in rounds (share of the budget), a valid flag;
- 8 bins over [p_min, p_max]: the recency-weighted mean normalised reward of the probes in each
  bin (weights 0.6^age in rounds) and how much weight the bin holds.

The shipped policy is `agents/policies/amortised_ppo.pt` (a torch state_dict, loaded with
`weights_only=True`: no pickle is ever unpickled) with its metadata
`agents/policies/amortised_ppo.json` (the architecture, the training command, its cost and the
train-set scores). Rebuild it with `scripts/train_amortised.py` (its docstring has the command).
Results: docs/results/amortised.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.baselines import _Agent
from grasp_env.atomic import atomic_write_text

__all__ = [
    "FEATURES",
    "POLICY_PATH",
    "AmortisedAgent",
    "AmortisedTrainEnv",
    "HistoryFeatures",
    "load_policy",
]

POLICY_PATH = Path(__file__).resolve().parent / "policies" / "amortised_ppo.pt"
"""The shipped policy (state_dict); its metadata sits beside it as the same stem + .json."""

LAST = 12
"""Probes listed one by one in the observation (newest first)."""
BINS = 8
"""Bins of the recency-weighted reward summary over [p_min, p_max]."""
DECAY = 0.6
"""Weight of a probe per round of age in the bin summary."""
REWARD_CLIP = 3.0
"""Normalised rewards are clipped to +-3 and divided by 3."""
ROUNDS_SCALE = 15.0
"""The budget in rounds enters the observation divided by this (the paper's 15 rounds -> 1)."""
FEATURES = 7 + 4 * LAST + 2 * BINS
"""Length of the policy's observation."""
VERSION = 1
"""Version of the feature layout (a policy trained on another layout is refused)."""


class HistoryFeatures:
    """The episode so far as a fixed-length vector, built from transitions only.

    Call `reset(env, obs, info)` after the env's reset and `step(obs, reward, info)` after every
    step; `vector()` is the policy's observation. Only the documented agent API is read from the
    env (`config`, `budget`), once per episode.
    """

    def __init__(self) -> None:
        """Empty history (call `reset` before use)."""
        self.p_min, self.p_max, self.group, self.rounds_total = 0.1, 0.8, 3, 1
        self.obs = np.zeros(7, dtype=np.float32)
        self.rounds: list[int] = []
        self.ratios: list[float] = []
        self.rewards: list[float] = []
        self.round_index = 0
        self.pstar: float | None = None

    def reset(self, env: gym.Env, obs: Any, info: dict[str, Any] | None = None) -> None:
        """Start an episode: read the range, group size and budget; forget every probe."""
        cfg = env.get_wrapper_attr("config")
        budget = int(env.get_wrapper_attr("budget"))
        self.p_min, self.p_max = float(cfg.p_min), float(cfg.p_max)
        self.group = int(cfg.group_size)
        self.rounds_total = max(1, -(-budget // int(cfg.update_interval)))
        self.obs = np.asarray(obs, dtype=np.float32).reshape(-1)
        self.rounds, self.ratios, self.rewards = [], [], []
        self.round_index, self.pstar = 0, None

    def step(self, obs: Any, reward: float, info: dict[str, Any], action: Any = None) -> None:
        """Record one probe (ratio from `info['candidate_ratio']`, else from `action`)."""
        if "candidate_ratio" in info:
            ratio = float(info["candidate_ratio"])
        else:
            ratio = self._ratio_of(float(np.asarray(action).reshape(-1)[0]))
        self.rounds.append(self.round_index)
        self.ratios.append(ratio)
        self.rewards.append(float(reward) if math.isfinite(reward) else -10.0)
        self.obs = np.asarray(obs, dtype=np.float32).reshape(-1)
        if len(self.rounds) % self.group == 0:  # the round closed with this probe
            self.round_index += 1
            self.pstar = self._fit()

    def _ratio_of(self, a: float) -> float:
        return self.p_min + (np.clip(a, -1.0, 1.0) + 1.0) / 2.0 * (self.p_max - self.p_min)

    def _unit(self, ratio: float) -> float:
        """A ratio in action units ([-1, 1] over [p_min, p_max])."""
        return float(2.0 * (ratio - self.p_min) / (self.p_max - self.p_min) - 1.0)

    def _fit(self) -> float | None:
        """p* of the penalised spline on every probe (rewards as negated losses)."""
        from grasp_env.pstar import Probes, fit_spline

        probes = Probes(
            np.asarray(self.rounds, dtype=int),
            np.asarray(self.ratios, dtype=float),
            -np.asarray(self.rewards, dtype=float),
        )
        if probes.distinct < 3:
            return None
        fit = fit_spline(probes, self.p_min, self.p_max)
        return None if fit is None else float(fit.ratio)

    def vector(self, obs: Any = None) -> np.ndarray:
        """The policy's observation (`obs`: the env's observation, default the last seen)."""
        o = self.obs if obs is None else np.asarray(obs, dtype=np.float32).reshape(-1)
        rewards = np.asarray(self.rewards, dtype=float)
        scale = math.sqrt(float(np.mean(rewards**2))) if len(rewards) else 1.0
        scale = max(scale, 1e-8)
        norm = np.clip(rewards / scale, -REWARD_CLIP, REWARD_CLIP) / REWARD_CLIP
        age = (self.round_index - np.asarray(self.rounds, dtype=float)) if len(rewards) else []
        head = [
            self._unit(float(o[0])),  # committed ratio
            self._unit(float(o[6])),  # best-reward ratio so far
            2.0 * float(o[1]) - 1.0,  # share of the budget used
            float(o[3]),  # position in the round
            self.rounds_total / ROUNDS_SCALE,
            self._unit(self.pstar) if self.pstar is not None else 0.0,
            1.0 if self.pstar is not None else 0.0,
        ]
        last = np.zeros((LAST, 4))
        for k in range(min(LAST, len(rewards))):
            i = len(rewards) - 1 - k
            last[k] = (
                self._unit(self.ratios[i]),
                norm[i],
                age[i] / self.rounds_total,
                1.0,
            )
        bins = np.zeros((BINS, 2))
        if len(rewards):
            x = (np.asarray(self.ratios) - self.p_min) / (self.p_max - self.p_min)
            index = np.clip((x * BINS).astype(int), 0, BINS - 1)
            weight = DECAY ** np.asarray(age, dtype=float)
            mass = np.bincount(index, weight, minlength=BINS)
            total = np.bincount(index, weight * norm, minlength=BINS)
            bins[:, 0] = np.where(mass > 0, total / np.maximum(mass, 1e-12), 0.0)
            bins[:, 1] = np.tanh(mass)
        out = np.concatenate([head, last.ravel(), bins.ravel()]).astype(np.float32)
        return np.clip(out, -1.0, 1.0)


def feature_space() -> spaces.Box:
    """The policy's observation space."""
    return spaces.Box(-1.0, 1.0, shape=(FEATURES,), dtype=np.float32)


class AmortisedTrainEnv(gym.Wrapper):
    """The surrogate env as the amortised policy's training env.

    Observation: `HistoryFeatures`. Reward: 0 on every step but the last, which pays
    -min(cap, 100 * regret) of the episode's p* under the env's configured rule on the instance's
    true end curve (in percent of the curve's range). With `baselines` (a dict, shared by the
    envs of one vector env), the last step pays the difference to the mean of the last 32
    capped regrets of the same (instance, budget) instead: the same objective up to a constant
    per instance, with far less variance between instances (the policy cannot see which
    instance it is on). At every reset the budget is drawn from `rounds` (a list of budgets in
    rounds), so one policy serves every budget.
    """

    def __init__(
        self,
        env: gym.Env,
        rounds: tuple[int, ...] = (6, 15),
        seed: int = 0,
        cap: float = 30.0,
        baselines: dict | None = None,
        shaping: bool = False,
    ) -> None:
        """Wrap a `grasp_env/GraspLoRASurrogate-v1` env."""
        super().__init__(env)
        self.baselines = baselines
        self.shaping = shaping
        self.potential = 0.0
        self.observation_space = feature_space()
        self.rounds_choices = tuple(int(r) for r in rounds)
        self.rng = np.random.default_rng(seed)
        self.cap = cap
        self.features = HistoryFeatures()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """A new episode at a budget drawn from `rounds`."""
        if seed is not None:
            self.rng = np.random.default_rng(seed + 10_007)
        inner = self.env.unwrapped
        rounds = int(self.rng.choice(self.rounds_choices))
        inner.budget = rounds * inner.config.update_interval
        obs, info = self.env.reset(seed=seed, options=options)
        self.features.reset(self.env, obs, info)
        self.potential = self._potential() if self.shaping else 0.0
        return self.features.vector(), info

    def _potential(self) -> float:
        """-min(cap, 100 x regret) of p* so far (the configured rule) on the true end curve."""
        inner = self.env.unwrapped
        return -min(self.cap, 100.0 * float(inner.instance.regret(inner.learned_ratio())))

    def step(self, action):
        """One probe; the last step pays the negated regret of p* (percent, capped)."""
        obs, probe_reward, terminated, truncated, info = self.env.step(action)
        self.features.step(obs, probe_reward, info, action)
        reward = 0.0
        inner = self.env.unwrapped
        if self.shaping and (terminated or truncated or not inner.candidates):
            # a round closed: pay the change of the potential (sums to the final regret
            # minus the start's, a constant: the optimal policy is unchanged)
            now = self._potential()
            reward, self.potential = now - self.potential, now
        if terminated or truncated:
            inner = self.env.unwrapped
            regret = float(inner.instance.regret(inner.learned_ratio()))
            info = {**info, "regret": regret}
            if not self.shaping:
                reward = -min(self.cap, 100.0 * regret)
            if self.baselines is not None and not self.shaping:
                seen = self.baselines.setdefault((inner.instance.name, inner.budget), [])
                base = float(np.mean(seen)) if seen else reward
                seen.append(reward)
                del seen[:-32]
                reward -= base
        return self.features.vector(), reward, terminated, truncated, info


def make_train_env(
    instances: str = "train",
    rounds: tuple[int, ...] = (6, 15),
    seed: int = 0,
    baselines: dict | None = None,
    shaping: bool = False,
) -> gym.Env:
    """The registered surrogate env on `instances`, wrapped for training (`AmortisedTrainEnv`)."""
    from dataclasses import replace

    import grasp_env
    from grasp_env.config import ExperimentConfig

    cfg = ExperimentConfig()
    ctrl = replace(cfg.controller, train_steps=max(rounds) * cfg.controller.update_interval)
    env = gym.make(grasp_env.SURROGATE_ENV_ID, config=cfg, controller=ctrl, instances=instances)
    return AmortisedTrainEnv(env, rounds=rounds, seed=seed, baselines=baselines, shaping=shaping)


# ---------------------------------------------------------------- the policy


def _metadata_path(path: Path) -> Path:
    return path.with_suffix(".json")


@lru_cache(maxsize=4)
def load_policy(path: str | None = None) -> Any:
    """The frozen SB3 ActorCriticPolicy stored at `path` (default: the shipped one); cached.

    The file is a state_dict read with `torch.load(weights_only=True)`; the architecture comes
    from the metadata JSON beside it.
    """
    import torch
    from stable_baselines3.common.policies import ActorCriticPolicy

    file = Path(path) if path is not None else POLICY_PATH
    meta_file = _metadata_path(file)
    if not file.is_file() or not meta_file.is_file():
        raise FileNotFoundError(
            f"amortised policy {file} (or its metadata {meta_file.name}) is missing; fix: "
            "rebuild it with scripts/train_amortised.py (its docstring has the command)"
        )
    meta = json.loads(meta_file.read_text())
    if meta.get("features") != FEATURES or meta.get("version") != VERSION:
        raise ValueError(
            f"amortised policy {file} was trained on feature layout v{meta.get('version')} "
            f"({meta.get('features')} numbers); this code builds v{VERSION} ({FEATURES}); fix: "
            "retrain it with scripts/train_amortised.py"
        )
    policy = ActorCriticPolicy(
        feature_space(),
        spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32),
        lr_schedule=lambda _: 0.0,
        net_arch=meta["net_arch"],
        activation_fn=getattr(torch.nn, meta.get("activation", "Tanh")),
        log_std_init=0.0,
    )
    policy.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
    policy.set_training_mode(False)
    return policy, meta


def policy_action(policy: Any, features: np.ndarray) -> tuple[float, float]:
    """(mean, std) of the policy's Gaussian action for one feature vector."""
    import torch

    with torch.no_grad():
        dist = policy.get_distribution(torch.as_tensor(features[None], dtype=torch.float32))
        mean = float(dist.distribution.mean.reshape(-1)[0])
        std = float(dist.distribution.stddev.reshape(-1)[0])
    return mean, std


class AmortisedAgent(_Agent):
    """Acts with the pretrained amortised policy; learns nothing at run time.

    `stochastic`: each action is drawn from the policy's Gaussian with this agent's own
    generator (seeded by `learn(seed)`), so an episode is a pure function of the seed; False:
    the Gaussian's mean (the episode then depends on the seed through the env's noise only).
    Default (None): the mode the training script scored better on the train instances (the
    metadata's `stochastic`; the shipped policy: the mean).
    """

    name = "amortised"

    def __init__(
        self,
        env: gym.Env,
        config: Any = None,
        seed: int | None = 0,
        policy_path: str | Path | None = None,
        stochastic: bool | None = None,
    ) -> None:
        """Load the policy (cached per path) and seed the action draws."""
        super().__init__(env, config)
        self.policy_path = None if policy_path is None else str(policy_path)
        self.policy, self.meta = load_policy(self.policy_path)
        self.stochastic = (
            bool(self.meta.get("stochastic", True)) if stochastic is None else stochastic
        )
        self.rng = np.random.default_rng(seed)
        self.features = HistoryFeatures()
        self._armed = False

    def _act(self, obs: Any = None) -> np.ndarray:
        mean, std = policy_action(self.policy, self.features.vector(obs))
        a = mean + std * float(self.rng.standard_normal()) if self.stochastic else mean
        return np.array([np.clip(a, -1.0, 1.0)], dtype=np.float32)

    def predict(self, obs: Any = None, deterministic: bool = False) -> tuple[np.ndarray, None]:
        """The policy's action for the episode so far (`obs`: the env's latest observation).

        `deterministic`: the Gaussian's mean, whatever `stochastic` says.
        """
        if not self._armed:
            self.features.reset(self.env, obs if obs is not None else np.zeros(7), {})
            self._armed = True
        if deterministic:
            mean, _ = policy_action(self.policy, self.features.vector(obs))
            return np.array([np.clip(mean, -1.0, 1.0)], dtype=np.float32), None
        return self._act(obs), None

    def learn(
        self, seed: int | None = None, callback: Callable | None = None, resume: bool = False
    ) -> AmortisedAgent:
        """One episode with the frozen policy (`resume`: replay the loaded checkpoint first)."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        rec = self.recorder
        rec.start(callback, self._replay_log(resume))
        obs, info = rec.reset(seed=seed)
        self.features.reset(rec, obs, info)
        self._armed = True
        done = rec.finished is not None
        while not done:
            action = self._act(obs)
            obs, reward, terminated, truncated, info = rec.step(action)
            self.features.step(obs, reward, info, action)
            done = terminated or truncated
        self.result = rec.finished
        return self

    def save(self, path: str | Path) -> None:
        """The agent's name, the policy it acts with and its draw mode (the policy is a file)."""
        atomic_write_text(
            path,
            json.dumps(
                {
                    "agent": self.name,
                    "policy": self.policy_path or str(POLICY_PATH),
                    "stochastic": self.stochastic,
                }
            ),
        )

    @classmethod
    def load(cls, path: str | Path, env: gym.Env) -> AmortisedAgent:
        """Rebuild from `save`'s JSON (the policy file it names)."""
        data = json.loads(Path(path).read_text())
        return cls(env, policy_path=data.get("policy"), stochastic=data.get("stochastic"))
