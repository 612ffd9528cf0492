"""A model-based controller: Thompson sampling on the round-aware spline of every probe.

GRPO moves a Gaussian policy with the rewards of one round and forgets them; the p* rule then
fits a curve to every probe of the run. This controller uses that fit to decide where to probe:
after every round it fits `grasp_env.pstar.spline_posterior` (a penalised spline with round
effects, a penalised drift of the curve over the run and a per-round random change of its
shape, REML-chosen) to every loss seen so far, the baselines at the ratio of the mask they were
measured with, draws last-round curves from the fit's Gaussian posterior and probes at their
argmins (Thompson sampling: probes go where the optimum may be, in proportion to how likely it
is there), while one probe per round keeps exploring along a golden-ratio sequence over
[p_min, p_max] (so a curve that moves, or a second basin, is not missed). The first round is
space-filling. A round's second posterior probe brackets: it goes beside its draw's argmin, by
2.5 posterior sds of the argmin (`bracket`), because where a minimum is flat the slopes beside
it say where it is and a probe at the argmin sees a flat curve (Thompson sampling minimises
the regret of the probes themselves; here only p*'s regret counts). Its running estimate
(`estimate()`: callbacks, deterministic `predict`) is the 'spline_recent' rule
(`grasp_env.pstar.fit_spline_recent`); the ratio the final run trains at is, as for every
agent, the env's `episode_result().learned_ratio`, read by `--controller.pstar-rule`
(default 'spline_recent_cost'). Under 'spline_cost' and 'spline_recent_cost' the draws aim at
the minimum of the curve plus the final run's capacity cost, where those rules read
(`_with_final_cost`), and the exploring probe goes to p_min until 4 probes lie near it (the
low anchor, `ThompsonConfig.anchor`: the cost often puts the answer at p_min, and the rule
reads only where 4 probes lie); in runs of 10 rounds or more the second-last and last
rounds' exploring probes go to p_max and p_min (`ThompsonConfig.end_probes`: the rule's cost
is a share of the last round's range, which old probes at the ends no longer pin down).
Opt-in probe allocations, off by default because none lowered the train instances' regret
(docs/results/controller_v2.md): top-two Thompson sampling (`top_two`), a probe at the
posterior mean's argmin (`greedy`) and no exploring probe in the budget's last rounds
(`exploit_rounds`).

It talks to the env only through the Gymnasium API: reset and step and their info dicts
(candidate_ratio, candidate_loss, baseline_loss, committed_ratio, round, termination, and
achieved_sparsity when present: the ratio the baseline was measured at; without it, a change
of committed_ratio is taken as a commit), plus p_min, p_max, group_size, update_interval and
the budget read through `get_wrapper_attr`; the env's `episode_result()` is handed back as
`result`. Resume: `state_dict()` after any step holds everything the next decision depends on
(the probes, the round's plan, the generator), so `load_state_dict` + `learn(resume=True)` on
an env restored from the same checkpoint continues the same episode.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from agents.grpo import action_for
from grasp_env.atomic import atomic_write_text
from grasp_env.config import ThompsonConfig
from grasp_env.pstar import (
    COST_RULES,
    RECENT_SUPPORT_WIDTH,
    SUPPORT_COUNT,
    Probes,
    fit_spline_recent,
    spline_posterior,
    with_final_cost,
)

__all__ = ["ThompsonConfig", "ThompsonController", "golden_points", "plan_round"]
# ThompsonConfig lives in the config tree (grasp_env.config) and is re-exported here.

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
BRACKET_MAX = 0.15
"""The farthest a bracketing probe goes from its draw's argmin (ratio units). It is the cap under
which `bracket` = 2.5 was chosen; fixed offsets of 0.06-0.10 were measured, larger ones were
not (docs/results/controller_v2.md, "Bracketing probes")."""


def golden_points(offset: float, start: int, count: int, p_min: float, p_max: float) -> list[float]:
    """Points start .. start + count - 1 of the golden-ratio sequence over [p_min, p_max].

    x_k = p_min + (p_max - p_min) * frac(offset + k * 0.618...): any run of consecutive points
    is spread evenly over the range (the sequence of lowest discrepancy in one dimension).
    """
    return [
        p_min + (p_max - p_min) * ((offset + k * _GOLDEN) % 1.0)
        for k in range(start, start + count)
    ]


def plan_round(
    ts_draws: list[float], explore_draws: list[float], min_gap: float, p_min: float, p_max: float
) -> list[float]:
    """A round's candidates: the Thompson draws, then the exploring points, kept apart.

    A candidate closer than `min_gap` to an earlier one of the round is moved by `min_gap`
    (away from the nearer bound's side when it would leave [p_min, p_max]).
    """
    out: list[float] = []
    for r in [*ts_draws, *explore_draws]:
        r = float(np.clip(r, p_min, p_max))
        for _ in range(len(out) + 1):
            clash = [c for c in out if abs(c - r) < min_gap]
            if not clash:
                break
            step = min_gap if r + min_gap <= p_max else -min_gap
            r = float(np.clip(clash[0] + step, p_min, p_max))
        out.append(r)
    return out


def _env_attr(env: Any, name: str) -> Any:
    """A documented extra of the env (GraspLoRAEnv's "Agent API"), through any wrappers."""
    return env.get_wrapper_attr(name)


class ThompsonController:
    """Thompson sampling on the recent-weighted spline; `learn` runs one controller episode."""

    name = "thompson"
    archive_suffix = ".json"

    def __init__(
        self, env: Any, config: ThompsonConfig | None = None, seed: int | None = 0
    ) -> None:
        """Bind to an env (GraspLoRA or a wrapper of it).

        `seed` seeds the posterior draws and the exploring sequence's offset (None: fresh
        entropy).
        """
        self.env = env
        self.config = config or ThompsonConfig()
        self.seed = seed
        ctrl = _env_attr(env, "config")
        self.p_min, self.p_max = float(ctrl.p_min), float(ctrl.p_max)
        self.group_size = int(ctrl.group_size)
        self._ctrl = ctrl
        self.rng = np.random.default_rng(seed)
        self.offset = float(self.rng.random())
        self.result: Any = None
        """The EpisodeResult of the last `learn` (None before)."""
        self._clear()

    # ------------------------------------------------------------------ data

    def _clear(self) -> None:
        self._cache: tuple[Any, Any] = (None, None)
        self._rule_cache: tuple[Any, Any] = (None, None)
        self.rounds: list[int] = []
        self.ratios: list[float] = []
        self.losses: list[float] = []
        self.round = 0
        self.mask_ratio = 0.0
        self.committed = 0.5 * (self.p_min + self.p_max)
        self.plan: list[float] = []
        self.position = 0
        self.explored = 0
        self.done = False
        self._round_ratios: list[float] = []
        self._round_rewards: list[float] = []

    def probes(self) -> Probes:
        """Every loss seen so far (baselines at the ratio of the mask in force)."""
        return Probes(
            np.asarray(self.rounds, int), np.asarray(self.ratios, float), np.asarray(self.losses)
        )

    def _add(self, round_index: int, ratio: float, loss: float) -> None:
        if math.isfinite(loss):
            self.rounds.append(int(round_index))
            self.ratios.append(float(ratio))
            self.losses.append(float(loss))

    def _start_round(self, info: dict[str, Any]) -> None:
        """Record the round's baseline (measured at the mask in force)."""
        committed = float(info.get("committed_ratio", self.committed))
        if "achieved_sparsity" in info:
            self.mask_ratio = float(info["achieved_sparsity"])
        elif self.rounds and committed != self.committed:
            self.mask_ratio = committed  # without the info key: a move means a commit
        self.committed = committed
        self._add(int(info["round"]), self.mask_ratio, float(info["baseline_loss"]))
        self.round = int(info["round"])
        self.plan, self.position = [], 0
        self._round_ratios, self._round_rewards = [], []

    def posterior(self):
        """The fit behind the decisions (None before 4 distinct ratios); cached per data."""
        key = len(self.losses)
        if getattr(self, "_cache", (None, None))[0] != key:
            cfg = self.config
            post = spline_posterior(
                self.probes(),
                self.p_min,
                self.p_max,
                cfg.drift,
                cfg.jitter,
                cfg.walk,
                age_noise=cfg.age_noise,
                walk_length=cfg.walk_length,
                ahead=self._ahead(),
            )
            self._cache = (key, post)
        return self._cache[1]

    def _rounds_left(self) -> int:
        """Rounds of the budget after the current one."""
        total = -(-int(_env_attr(self.env, "budget")) // int(self._ctrl.update_interval))
        return total - 1 - self.round

    def _ahead(self) -> float:
        """Run-lengths from the last round seen to the budget's last round (capped)."""
        if not self.config.ahead or not self.rounds:
            return 0.0
        last = max(self.rounds)
        total = -(-int(_env_attr(self.env, "budget")) // int(self._ctrl.update_interval))
        return min(self.config.ahead, (total - 1 - last) / last) if last > 0 else 0.0

    def estimate(self) -> float:
        """The agent's running estimate: the 'spline_recent' rule on its own data.

        Not the final ratio: that is `result.learned_ratio`, the env's configured rule.
        """
        key = len(self.losses)
        if getattr(self, "_rule_cache", (None, None))[0] != key:
            fit = fit_spline_recent(self.probes(), self.p_min, self.p_max) if key else None
            self._rule_cache = (key, fit.ratio if fit is not None else self.committed)
        return self._rule_cache[1]

    # ------------------------------------------------------------------ acting

    def _make_plan(self) -> list[float]:
        cfg, c = self.config, self.group_size
        post = self.posterior() if self.round >= cfg.opening_rounds else None
        n_explore = c if post is None else min(c, cfg.explore)
        if post is not None and self._rounds_left() < cfg.exploit_rounds:
            n_explore = 0  # no later round can use what an exploring probe finds
        if post is not None and cfg.inflate != 1.0:
            post = replace(post, factor=post.factor * cfg.inflate)
        if post is not None and self._ctrl.pstar_rule in COST_RULES:
            post = self._with_final_cost(post)
        ts: list[float] = []
        if post is not None:
            n_greedy = min(c - n_explore, cfg.greedy)
            ts = [post.pessimistic_ratio(0.0, dense_only=False)] * n_greedy  # the mean's argmin
            ts += self._thompson_draws(post, c - n_explore - n_greedy)
        explore = golden_points(self.offset, self.explored, n_explore, self.p_min, self.p_max)
        self.explored += n_explore
        plan = plan_round(ts, explore, cfg.min_gap, self.p_min, self.p_max)
        if post is not None and n_explore:  # the round's last candidate is its exploring probe
            end = self._end_probe()
            if end is not None:
                plan[-1] = end
            elif self._needs_anchor():
                plan[-1] = self.p_min
        return plan

    def _end_probe(self) -> float | None:
        """p_max in the budget's second-last round, p_min in its last (`end_probes`), else None.

        Under the cost rules only, and only with a budget of at least `end_probes` rounds: the
        rule reads the last round's curve and a cost in units of its range, which the old
        probes at the two ends no longer pin down at the end of a long run.
        """
        n = self.config.end_probes
        if not n or self._ctrl.pstar_rule not in COST_RULES:
            return None
        left = self._rounds_left()
        if self.round + left + 1 < n or left > 1:
            return None
        return self.p_max if left == 1 else self.p_min

    def _needs_anchor(self) -> bool:
        """Whether this round's exploring probe goes to p_min (`ThompsonConfig.anchor`).

        Under the cost rules, until 4 probes lie within the rule's support width of p_min:
        the rule reads p* only where 4 probes lie nearby, and the cost often puts the answer
        at p_min. The golden sequence still advances, so the anchor replaces its point.
        """
        if not self.config.anchor or self._ctrl.pstar_rule not in COST_RULES:
            return False
        near = sum(abs(r - self.p_min) <= RECENT_SUPPORT_WIDTH for r in self.ratios)
        return near < SUPPORT_COUNT

    def _with_final_cost(self, post: Any) -> Any:
        """The posterior with the final run's capacity cost added to its mean.

        Under `--controller.pstar-rule spline_cost` (or spline_recent_cost) the final run
        trains at the minimiser of the curve plus `final_cost` x its range over [p_min, p_max]
        x (ratio - p_min) / (p_max - p_min)
        (`grasp_env.pstar.fit_spline_cost`); the draws then aim at that minimiser too, so the
        probes land where the rule will read, not at the probed curve's own minimum.
        """
        return with_final_cost(post, float(self._ctrl.final_cost), self.p_min, self.p_max)

    def _thompson_draws(self, post: Any, n: int) -> list[float]:
        """`n` probes from the posterior, each a draw's argmin or (top-two) a challenger.

        A probe is a Thompson draw's argmin (the leader), replaced with probability
        1 - `top_two` by a challenger (`SplinePosterior.sample_challenger`: a draw whose argmin
        lies in another region), as top-two Thompson sampling does. With `bracket` > 0 every
        probe after the first is moved to one side of its argmin (sides alternate round by
        round) by `bracket` posterior sds of the argmin: the slopes beside a flat minimum say
        where it is, and a sharp, certain minimum keeps its probes.
        """
        offset = self._bracket_offset(post) if self.config.bracket else 0.0
        out = []
        for i in range(n):
            leader = float(post.sample_argmins(self.rng, 1)[0])
            if self.config.top_two < 1.0 and self.rng.random() >= self.config.top_two:
                leader = post.sample_challenger(self.rng, leader)
            if i and offset:
                leader = self._beside(leader, offset, self.round + i)
            out.append(leader)
        return out

    def _bracket_offset(self, post: Any) -> float:
        """`bracket` x the sd of 32 posterior argmins, at most BRACKET_MAX (ratio units)."""
        spread = float(np.std(post.sample_argmins(self.rng, 32)))
        return min(self.config.bracket * spread, BRACKET_MAX)

    def _beside(self, ratio: float, offset: float, parity: int) -> float:
        """`ratio` moved by `offset` to the side `parity` names (the other one at a bound)."""
        step = offset if parity % 2 else -offset
        if not self.p_min <= ratio + step <= self.p_max:
            step = -step
        return float(np.clip(ratio + step, self.p_min, self.p_max))

    def predict(self, obs: Any = None, deterministic: bool = False) -> tuple[np.ndarray, None]:
        """SB3-style (action, state): the round's next candidate (deterministic: the p* now)."""
        if deterministic:
            return action_for(self.env, self.estimate()), None
        if not self.plan:
            self.plan = self._make_plan()
        ratio = self.plan[min(self.position, len(self.plan) - 1)]
        return action_for(self.env, ratio), None

    # ----------------------------------------------------------------- learning

    def learn(
        self,
        seed: int | None = None,
        callback: Callable[[dict[str, Any]], None] | None = None,
        resume: bool = False,
    ) -> ThompsonController:
        """Run one controller episode; `callback` receives one dict per finished round.

        `seed` seeds the env's reset (the agent's draws were seeded at construction). With
        `resume`, the env and this controller were restored from a checkpoint
        (`load_state_dict` on both): the episode continues without a reset.
        """
        if not resume:
            self._clear()
            _, info = self.env.reset(seed=seed)
            self.done = bool(info.get("termination"))
            self._start_round(info)
        while not self.done:
            action, _ = self.predict()
            _, reward, terminated, truncated, info = self.env.step(action)
            self.done = bool(terminated or truncated)
            self._observe(info, float(reward), callback)
        self.result = _env_attr(self.env, "episode_result")()
        return self

    def _observe(
        self, info: dict[str, Any], reward: float, callback: Callable[[dict[str, Any]], None] | None
    ) -> None:
        self._add(self.round, float(info["candidate_ratio"]), float(info["candidate_loss"]))
        self._round_ratios.append(float(info["candidate_ratio"]))
        self._round_rewards.append(reward)
        self.position += 1
        if int(info["round"]) == self.round:
            return  # the round goes on
        record = {"ratios": self._round_ratios, "rewards": self._round_rewards, **info}
        if not self.done:
            self._start_round(info)  # the next round's baseline, after K more steps
        else:
            self.plan, self.position = [], 0
        if callback is not None:
            callback({**record, "estimate": self.estimate()})

    # -------------------------------------------------------------- persistence

    def state_dict(self) -> dict[str, Any]:
        """Everything the next decision depends on, as plain data (a checkpoint's agent part)."""
        return {
            "rounds": list(self.rounds),
            "ratios": list(self.ratios),
            "losses": list(self.losses),
            "round": self.round,
            "mask_ratio": self.mask_ratio,
            "committed": self.committed,
            "plan": list(self.plan),
            "position": self.position,
            "explored": self.explored,
            "done": self.done,
            "round_ratios": list(self._round_ratios),
            "round_rewards": list(self._round_rewards),
            "offset": self.offset,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict` (then `learn(resume=True)`)."""
        self._cache = self._rule_cache = (None, None)
        self.rounds = [int(r) for r in state["rounds"]]
        self.ratios = [float(r) for r in state["ratios"]]
        self.losses = [float(v) for v in state["losses"]]
        self.round, self.mask_ratio = int(state["round"]), float(state["mask_ratio"])
        self.committed = float(state["committed"])
        self.plan, self.position = [float(r) for r in state["plan"]], int(state["position"])
        self.explored, self.done = int(state["explored"]), bool(state["done"])
        self._round_ratios = [float(r) for r in state["round_ratios"]]
        self._round_rewards = [float(r) for r in state["round_rewards"]]
        self.offset = float(state["offset"])
        self.rng.bit_generator.state = state["rng"]

    def save(self, path: str | Path) -> None:
        """Config and the episode's data as JSON (no pickle)."""
        state = {"config": asdict(self.config), "seed": self.seed, **self.state_dict()}
        atomic_write_text(path, json.dumps(state, indent=1))

    @classmethod
    def load(cls, path: str | Path, env: Any) -> ThompsonController:
        """Rebuild a controller saved with `save`, bound to `env`."""
        state = json.loads(Path(path).read_text())
        config = {k: tuple(v) if isinstance(v, list) else v for k, v in state["config"].items()}
        agent = cls(env, ThompsonConfig(**config), seed=state.get("seed"))
        agent.load_state_dict(state)
        return agent
