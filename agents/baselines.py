"""Baseline agents with the GRPO controller's surface: SB3 algorithms, random search, Optuna, fixed.

Every agent runs exactly one controller episode in `learn` (the same probe budget as GRPO) and
reports each finished round to the runner's callback, so TensorBoard and history.jsonl look the
same for all of them. The learned ratio is read from the env under the configured p* rule.

Stable-Baselines3 resets a finished episode at once (DummyVecEnv's auto-reset), which would wipe
the env's record of the run; `EpisodeRecorder` keeps a snapshot of the finished episode.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["SB3_ALGOS", "EpisodeRecorder", "FixedAgent", "OptunaAgent", "RandomAgent", "SB3Agent"]


class EpisodeRecorder(gym.Wrapper):
    """Reports every finished round and snapshots the episode's results before any reset."""

    def __init__(self, env: gym.Env, on_round: Callable[[dict[str, Any]], None] | None) -> None:
        """Wrap a GraspLoRA-v0 env; `on_round` receives one dict per finished round."""
        super().__init__(env)
        self.on_round = on_round
        self.finished: dict[str, Any] | None = None

    def step(self, action):
        """Step, report a closed round, snapshot the episode when it ends."""
        inner = self.env.unwrapped
        rounds_before = len(inner.history)
        obs, reward, terminated, truncated, info = self.env.step(action)
        # After the episode ends SB3 auto-resets and may step on: that is not this episode.
        reporting = self.finished is None and self.on_round is not None
        if len(inner.history) > rounds_before and reporting:
            self.on_round(
                {
                    "ratios": inner.history[-1]["candidates"],
                    "rewards": inner.history[-1]["rewards"],
                    **info,
                }
            )
        if (terminated or truncated) and self.finished is None:
            self.finished = {
                "learned_ratio": inner.learned_ratio(),
                "learned_ratio_by_rule": {
                    r: inner.learned_ratio(r) for r in ("fit", "best_reward", "last_committed")
                },
                "rounds": len(inner.history),
            }
        return obs, reward, terminated, truncated, info


def _episode_steps(env: gym.Env) -> int:
    """Probes of one full episode: ceil(budget / K) rounds (the last round may be short)."""
    inner = env.unwrapped
    rounds = -(-inner.budget // inner.config.update_interval)
    return rounds * inner.config.group_size


class _Agent:
    """Shared surface: `learn`, `predict`, `save`, `load`, and the finished-episode record."""

    name = "agent"
    archive_suffix = ".json"
    """File ending of `save`'s output (SB3 agents: .zip)."""

    def __init__(self, env: gym.Env, config: Any = None) -> None:
        self.env = env
        self.config = config
        self.finished: dict[str, Any] | None = None

    def predict(self, obs: Any = None, deterministic: bool = False) -> tuple[np.ndarray, None]:
        """SB3-style (action, state)."""
        raise NotImplementedError

    def save(self, path: str | Path) -> None:
        """Nothing to save but the name (stateless baselines)."""
        Path(path).write_text(json.dumps({"agent": self.name}))

    @classmethod
    def load(cls, path: str | Path, env: gym.Env) -> _Agent:
        """Rebuild a stateless baseline."""
        json.loads(Path(path).read_text())
        return cls(env)

    def _run(self, seed: int | None, callback: Callable | None, act: Callable) -> _Agent:
        rec = EpisodeRecorder(self.env, callback)
        obs, _ = rec.reset(seed=seed)
        done = False
        while not done:
            obs, reward, terminated, truncated, info = rec.step(act(obs))
            done = terminated or truncated
            self._observe(info, reward)
        self.finished = rec.finished
        return self

    def _observe(self, info: dict[str, Any], reward: float) -> None:
        """Hook for agents that learn from each probe."""


class RandomAgent(_Agent):
    """Uniformly random candidate ratios (PAPER.md: the commit rule alone does much of the work)."""

    name = "random"

    def __init__(self, env: gym.Env, config: Any = None, seed: int = 0) -> None:
        """Seeded uniform proposals."""
        super().__init__(env, config)
        self.rng = np.random.default_rng(seed)

    def predict(self, obs: Any = None, deterministic: bool = False) -> tuple[np.ndarray, None]:
        """A uniform action in [-1, 1]."""
        return self.rng.uniform(-1, 1, size=1).astype(np.float32), None

    def learn(self, seed: int | None = None, callback: Callable | None = None) -> RandomAgent:
        """One episode of random probes."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        return self._run(seed, callback, lambda obs: self.predict(obs)[0])


class OptunaAgent(_Agent):
    """Optuna's TPE sampler through ask/tell: each probe is one trial, its reward the value."""

    name = "optuna"

    def predict(self, obs: Any = None, deterministic: bool = False) -> tuple[np.ndarray, None]:
        """Ask the study for the next action."""
        self._trial = self.study.ask()
        return np.array([self._trial.suggest_float("action", -1.0, 1.0)], dtype=np.float32), None

    def learn(self, seed: int | None = None, callback: Callable | None = None) -> OptunaAgent:
        """One episode; the study maximises the probe reward."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(seed=seed or 0, n_startup_trials=6)
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        return self._run(seed, callback, lambda obs: self.predict(obs)[0])

    def _observe(self, info: dict[str, Any], reward: float) -> None:
        self.study.tell(self._trial, reward)


class FixedAgent(_Agent):
    """No controller: the learned ratio is the given one (`--fixed-ratio`)."""

    name = "fixed"

    def __init__(self, env: gym.Env, config: Any = None, ratio: float = 0.4) -> None:
        """The ratio every probe proposes and the run reports."""
        super().__init__(env, config)
        cfg = env.unwrapped.config
        if not cfg.p_min <= ratio <= cfg.p_max:
            raise ValueError(
                f"fixed ratio={ratio} is outside [p_min, p_max] = "
                f"[{cfg.p_min}, {cfg.p_max}]; fix: pass a ratio inside the range"
            )
        self.ratio = ratio

    def predict(self, obs: Any = None, deterministic: bool = False) -> tuple[np.ndarray, None]:
        """The action of the fixed ratio."""
        cfg = self.env.unwrapped.config
        a = (self.ratio - cfg.p_min) / (cfg.p_max - cfg.p_min) * 2 - 1
        return np.array([a], dtype=np.float32), None

    def learn(self, seed: int | None = None, callback: Callable | None = None) -> FixedAgent:
        """No episode: the ratio is given."""
        self.finished = {
            "learned_ratio": self.ratio,
            "rounds": 0,
            "learned_ratio_by_rule": {"fixed": self.ratio},
        }
        return self


_SMALL_NET = {"net_arch": [32]}
_OFF_POLICY = {
    "learning_starts": 6,
    "batch_size": 16,
    "gradient_steps": 4,
    "buffer_size": 1000,
    "learning_rate": 3e-3,
    "policy_kwargs": {"net_arch": [32, 32]},
}

SB3_ALGOS: dict[str, tuple[str, str, dict[str, Any]]] = {
    # name: (module, class, hyperparameters for a few dozen expensive steps)
    "ppo": (
        "stable_baselines3",
        "PPO",
        {
            "n_steps": 9,
            "batch_size": 9,
            "n_epochs": 4,
            "learning_rate": 3e-3,
            "policy_kwargs": _SMALL_NET,
        },
    ),
    "a2c": (
        "stable_baselines3",
        "A2C",
        {"n_steps": 3, "learning_rate": 3e-3, "policy_kwargs": _SMALL_NET},
    ),
    "sac": ("stable_baselines3", "SAC", _OFF_POLICY),
    "td3": ("stable_baselines3", "TD3", _OFF_POLICY),
    "tqc": (
        "sb3_contrib",
        "TQC",
        {**_OFF_POLICY, "policy_kwargs": {"net_arch": [32, 32], "n_critics": 2}},
    ),
}
"""SB3 algorithms by name, with small networks and early learning for short episodes."""


class SB3Agent(_Agent):
    """A Stable-Baselines3 algorithm learning over one controller episode."""

    def __init__(self, env: gym.Env, config: Any = None, algo: str = "ppo", seed: int = 0) -> None:
        """Build the algorithm on a recorder-wrapped env (TD3 gets explicit Gaussian noise)."""
        import importlib

        super().__init__(env, config)
        if algo not in SB3_ALGOS:
            raise ValueError(
                f"SB3 algorithm {algo!r} is unknown; fix: use one of {sorted(SB3_ALGOS)}"
            )
        module, cls, params = SB3_ALGOS[algo]
        self.name = algo
        self.archive_suffix = ".zip"
        self.recorder = EpisodeRecorder(env, None)
        kwargs = copy.deepcopy(params)  # SB3 may modify policy_kwargs in place
        if algo == "td3":
            from stable_baselines3.common.noise import NormalActionNoise

            kwargs["action_noise"] = NormalActionNoise(np.zeros(1), 0.3 * np.ones(1))
        algo_cls = getattr(importlib.import_module(module), cls)
        self.model = algo_cls(
            "MlpPolicy", self.recorder, seed=seed, verbose=0, device="cpu", **kwargs
        )
        # SB3's default logger makes an empty $TMPDIR/SB3-<time> folder per learn() call; our
        # TensorBoard logging goes through the run directory instead.
        from stable_baselines3.common.logger import Logger

        self.model.set_logger(Logger(folder=None, output_formats=[]))

    def predict(self, obs: Any = None, deterministic: bool = False) -> tuple[np.ndarray, None]:
        """The SB3 policy's action."""
        action, state = self.model.predict(obs, deterministic=deterministic)
        return np.asarray(action, dtype=np.float32).reshape(1), state

    def learn(self, seed: int | None = None, callback: Callable | None = None) -> SB3Agent:
        """One episode's worth of probes (the GRPO budget)."""
        self.recorder.on_round = callback
        self.recorder.finished = None
        if seed is not None:
            self.model.set_random_seed(seed)
        from stable_baselines3.common.callbacks import BaseCallback

        recorder = self.recorder

        class _StopAtEpisodeEnd(BaseCallback):
            """The episode may end early (settle rule, divergence): stop learning there."""

            def _on_step(self) -> bool:
                return recorder.finished is None

        self.model.learn(total_timesteps=_episode_steps(self.env), callback=_StopAtEpisodeEnd())
        self.finished = self.recorder.finished
        return self

    def save(self, path: str | Path) -> None:
        """SB3's own zip archive (a pickle: load it only from a run directory you wrote)."""
        self.model.save(str(path))

    @classmethod
    def load(
        cls, path: str | Path, env: gym.Env, algo: str = "ppo", run_dir: str | Path | None = None
    ) -> SB3Agent:
        """Load a zip written by `save`, but only from inside `run_dir`.

        SB3 archives are pickles and unpickling runs code, so an archive is only ever read
        from the run directory that wrote it (the caller names it; a path that resolves
        outside it, symlinks included, is refused).
        """
        if run_dir is None:
            raise ValueError(
                "SB3Agent.load without run_dir; fix: pass run_dir= the run directory that wrote "
                "the archive (SB3 archives are pickles: never load one from elsewhere)"
            )
        resolved, root = Path(path).resolve(), Path(run_dir).resolve()
        if not resolved.is_relative_to(root):
            raise ValueError(
                f"SB3 archive {str(path)!r} lies outside run_dir {str(run_dir)!r}; fix: load only "
                "archives your own run wrote (unpickling a foreign file runs its code)"
            )
        agent = cls(env, algo=algo)
        agent.model = type(agent.model).load(str(resolved), env=agent.recorder, device="cpu")
        return agent
