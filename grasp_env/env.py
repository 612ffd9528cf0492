"""GraspLoRA-v1: the GRASP LoRA controller run as a Gymnasium environment."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from grasp_env.config import ControllerConfig, ExperimentConfig, choices

__all__ = [
    "PSTAR_RULES",
    "ControllerConfig",
    "EpisodeResult",
    "GraspLoRAEnv",
    "commit_ratio",
]

PSTAR_RULES: tuple[str, ...] = choices(ControllerConfig, "pstar_rule")
FITTED_RULES: tuple[str, ...] = (
    "spline",
    "spline_recent",
    "spline_cost",
    "spline_recent_cost",
    "quadratic",
)
"""The rules that fit a curve to every probe (`pstar_fit`); the others read the history."""
"""The p* rules `learned_ratio` knows (`--controller.pstar-rule`)."""

_LOSS_CAP = 20.0
_REWARD_CAP = 10.0
_MATCH_TOL = 1e-5
"""How close a stepped ratio must be to an announced one (`probe_ahead`) to take its loss:
action wrappers (RescaleAction) round-trip a ratio through float32 arithmetic."""


@dataclass(frozen=True)
class EpisodeResult:
    """What one controller episode hands back, whichever agent drove it."""

    learned_ratio: float
    """p* under the configured rule."""
    learned_ratio_by_rule: dict[str, float]
    """p* under every rule (the paper's best_reward, last_committed, the estimators)."""
    rounds: int
    """Rounds completed."""
    steps_done: int
    """Optimizer steps the controller run trained."""
    termination: str
    """Why the episode ended ('budget spent', 'settled', 'diverged: ...', 'stalled: ...', or
    'no controller' for the fixed agent)."""
    committed_ratio: float
    """The committed ratio at the end."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data (controller.json, metrics.json)."""
        return asdict(self)


def commit_ratio(
    committed: float,
    candidates: list[float],
    rewards: list[float],
    cfg: ControllerConfig,
) -> tuple[float, bool, int]:
    """The paper's commit rule for one round.

    b = argmax r; if r_b >= 0 (or always, with commit_rule='best'):
    p <- clamp(p + clip(rho_b - p, -max_step_delta, +max_step_delta), p_min, p_max).

    Returns:
        (new committed ratio, whether it moved, index of the best candidate).
    """
    best = int(np.argmax(rewards))
    if cfg.commit_rule != "best" and rewards[best] < 0:
        return committed, False, best
    step = float(np.clip(candidates[best] - committed, -cfg.max_step_delta, cfg.max_step_delta))
    return float(np.clip(committed + step, cfg.p_min, cfg.p_max)), True, best


class GraspLoRAEnv(gym.Env):
    """GRASP LoRA's controller run: probe prune ratios while the merged adapter trains.

    ## Description
    A source-language and a target-language LoRA are merged on a frozen backbone; the merged
    adapter is fine-tuned on the 50-row target train split while a committed magnitude mask
    prunes it at the committed ratio p. Every K optimizer steps a round runs: C candidate
    ratios are probed on the micro-dev set, the best candidate moves p (bounded step), the mask
    is rebuilt at p from fresh importance, and training continues. Masks are absolute: pruned
    values are kept in a stash (`grasp_env.lm.pruning.PruneState`), so a candidate below p
    measures a less pruned model and a downward commit revives the released weights. One env
    step probes one candidate; an episode is one controller run. The learned ratio p* is read
    from `learned_ratio()` (or `episode_result()`) after the episode.

    ## Action Space
    `Box(-1, 1, (1,), float32)`, mapped linearly onto [p_min, p_max].

    ## Observation Space
    `Box(low, high, (7,), float32)`:

    | index | observation | min | max |
    |---|---|---|---|
    | 0 | committed ratio p | 0 | 1 |
    | 1 | fraction of the training budget used | 0 | 1 |
    | 2 | baseline micro-dev loss L0 (capped) | 0 | 20 |
    | 3 | position in the round (probes done / C) | 0 | 1 |
    | 4 | last reward (capped; 0 at a round start) | -10 | 10 |
    | 5 | last candidate ratio (p at a round start) | 0 | 1 |
    | 6 | best-reward ratio so far (p before any probe) | 0 | 1 |

    ## Rewards
    `improvement` (default): r = L0 - L(candidate), micro-dev token-mean cross-entropy on
    target tokens; positive means the candidate beats the committed state. `relative`:
    (L0 - L) / L0. Returned as a Python float. Before the first commit L0 is the unpruned
    model's loss (`start='unpruned'`).

    ## Starting State
    The freshly merged adapter, unpruned until the first commit as in the reference
    (`start='p_init'`: pruned at p_init); the committed ratio p = p_init; a fresh AdamW; the
    train-row order drawn from the reset seed; K optimizer steps already taken; L0 measured.

    ## Episode End
    `terminated=True` when the optimizer-step budget is spent (after the last round's commit),
    when the learned ratio has settled (`settle_rounds` > 0, off by default), when the
    training loss is NaN/inf, or when the process took no optimizer step (a stalled process
    would never end the episode); `info["termination"]` says which. Truncation only through
    `max_episode_steps` (TimeLimit).

    ## Arguments
    `config`: an `grasp_env.config.ExperimentConfig` (default: the `default` preset); the env
    reads `config.controller` and, unless `prepared` is given, builds the pipeline it
    describes (backbone and adapters cached). `controller`: a `ControllerConfig` that replaces
    `config.controller` (convenient for stand-ins). `prepared`: an already prepared pipeline
    (`grasp_env.lm.pipeline.prepare`), whose config is then the env's. `process`: a stand-in
    process with the same five methods (`grasp_env.synthetic`, `grasp_env.surrogate`); then
    the controller's `train_steps` is the budget.

    ## Agent API
    Agents reach these through `env.get_wrapper_attr(name)`, so wrappers keep working:
    - `config`: the `ControllerConfig` (p_min, p_max, group_size, update_interval, ...);
    - `budget`: optimizer steps of the run;
    - `probe_ahead(ratios)`: announce the ratios the next steps of the round will propose, so
      that the process can score them together (`--controller.probe-batch group`);
    - `episode_result()`: the `EpisodeResult` so far (its `termination` is empty while the
      episode runs; `committed_ratio` is the committed ratio);
    - `history`: one record per finished round (candidates, rewards, losses, L0, commit);
    - `learned_ratio(rule)`: p* under any rule of `PSTAR_RULES`.

    ## Version History
    - v1: absolute masks with a stash (probes below p measure a less pruned model; a
      downward commit restores the released weights); unpruned until the first commit
      (reference); L0 enters p* at the ratio of the mask in force; p* rule 'spline' by
      default; episode_result(); a stalled process ends the episode. Later, without a change
      of semantics: one config tree (`config=`), announced ratios matched within 1e-5; the
      default p* rule 'spline_recent_cost' (2026-12-07; a config default, not the env's
      semantics: every rule is still read from the same history).
    - v0: initial version (probes at or below p returned L0; pruned at p_init from reset).
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        config: ExperimentConfig | None = None,
        *,
        controller: ControllerConfig | None = None,
        prepared: Any = None,
        process: Any = None,
        render_mode: str | None = None,
    ) -> None:
        """Build (or take) the process behind the env, and the spaces."""
        if render_mode is not None:
            raise ValueError(f"render_mode={render_mode!r}; fix: GraspLoRA-v1 has no rendering")
        if config is not None and not isinstance(config, ExperimentConfig):
            raise TypeError(
                f"config is a {type(config).__name__}; fix: pass a grasp_env.config."
                "ExperimentConfig (e.g. ExperimentConfig.from_preset('tiny'))"
            )
        if config is None:
            config = prepared.cfg if prepared is not None else ExperimentConfig()
        if controller is not None:
            if not isinstance(controller, ControllerConfig):
                raise TypeError(
                    f"controller is a {type(controller).__name__}; fix: pass a "
                    "grasp_env.config.ControllerConfig"
                )
            config = replace(config, controller=controller)
        self.experiment = config
        self.config = config.controller
        if process is not None:
            # A stand-in process (grasp_env.synthetic, grasp_env.surrogate) for controller
            # research and agent tests; never for the demo or a live benchmark.
            if self.config.train_steps is None:
                raise ValueError(
                    "controller.train_steps=None with a stand-in process; fix: set "
                    "ControllerConfig(train_steps=...) (a stand-in has no final-run recipe)"
                )
            self.process = process
            self.budget = self.config.train_steps
        else:
            if prepared is None:
                from grasp_env.lm.pipeline import prepare

                prepared = prepare(config, progress=False, log=lambda _: None)
            from grasp_env.process import LoraProcess

            self.process = LoraProcess(prepared)
            self.budget = config.budget
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.observation_space = spaces.Box(
            low=np.array([0, 0, 0, 0, -_REWARD_CAP, 0, 0], dtype=np.float32),
            high=np.array([1, 1, _LOSS_CAP, 1, _REWARD_CAP, 1, 1], dtype=np.float32),
            dtype=np.float32,
        )
        self._ready = False
        self._done = False

    # ---------------------------------------------------------------- gym API

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start a controller run from the freshly merged adapter."""
        super().reset(seed=seed)
        run_seed = int(self.np_random.integers(0, 2**31 - 1))
        self.process.reset(run_seed)
        self.committed = self.config.p_init
        self.round_index = 0
        self.candidates: list[float] = []
        self.rewards: list[float] = []
        self.losses: list[float] = []
        self.history: list[dict[str, Any]] = []
        self.estimates: list[float] = []
        self.train_losses: list[float] = []
        self.best_ratio, self.best_reward = self.committed, -math.inf
        self.last_reward, self.last_ratio = 0.0, self.committed
        self.termination = ""
        self._ahead: list[tuple[float, float]] = []
        if self.config.start == "p_init":
            self.mask_ratio = self.committed
            self.achieved = self.process.commit(self.committed)
        else:  # the reference: unpruned until a candidate beats the unpruned model
            self.mask_ratio, self.achieved = 0.0, 0.0
        self._train_round()
        self._ready, self._done = True, self.termination != ""
        return self._get_obs(), self._get_info()

    def step(self, action):
        """Probe one candidate ratio; every C steps close the round (commit, train K, L0)."""
        if not self._ready:
            raise RuntimeError("step() called before reset(); fix: call env.reset() first")
        if self._done:
            raise RuntimeError("step() called after the episode ended; fix: call env.reset()")
        ratio = self.config.ratio_of(self._check_action(action))
        announced = self._probed_ahead(ratio)
        if announced is None:
            loss = self.process.probe(ratio)
        else:
            ratio, loss = announced  # the ratio the loss was measured at
        reward = self._reward(loss)
        self.candidates.append(ratio)
        self.losses.append(loss)
        self.rewards.append(reward)
        self.last_reward, self.last_ratio = reward, ratio
        if reward > self.best_reward:
            self.best_reward, self.best_ratio = reward, ratio
        info_probe = {"candidate_ratio": ratio, "candidate_loss": loss}
        terminated = False
        if len(self.candidates) == self.config.group_size:
            self._close_round()
            terminated = self._done
        return (
            self._get_obs(),
            float(reward),
            bool(terminated),
            False,
            {**self._get_info(), **info_probe},
        )

    def probe_ahead(self, ratios: Any) -> None:
        """Probe the round's coming candidates now, together (`probe_batch='group'`).

        For agents that choose a round's candidate ratios before seeing a reward (GRPO samples
        its group at once): the process scores them in shared forward passes
        (`LoraProcess.probe_group`) and the next `step`s take their losses from here, in order.
        The episode is unchanged: rewards, commits and history are those of stepping the same
        ratios one by one (up to float rounding). A `step` whose ratio is within 1e-5 of the
        next announced one takes its loss (action wrappers round-trip ratios through float32);
        a step with another ratio probes alone and drops the rest of the announcement.
        """
        if not self._ready or self._done:
            raise RuntimeError("probe_ahead() outside a running episode; fix: call env.reset()")
        cfg = self.config
        announced = [float(r) for r in np.asarray(ratios, dtype=np.float64).reshape(-1)]
        room = cfg.group_size - len(self.candidates)
        if not 0 < len(announced) <= room:
            raise ValueError(
                f"probe_ahead got {len(announced)} ratios with {room} left in the round; fix: "
                f"announce between 1 and {room} ratios"
            )
        bad = [r for r in announced if not (math.isfinite(r) and cfg.p_min <= r <= cfg.p_max)]
        if bad:
            raise ValueError(
                f"probe_ahead ratios {bad} are outside [p_min, p_max] = [{cfg.p_min}, "
                f"{cfg.p_max}]; fix: clip them to the range"
            )
        group = getattr(self.process, "probe_group", None)
        losses = (
            group(announced) if group is not None else [self.process.probe(r) for r in announced]
        )
        self._ahead = list(zip(announced, losses, strict=True))

    def _probed_ahead(self, ratio: float) -> tuple[float, float] | None:
        """(announced ratio, loss) if `ratio` is the next one announced (else None)."""
        ahead = getattr(self, "_ahead", [])
        if ahead and abs(ahead[0][0] - ratio) <= _MATCH_TOL:
            self._ahead = ahead[1:]
            return ahead[0]
        self._ahead = []
        return None

    # ---------------------------------------------------------------- results

    def learned_ratio(self, rule: str | None = None) -> float:
        """p* under `rule` (one of PSTAR_RULES; default: the configured one).

        The fitted rules need probes at three distinct ratios; before that they answer like
        'last_committed'.
        """
        rule = rule or self.config.pstar_rule
        if rule not in PSTAR_RULES:
            raise ValueError(f"p* rule={rule!r} is unknown; fix: use one of {PSTAR_RULES}")
        if rule in FITTED_RULES:
            fit = self.pstar_fit(rule)
            return float(fit.ratio) if fit is not None else float(self.committed)
        if rule == "last_committed" or self.best_reward == -math.inf:
            return float(self.committed)
        return float(self.best_ratio)

    def episode_result(self) -> EpisodeResult:
        """The episode's result so far (complete once the episode has ended)."""
        return EpisodeResult(
            learned_ratio=self.learned_ratio(),
            learned_ratio_by_rule={r: self.learned_ratio(r) for r in PSTAR_RULES},
            rounds=len(self.history),
            steps_done=self.process.steps_done,
            termination=self.termination,
            committed_ratio=float(self.committed),
        )

    def pstar_fit(self, rule: str = "spline"):
        """The fit behind a fitted rule (FITTED_RULES) or None.

        L0 enters at the ratio of the mask it was measured with (0 before the first commit).
        """
        # one fit per rule and round: episode_result() reads the configured rule and then every
        # rule, and the REML fit of spline_recent is the costliest step of a surrogate episode
        # the key holds the history list itself: reset() and load_state_dict() replace it
        key = (rule, id(self.history), len(self.history))
        fits = self.__dict__.setdefault("_fits", {})
        if key not in fits:
            for old in [k for k in fits if k[1:] != key[1:]]:
                del fits[old]  # an older round's or episode's fits are never read again
            fits[key] = (self.history, self._fit(rule))  # the list kept: its id is not reused
        return fits[key][1]

    def _fit(self, rule: str):
        from grasp_env.pstar import (
            COST_RULES,
            fit_quadratic,
            fit_spline,
            fit_spline_cost,
            fit_spline_recent,
            probes_of,
        )

        probes = probes_of(
            [
                (h["baseline_mask_ratio"], h["baseline_loss"], h["candidates"], h["losses"])
                for h in self.history
            ]
        )
        if len(probes) == 0:
            return None
        cfg = self.config
        if rule == "quadratic":
            return fit_quadratic(probes, cfg.p_min, cfg.p_max, cfg.pstar_extrapolate)
        if rule == "spline_recent":
            return fit_spline_recent(probes, cfg.p_min, cfg.p_max)
        if rule in COST_RULES:
            drift = rule == "spline_recent_cost"
            return fit_spline_cost(probes, cfg.p_min, cfg.p_max, cfg.final_cost, drift)
        return fit_spline(probes, cfg.p_min, cfg.p_max)

    def close(self) -> None:
        """Release the process's resources (the LoRA process drops its adapter)."""
        release = getattr(self.process, "close", None)
        if release is not None:
            release()

    # ---------------------------------------------------------------- checkpoint

    _STATE_FIELDS = (
        "committed",
        "round_index",
        "candidates",
        "rewards",
        "losses",
        "history",
        "estimates",
        "train_losses",
        "best_ratio",
        "best_reward",
        "last_reward",
        "last_ratio",
        "termination",
        "achieved",
        "mask_ratio",
        "l0",
        "_done",
    )

    def state_dict(self) -> dict[str, Any]:
        """The episode so far, process included, as tensors and plain data (for resume)."""
        if not self._ready:
            raise RuntimeError("state_dict() before reset(); fix: call env.reset() first")
        state = {f: getattr(self, f) for f in self._STATE_FIELDS}
        return {"env": state, "process": self.process.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the episode of `state` (the next step is the one after the checkpoint)."""
        self.process.reset(0)  # a fresh optimizer to load into; all state is then overwritten
        self.process.load_state_dict(state["process"])
        for name, value in state["env"].items():
            setattr(self, name, value)
        self._ahead = []
        self._ready = True

    # ---------------------------------------------------------------- internals

    def _check_action(self, action: Any) -> float:
        arr = np.asarray(action)
        if arr.dtype.kind != "f":
            raise ValueError(
                f"action dtype {arr.dtype} is not floating; fix: pass a float32 array of shape (1,)"
            )
        if arr.shape != (1,):
            raise ValueError(f"action shape {arr.shape} != (1,); fix: pass np.array([a])")
        value = float(arr[0])
        if not math.isfinite(value):
            raise ValueError(f"action {value} is not finite; fix: pass a number in [-1, 1]")
        if not -1.0 <= value <= 1.0:
            raise ValueError(f"action {value} is outside [-1, 1]; fix: clip it to the space")
        return value

    def _reward(self, loss: float) -> float:
        if not math.isfinite(loss):
            return -_REWARD_CAP
        gain = self.l0 - loss
        if self.config.reward_mode == "relative":
            gain /= max(self.l0, 1e-8)
        return float(gain)

    def _train_round(self) -> None:
        k = min(self.config.update_interval, self.budget - self.process.steps_done)
        before = self.process.steps_done
        losses = self.process.train(k)
        self.train_losses.extend(losses)
        if any(not math.isfinite(x) for x in losses):
            self.termination = "diverged: training loss is not finite"
        elif k > 0 and self.process.steps_done <= before:
            # A process that does not advance would make the episode endless.
            self.termination = "stalled: the process took no optimizer step"
        self.l0 = self.process.baseline_loss()
        if not math.isfinite(self.l0):
            self.termination = "diverged: micro-dev loss is not finite"

    def _close_round(self) -> None:
        cfg = self.config
        baseline_ratio, baseline_mask_ratio = self.committed, self.mask_ratio
        self.committed, move, best = commit_ratio(
            self.committed, self.candidates, self.rewards, cfg
        )
        if move:
            # The mask follows the committed (clipped) ratio; 'candidate' keeps the reference
            # code's behaviour, where recorded ratio and real sparsity disagree.
            self.mask_ratio = (
                self.candidates[best] if cfg.commit_mask == "candidate" else self.committed
            )
            self.achieved = self.process.commit(self.mask_ratio)
        self.history.append(
            {
                "round": self.round_index,
                "step": self.process.steps_done,
                "candidates": list(self.candidates),
                "rewards": list(self.rewards),
                "losses": list(self.losses),
                "baseline_ratio": baseline_ratio,
                "baseline_mask_ratio": baseline_mask_ratio,
                "baseline_loss": self.l0,
                "committed_ratio": self.committed,
                "achieved_sparsity": self.achieved,
                "moved": move,
            }
        )
        self.round_index += 1
        self.candidates, self.rewards, self.losses = [], [], []
        self._ahead = []
        if cfg.settle_rounds:  # a fit per round only when the settle rule reads it
            self.estimates.append(self.learned_ratio())
        if self.process.steps_done >= self.budget:
            self.termination = "budget spent"
        elif self._settled():
            self.termination = "settled"
        else:
            self._train_round()
        self.last_reward, self.last_ratio = 0.0, self.committed
        self._done = self.termination != ""

    def _settled(self) -> bool:
        """The last settle_rounds + 1 p* estimates agree within settle_tol."""
        n = self.config.settle_rounds
        if n == 0 or self.round_index < max(self.config.min_rounds, n + 1):
            return False
        last = self.estimates[-(n + 1) :]
        return max(last) - min(last) <= self.config.settle_tol

    def _get_obs(self) -> np.ndarray:
        best = self.best_ratio if self.best_reward > -math.inf else self.committed
        obs = np.array(
            [
                self.committed,
                min(1.0, self.process.steps_done / self.budget),
                min(_LOSS_CAP, max(0.0, self.l0)) if math.isfinite(self.l0) else _LOSS_CAP,
                len(self.candidates) / self.config.group_size,
                float(np.clip(self.last_reward, -_REWARD_CAP, _REWARD_CAP)),
                self.last_ratio,
                best,
            ],
            dtype=np.float32,
        )
        return obs

    def _get_info(self) -> dict[str, Any]:
        return {
            "baseline_loss": self.l0,
            "committed_ratio": self.committed,
            "achieved_sparsity": self.achieved,
            "round": self.round_index,
            "steps_done": self.process.steps_done,
            "best_reward_ratio": self.learned_ratio("best_reward"),
            "termination": self.termination,
        }
