"""Proposal strategies for the GraspLoRA environment, behind one name -> factory registry.

Every agent exposes the same surface (`learn(seed, callback)`, `predict`, `save`, `load`), so one
runner and one evaluation path serve them all; agents see the environment only through the
Gymnasium API. `make_agent("ppo", env, seed=0)` builds one by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agents.baselines import SB3_ALGOS, FixedAgent, OptunaAgent, RandomAgent, SB3Agent
from agents.bayes import ThompsonConfig, ThompsonController
from agents.grpo import GRPOConfig, GRPOController


def _sb3(algo: str) -> Callable[..., Any]:
    return lambda env, seed=0, **_: SB3Agent(env, algo=algo, seed=seed)


def _grpo(env: Any, seed: int | None = 0, config: Any = None, **_: Any) -> Any:
    """GRPO with the config's `grpo` settings (`--method paper`: the paper's); seeded."""
    return GRPOController(env, config.grpo if config is not None else GRPOConfig(), seed=seed)


def _amortised(env: Any, seed: int | None = 0, config: Any = None, **_: Any) -> Any:
    """The amortised controller: a policy pretrained on the surrogate's train instances.

    `agents.amortised`; frozen at run time (nothing is learned in the episode).
    """
    from agents.amortised import AmortisedAgent

    return AmortisedAgent(env, config, seed=seed)


def _thompson(env: Any, seed: int | None = 0, config: Any = None, **_: Any) -> Any:
    """Thompson sampling on the round-aware spline of every probe (`agents.bayes`)."""
    settings = config.thompson if config is not None else ThompsonConfig()
    return ThompsonController(env, settings, seed=seed)


AGENTS: dict[str, Callable[..., Any]] = {
    "grpo": _grpo,
    "thompson": _thompson,
    "amortised": _amortised,
    **{name: _sb3(name) for name in SB3_ALGOS},
    "random": lambda env, seed=0, **_: RandomAgent(env, seed=seed),
    "optuna": lambda env, seed=0, **_: OptunaAgent(env, seed=seed),
    "fixed": lambda env, fixed_ratio=0.4, **_: FixedAgent(env, ratio=fixed_ratio),
}
"""Agent name -> factory(env, seed=..., config=ExperimentConfig, fixed_ratio=...)."""


AGENT_NAMES: tuple[str, ...] = tuple(AGENTS)
"""Every registered agent name (the runners' --agent choices)."""

GROUP_PROBING: frozenset[str] = frozenset({"grpo"})
"""Agents that draw a round's candidates before the first reward (--controller.probe-batch
group)."""


def check_probe_batch(names: list[str] | tuple[str, ...], probe_batch: str) -> None:
    """Refuse --controller.probe-batch group for agents that cannot announce a round's candidates.

    The SB3 agents, random search and Optuna choose each candidate after the last reward, so
    nothing could be batched: the flag would do nothing, silently.
    """
    others = [n for n in names if n not in GROUP_PROBING]
    if probe_batch == "group" and others:
        raise ValueError(
            f"--controller.probe-batch group with agent(s) {others}: they choose each candidate "
            "after the last reward, so a round's candidates are never known together; fix: use "
            "--controller.probe-batch single with them (group probing serves "
            f"{sorted(GROUP_PROBING)})"
        )


def make_agent(name: str, env: Any, **kwargs: Any) -> Any:
    """Build the agent called `name`, or fail naming the known ones.

    Keywords: `seed`, `config` (an `ExperimentConfig`: each agent reads its own group, e.g.
    `config.grpo`; default: the default method's settings), `fixed_ratio` (`fixed` only).
    """
    try:
        factory = AGENTS[name]
    except KeyError:
        raise ValueError(f"agent={name!r} is unknown; fix: use one of {sorted(AGENTS)}") from None
    check_probe_batch([name], env.get_wrapper_attr("config").probe_batch)
    return factory(env, **kwargs)


__all__ = [
    "AGENTS",
    "AGENT_NAMES",
    "GROUP_PROBING",
    "GRPOConfig",
    "GRPOController",
    "ThompsonConfig",
    "ThompsonController",
    "check_probe_batch",
    "make_agent",
]
