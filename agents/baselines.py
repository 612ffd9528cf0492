"""Baseline agents with the GRPO controller's surface: SB3 algorithms, random search, Optuna, fixed.

Every agent runs exactly one controller episode in `learn` (the same probe budget as GRPO) and
reports each finished round to the runner's callback, so TensorBoard and history.jsonl look the
same for all of them. The learned ratio is read from the env under the configured p* rule.

Every agent hands its episode back the same way: `agent.result`, a
`grasp_env.env.EpisodeResult` (learned ratio under every rule, rounds, optimizer steps, why
the episode ended), set by `learn`.

Stable-Baselines3 resets a finished episode at once (DummyVecEnv's auto-reset), and a reset of
GraspLoRA-v1 trains the first K steps of a new controller run. `EpisodeRecorder` snapshots the
result when the episode ends and turns the auto-reset that follows into a no-op, so the env
still holds the finished episode and no extra round is trained or timed.

Round-level resume works by replay. `EpisodeRecorder` logs every transition the agent saw
(reset and steps, as plain data) and the agent's `state_dict` is that log. On `--resume` the env
is restored from its round checkpoint and the agent is rebuilt with the same seed and fed the
logged transitions instead of the env's (no LM work: the agent's learning is cheap), so its
networks, buffers, optimiser and random streams reach exactly the state they had at the
checkpoint, whatever the algorithm keeps inside (SB3's rollout or replay buffer, Optuna's
trials, a generator). Each replayed action is checked against the logged one: a mismatch
(another machine, another library version) is an error, not a silently different episode.
The LM's dropout draws from a stream of its own (`grasp_env.seeding.PrivateTorchStream`), so
the agent's draws during the replay match the uninterrupted run's.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from grasp_env.atomic import atomic_file, atomic_write_text
from grasp_env.runs.checkpoint import CheckpointError

__all__ = ["SB3_ALGOS", "EpisodeRecorder", "FixedAgent", "OptunaAgent", "RandomAgent", "SB3Agent"]


class EpisodeRecorder(gym.Wrapper):
    """Reports every finished round; keeps the finished episode from being reset away."""

    def __init__(self, env: gym.Env, on_round: Callable[[dict[str, Any]], None] | None) -> None:
        """Wrap a GraspLoRA env; `on_round` receives one dict per finished round."""
        super().__init__(env)
        self.on_round = on_round
        self.finished: Any = None
        """The EpisodeResult of the finished episode (None while it runs)."""
        self._last: tuple[Any, dict[str, Any]] | None = None
        self.log: list[dict[str, Any]] = []
        """Every transition of this episode as plain data: the agent's round checkpoint."""
        self._replay: list[dict[str, Any]] = []

    def start(
        self,
        on_round: Callable[[dict[str, Any]], None] | None,
        replay: list[dict[str, Any]] | None = None,
    ) -> None:
        """Arm for a new episode: the next reset is a real one, or the first of `replay`.

        With `replay` (a `log` from a round checkpoint, the env already restored to that
        checkpoint), the logged transitions are served to the agent in order without touching
        the env and without reporting rounds (they were reported before the interruption).
        """
        self.on_round, self.finished, self._last = on_round, None, None
        self.log, self._replay = [], list(replay or [])

    def reset(self, **kwargs: Any):
        """A real reset, unless the episode has finished: then the final observation again.

        SB3 resets a finished episode before its callback can stop learning; resetting
        GraspLoRA would wipe the episode and train K steps of a new one.
        """
        if self.finished is not None and self._last is not None:
            return self._last
        if self._replay:
            logged = self._replay.pop(0)
            _expect(logged, "reset", len(self.log))
            obs, info = _obs(logged["obs"]), logged["info"]
        else:
            obs, info = self.env.reset(**kwargs)
        self.log.append({"kind": "reset", "obs": _plain(obs), "info": _plain(info)})
        if info["termination"]:  # ended within the reset (diverged or stalled in its first K)
            self.finished, self._last = self._result(), (obs, info)
        return obs, info

    def _result(self) -> Any:
        """The env's EpisodeResult (through the documented agent API)."""
        return self.env.get_wrapper_attr("episode_result")()

    def step(self, action):
        """Step, report a closed round, snapshot the episode when it ends.

        A step after the episode has ended (SB3 steps once after a reset that already ended
        it) touches nothing and reports the end again.
        """
        if self.finished is not None and self._last is not None:
            obs, info = self._last
            return obs, 0.0, True, False, info
        if self._replay:
            return self._replayed_step(action)
        history = self.env.get_wrapper_attr("history")
        rounds_before = len(history)
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.log.append(
            {
                "kind": "step",
                "action": _plain(np.asarray(action, dtype=np.float32).reshape(-1)),
                "obs": _plain(obs),
                "reward": float(reward),
                "terminated": bool(terminated),
                "truncated": bool(truncated),
                "info": _plain(info),
            }
        )
        # After the episode ends SB3 auto-resets and may step on: that is not this episode.
        reporting = self.finished is None and self.on_round is not None
        history = self.env.get_wrapper_attr("history")
        if len(history) > rounds_before and reporting:
            self.on_round(
                {"ratios": history[-1]["candidates"], "rewards": history[-1]["rewards"], **info}
            )
        if (terminated or truncated) and self.finished is None:
            self.finished = self._result()
            self._last = (obs, info)
        return obs, reward, terminated, truncated, info

    def _replayed_step(self, action: Any):
        """The next logged step, if the agent proposes the logged action again."""
        logged = self._replay.pop(0)
        _expect(logged, "step", len(self.log))
        mine = np.asarray(action, dtype=np.float32).reshape(-1)
        if not np.array_equal(mine, np.asarray(logged["action"], dtype=np.float32)):
            raise CheckpointError(
                f"round-level resume: at transition {len(self.log)} the agent proposes "
                f"{mine.tolist()} where the interrupted run proposed {logged['action']} (another "
                "machine, thread count or library version replays differently); fix: resume on "
                "the machine and environment that wrote the checkpoint, or delete "
                "checkpoint/controller.pt to restart the controller stage"
            )
        self.log.append(logged)
        obs, info = _obs(logged["obs"]), logged["info"]
        terminated, truncated = logged["terminated"], logged["truncated"]
        if (terminated or truncated) and self.finished is None:
            self.finished = self._result()
            self._last = (obs, info)
        return obs, logged["reward"], terminated, truncated, info


def _plain(value: Any) -> Any:
    """Numpy values as Python ones (a checkpoint loads with weights_only: no numpy objects)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _obs(values: list[float]) -> np.ndarray:
    """A logged observation back as the env's float32 array (float32 -> float -> float32: exact)."""
    return np.asarray(values, dtype=np.float32)


def _expect(logged: dict[str, Any], kind: str, index: int) -> None:
    if logged.get("kind") != kind:
        raise CheckpointError(
            f"round-level resume: transition {index} of the checkpoint is a "
            f"{logged.get('kind')!r}, the agent asks for a {kind!r}; fix: delete "
            "checkpoint/controller.pt to restart the controller stage"
        )


def _episode_steps(env: gym.Env) -> int:
    """Probes of one full episode: ceil(budget / K) rounds (the last round may be short)."""
    config = env.get_wrapper_attr("config")
    rounds = -(-env.get_wrapper_attr("budget") // config.update_interval)
    return rounds * config.group_size


class _Agent:
    """Shared surface: `learn`, `predict`, `save`, `load`, and `result` after `learn`."""

    name = "agent"
    archive_suffix = ".json"
    """File ending of `save`'s output (SB3 agents: .zip)."""

    def __init__(self, env: gym.Env, config: Any = None) -> None:
        self.env = env
        self.config = config
        self.result: Any = None
        """The EpisodeResult of the last `learn` (None before)."""
        self.recorder = EpisodeRecorder(env, None)
        self._pending: list[dict[str, Any]] = []

    def state_dict(self) -> dict[str, Any]:
        """The transitions of the episode so far (a round checkpoint's agent part; see replay)."""
        return {"log": list(self.recorder.log)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replay `state`'s transitions in the next `learn(resume=True)`."""
        self._pending = list(state["log"])

    def _replay_log(self, resume: bool) -> list[dict[str, Any]] | None:
        if not resume:
            return None
        if not self._pending:
            raise CheckpointError(
                f"{self.name}: learn(resume=True) without a loaded checkpoint; fix: call "
                "load_state_dict(state['agent']) first"
            )
        log, self._pending = self._pending, []
        return log

    def predict(self, obs: Any = None, deterministic: bool = False) -> tuple[np.ndarray, None]:
        """SB3-style (action, state)."""
        raise NotImplementedError

    def save(self, path: str | Path) -> None:
        """Nothing to save but the name (stateless baselines)."""
        atomic_write_text(path, json.dumps({"agent": self.name}))

    @classmethod
    def load(cls, path: str | Path, env: gym.Env) -> _Agent:
        """Rebuild a stateless baseline."""
        json.loads(Path(path).read_text())
        return cls(env)

    def _run(
        self, seed: int | None, callback: Callable | None, act: Callable, resume: bool = False
    ) -> _Agent:
        rec = self.recorder
        rec.start(callback, self._replay_log(resume))
        obs, _ = rec.reset(seed=seed)
        done = rec.finished is not None
        while not done:
            obs, reward, terminated, truncated, info = rec.step(act(obs))
            done = terminated or truncated
            self._observe(info, reward)
        self.result = rec.finished
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
        """The action of a uniformly random ratio in [p_min, p_max]."""
        from agents.grpo import action_for

        cfg = self.env.get_wrapper_attr("config")
        return action_for(self.env, float(self.rng.uniform(cfg.p_min, cfg.p_max))), None

    def learn(
        self, seed: int | None = None, callback: Callable | None = None, resume: bool = False
    ) -> RandomAgent:
        """One episode of random probes (`resume`: replay the loaded checkpoint first)."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        return self._run(seed, callback, lambda obs: self.predict(obs)[0], resume)


class OptunaAgent(_Agent):
    """Optuna's TPE sampler through ask/tell: each probe is one trial, its reward the value."""

    name = "optuna"

    def __init__(self, env: gym.Env, config: Any = None, seed: int | None = 0) -> None:
        """TPE seeded with `seed` (a `learn(seed=...)` reseeds it)."""
        super().__init__(env, config)
        self.seed = seed

    def predict(self, obs: Any = None, deterministic: bool = False) -> tuple[np.ndarray, None]:
        """Ask the study for the next ratio; its action."""
        from agents.grpo import action_for

        cfg = self.env.get_wrapper_attr("config")
        self._trial = self.study.ask()
        return action_for(self.env, self._trial.suggest_float("ratio", cfg.p_min, cfg.p_max)), None

    def learn(
        self, seed: int | None = None, callback: Callable | None = None, resume: bool = False
    ) -> OptunaAgent:
        """One episode; the study maximises the probe reward (`resume`: replay first)."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(
            seed=self.seed if seed is None else seed, n_startup_trials=6
        )
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        return self._run(seed, callback, lambda obs: self.predict(obs)[0], resume)

    def _observe(self, info: dict[str, Any], reward: float) -> None:
        self.study.tell(self._trial, reward)


class FixedAgent(_Agent):
    """No controller: the learned ratio is the given one (`--fixed-ratio`)."""

    name = "fixed"

    def __init__(self, env: gym.Env, config: Any = None, ratio: float = 0.4) -> None:
        """The ratio every probe proposes and the run reports."""
        super().__init__(env, config)
        cfg = env.get_wrapper_attr("config")
        if not cfg.p_min <= ratio <= cfg.p_max:
            raise ValueError(
                f"fixed ratio={ratio} is outside [p_min, p_max] = "
                f"[{cfg.p_min}, {cfg.p_max}]; fix: pass a ratio inside the range"
            )
        self.ratio = ratio

    def predict(self, obs: Any = None, deterministic: bool = False) -> tuple[np.ndarray, None]:
        """The action of the fixed ratio."""
        from agents.grpo import action_for

        return action_for(self.env, self.ratio), None

    def learn(
        self, seed: int | None = None, callback: Callable | None = None, resume: bool = False
    ) -> FixedAgent:
        """No episode: the ratio is given (so nothing to resume)."""
        from grasp_env.env import EpisodeResult

        self.result = EpisodeResult(
            learned_ratio=self.ratio,
            learned_ratio_by_rule={"fixed": self.ratio},
            rounds=0,
            steps_done=0,
            termination="no controller",
            committed_ratio=self.ratio,
        )
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

    def learn(
        self, seed: int | None = None, callback: Callable | None = None, resume: bool = False
    ) -> SB3Agent:
        """One episode's worth of probes (the GRPO budget); `resume`: replay the checkpoint.

        The model is the freshly built one (same seed) on resume: the replay rebuilds its
        networks, buffers and optimiser from the logged transitions.
        """
        self.recorder.start(callback, self._replay_log(resume))
        if seed is not None:
            self.model.set_random_seed(seed)
        from stable_baselines3.common.callbacks import BaseCallback

        recorder = self.recorder

        class _StopAtEpisodeEnd(BaseCallback):
            """The episode may end early (settle rule, divergence): stop learning there."""

            def _on_step(self) -> bool:
                return recorder.finished is None

        self.model.learn(total_timesteps=_episode_steps(self.env), callback=_StopAtEpisodeEnd())
        self.result = self.recorder.finished
        return self

    def save(self, path: str | Path) -> None:
        """SB3's own zip archive (a pickle: load it only from a run directory you wrote).

        Written aside and renamed into place: a kill mid-save leaves the previous archive.
        """
        with atomic_file(path) as tmp:
            self.model.save(str(tmp))

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
