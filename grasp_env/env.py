"""GraspLoRA-v1: the GRASP LoRA controller run as a Gymnasium environment."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = [
    "COMMIT_RULES",
    "PROBE_BATCHES",
    "PSTAR_RULES",
    "REWARD_MODES",
    "STARTS",
    "ControllerConfig",
    "EpisodeResult",
    "GraspLoRAEnv",
    "commit_ratio",
]

REWARD_MODES: tuple[str, ...] = ("improvement", "relative")
COMMIT_RULES: tuple[str, ...] = ("best_nonnegative", "best")
PSTAR_RULES: tuple[str, ...] = ("spline", "quadratic", "best_reward", "last_committed")
COMMIT_MASKS: tuple[str, ...] = ("committed", "candidate")
STARTS: tuple[str, ...] = ("unpruned", "p_init")
PROBE_BATCHES: tuple[str, ...] = ("single", "group")

_LOSS_CAP = 20.0
_REWARD_CAP = 10.0


@dataclass(frozen=True)
class ControllerConfig:
    """Controller-run knobs shared by the environment and the agents (PAPER.md defaults)."""

    p_min: float = 0.10
    """Smallest prune ratio an action can propose."""
    p_max: float = 0.80
    """Largest prune ratio an action can propose."""
    p_init: float = 0.40
    """Committed ratio at the start of the run (the first commit moves at most
    max_step_delta away from it)."""
    start: str = "unpruned"
    """What the adapter trains with before the first commit: 'unpruned' (the reference: no
    mask until a candidate beats the unpruned model) or 'p_init' (pruned at p_init from the
    start, this package's behaviour before 2026-11-29)."""
    update_interval: int = 10
    """K: optimizer steps between two rounds."""
    group_size: int = 3
    """C: candidates probed per round (env steps per round)."""
    micro_dev_size: int = 16
    """Micro-dev rows each probe evaluates."""
    max_step_delta: float = 0.10
    """Largest change of the committed ratio in one round."""
    train_steps: int | None = None
    """Optimizer-step budget of the run; None takes the preset's final-run max_steps."""
    reward_mode: str = "improvement"
    """'improvement' (L0 - L, the paper) or 'relative' ((L0 - L) / L0)."""
    commit_rule: str = "best_nonnegative"
    """'best_nonnegative' (the paper: commit the best candidate only if its reward >= 0) or
    'best' (always move towards the best candidate)."""
    commit_mask: str = "committed"
    """Mask built at the 'committed' (clipped) ratio, or at the 'candidate' ratio as the
    reference code does (its recorded ratio and real sparsity then disagree)."""
    pstar_rule: str = "spline"
    """'spline' (minimiser of a penalised spline fitted to every probe of the run with round
    fixed effects), 'quadratic' (the same with a quadratic: this package's rule before
    2026-11-29, biased on curves that are not parabolas), 'best_reward' (the paper: the
    candidate with the largest single reward) or 'last_committed' (grasp_env.pstar).
    'spline' is the default on the strength of scripts/pstar_study.py (docs/BENCHMARKS.md)."""
    pstar_extrapolate: bool = False
    """'quadratic' rule: search the fitted curve only over the range of ratios probed in the
    run (False, default) or over all of [p_min, p_max] (True). A curve fitted to clustered
    probes says little far from them: with a 60-step budget the extrapolating fit put p* at
    the 0.8 bound in one QA en->ar seed (docs/BENCHMARKS.md)."""
    settle_rounds: int = 0
    """Stop the controller run early once the learned ratio (under `pstar_rule`) has stayed
    within `settle_tol` for this many consecutive rounds (0: never; the paper runs the whole
    budget). The final run is separate, so rounds after p* settles buy nothing."""
    settle_tol: float = 0.02
    """Largest spread of the last `settle_rounds` + 1 learned-ratio estimates that counts as
    settled."""
    min_rounds: int = 3
    """Rounds always run before `settle_rounds` may stop the run."""
    probe_batch: str = "single"
    """'single' (one forward pass per candidate, the reference) or 'group': an agent that
    knows a round's C candidates before the first reward (GRPO) hands them to
    `GraspLoRAEnv.probe_ahead`, which scores them in shared forward passes (PEFT's
    mixed-adapter batches). The same losses up to float rounding; which one is faster
    depends on the device (docs/BENCHMARKS.md, "Speed")."""

    def __post_init__(self) -> None:
        def bad(field: str, fix: str) -> ValueError:
            return ValueError(f"{field}={getattr(self, field)!r} is invalid; fix: {fix}")

        if not (0.0 <= self.p_min < self.p_max <= 1.0):
            raise ValueError(
                f"p_min={self.p_min!r}, p_max={self.p_max!r}: need 0 <= p_min < p_max <= 1; "
                "fix: swap or correct the bounds"
            )
        if not self.p_min <= self.p_init <= self.p_max:
            raise bad("p_init", f"use a ratio in [p_min, p_max] = [{self.p_min}, {self.p_max}]")
        if not isinstance(self.update_interval, int) or self.update_interval < 1:
            raise bad("update_interval", "use K >= 1 optimizer steps between rounds")
        if not isinstance(self.group_size, int) or self.group_size < 2:
            raise bad("group_size", "use C >= 2 candidates per round (a group needs two)")
        if not isinstance(self.micro_dev_size, int) or self.micro_dev_size < 1:
            raise bad("micro_dev_size", "use at least 1 row")
        if not 0.0 < self.max_step_delta <= 1.0:
            raise bad("max_step_delta", "use a step in (0, 1]")
        if not isinstance(self.settle_rounds, int) or self.settle_rounds < 0:
            raise bad("settle_rounds", "use 0 (off) or a positive number of rounds")
        if not 0.0 < self.settle_tol <= 1.0:
            raise bad("settle_tol", "use a spread in (0, 1]")
        if not isinstance(self.min_rounds, int) or self.min_rounds < 1:
            raise bad("min_rounds", "use at least 1 round")
        if self.train_steps is not None and self.train_steps < self.update_interval:
            raise bad("train_steps", f"use at least update_interval={self.update_interval}")
        for field, allowed in (
            ("reward_mode", REWARD_MODES),
            ("commit_rule", COMMIT_RULES),
            ("commit_mask", COMMIT_MASKS),
            ("start", STARTS),
            ("pstar_rule", PSTAR_RULES),
            ("probe_batch", PROBE_BATCHES),
        ):
            if getattr(self, field) not in allowed:
                raise bad(field, f"use one of {allowed}")

    def ratio_of(self, action: float) -> float:
        """Map an action in [-1, 1] linearly onto [p_min, p_max]."""
        return self.p_min + (float(action) + 1.0) * 0.5 * (self.p_max - self.p_min)

    def action_of(self, ratio: float) -> np.ndarray:
        """The env action that maps onto `ratio` (clipped to [-1, 1]): `ratio_of`'s inverse."""
        a = (float(ratio) - self.p_min) / (self.p_max - self.p_min) * 2.0 - 1.0
        return np.array([np.clip(a, -1.0, 1.0)], dtype=np.float32)


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
    `preset` (tiny/default/paper), `task`, `source`, `target`, `model`, `data_seed` (the
    target-row draw), `merge_form`, `mask_scope` ('per_tensor', the reference, or 'global': a
    pipeline setting, used only when the env prepares its own pipeline; a `prepared` pipeline
    brings its own), and every `ControllerConfig` field as a keyword.

    ## Version History
    - v1: absolute masks with a stash (probes below p measure a less pruned model; a
      downward commit restores the released weights); unpruned until the first commit
      (reference); L0 enters p* at the ratio of the mask in force; p* rule 'spline' by
      default; episode_result(); a stalled process ends the episode.
    - v0: initial version (probes at or below p returned L0; pruned at p_init from reset).
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        preset: str = "tiny",
        task: str = "qa",
        source: str = "en",
        target: str = "ar",
        model: str | None = None,
        data_seed: int = 42,
        merge_form: str = "reference",
        mask_scope: str = "per_tensor",
        render_mode: str | None = None,
        prepared: Any = None,
        process: Any = None,
        **controller: Any,
    ) -> None:
        """Build the pipeline (cached backbone and adapters) and the spaces."""
        unknown = set(controller) - set(ControllerConfig.__dataclass_fields__)
        if unknown:
            raise TypeError(
                f"GraspLoRA-v1 got unknown keyword(s) {sorted(unknown)}; fix: use one of "
                f"{sorted(ControllerConfig.__dataclass_fields__)}"
            )
        if render_mode is not None:
            raise ValueError(f"render_mode={render_mode!r}; fix: GraspLoRA-v1 has no rendering")
        self.config = ControllerConfig(**controller)
        if process is not None:
            # A stand-in process (grasp_env.synthetic) for controller analysis and agent unit
            # tests; never for the demo or a benchmark.
            if self.config.train_steps is None:
                raise ValueError("train_steps=None with a custom process; fix: pass train_steps")
            self.process = process
            self.budget = self.config.train_steps
        else:
            if prepared is None:
                from grasp_env.lm.pipeline import PipelineConfig, prepare
                from grasp_env.lm.presets import get_preset

                cfg = PipelineConfig(
                    task=task,
                    source=source,
                    target=target,
                    seed=data_seed,
                    merge_form=merge_form,
                    mask_scope=mask_scope,
                    model=model,
                )
                prepared = prepare(get_preset(preset), cfg, progress=False, log=lambda _: None)
            from grasp_env.process import LoraProcess

            self.process = LoraProcess(prepared, self.config.micro_dev_size)
            self.budget = self.config.train_steps or prepared.cfg.final_lora.max_steps
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
        loss = self._probed_ahead(ratio)
        if loss is None:
            loss = self.process.probe(ratio)
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

    def probe_ahead(self, actions: Any) -> None:
        """Probe the round's coming candidates now, together (`probe_batch='group'`).

        For agents that choose a round's C actions before seeing a reward (GRPO samples its
        group at once): the process scores them in shared forward passes
        (`LoraProcess.probe_group`) and the next `step`s take their losses from here, in
        order. The episode is unchanged: rewards, commits and history are those of stepping
        the same actions one by one (up to float rounding). A `step` whose action differs
        from the next announced one probes it alone and drops the rest of the announcement.
        """
        if not self._ready or self._done:
            raise RuntimeError("probe_ahead() outside a running episode; fix: call env.reset()")
        ratios = [self.config.ratio_of(self._check_action(a)) for a in actions]
        room = self.config.group_size - len(self.candidates)
        if not 0 < len(ratios) <= room:
            raise ValueError(
                f"probe_ahead got {len(ratios)} actions with {room} left in the round; fix: "
                f"announce between 1 and {room} actions"
            )
        group = getattr(self.process, "probe_group", None)
        losses = group(ratios) if group is not None else [self.process.probe(r) for r in ratios]
        self._ahead = list(zip(ratios, losses, strict=True))

    def _probed_ahead(self, ratio: float) -> float | None:
        """The announced loss of `ratio` if it is the next one announced (else None)."""
        ahead = getattr(self, "_ahead", [])
        if ahead and ahead[0][0] == ratio:
            self._ahead = ahead[1:]
            return float(ahead[0][1])
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
        if rule in ("spline", "quadratic"):
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
        """The fit behind the 'spline' or 'quadratic' rule over the finished rounds (or None).

        L0 enters at the ratio of the mask it was measured with (0 before the first commit).
        """
        from grasp_env.pstar import fit_quadratic, fit_spline, probes_of

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

    def config_dict(self) -> dict[str, Any]:
        """The controller configuration as plain data (for run configs)."""
        return asdict(self.config)
