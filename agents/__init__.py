"""Proposal strategies for the GraspLoRA environment, behind one name -> factory registry.

Every agent exposes the same surface (`learn(seed, callback)`, `predict`, `save`, `load`), so one
runner and one evaluation path serve them all; agents see the environment only through the
Gymnasium API. `make_agent("ppo", env, seed=0)` builds one by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from agents.baselines import SB3_ALGOS, FixedAgent, OptunaAgent, RandomAgent, SB3Agent
from agents.grpo import GRPOConfig, GRPOController


def _sb3(algo: str) -> Callable[..., Any]:
    return lambda env, seed=0, **_: SB3Agent(env, algo=algo, seed=seed)


def _grpo(env: Any, seed: int | None = 0, grpo: GRPOConfig | None = None, **_: Any) -> Any:
    """GRPO with `grpo`'s settings; `seed` seeds the sampler unless `grpo.seed` is set."""
    config = grpo or GRPOConfig()
    if config.seed is None:
        config = replace(config, seed=seed)
    return GRPOController(env, config)


def _grpo_paper(env: Any, seed: int | None = 0, **_: Any) -> Any:
    """The paper's controller: reference update, centred advantages (GRPOConfig.paper())."""
    return GRPOController(env, GRPOConfig.paper(seed=seed))


AGENTS: dict[str, Callable[..., Any]] = {
    "grpo": _grpo,
    "grpo-paper": _grpo_paper,
    **{name: _sb3(name) for name in SB3_ALGOS},
    "random": lambda env, seed=0, **_: RandomAgent(env, seed=seed),
    "optuna": lambda env, seed=0, **_: OptunaAgent(env, seed=seed),
    "fixed": lambda env, fixed_ratio=0.4, **_: FixedAgent(env, ratio=fixed_ratio),
}
"""Agent name -> factory(env, seed=..., grpo=..., fixed_ratio=...)."""


GROUP_PROBING: frozenset[str] = frozenset({"grpo", "grpo-paper"})
"""Agents that draw a round's candidates before the first reward (`--probe-batch group`)."""


def check_probe_batch(names: list[str] | tuple[str, ...], probe_batch: str) -> None:
    """Refuse `--probe-batch group` for agents that cannot announce a round's candidates.

    The SB3 agents, random search and Optuna choose each candidate after the last reward, so
    nothing could be batched: the flag would do nothing, silently.
    """
    others = [n for n in names if n not in GROUP_PROBING]
    if probe_batch == "group" and others:
        raise ValueError(
            f"--probe-batch group with agent(s) {others}: they choose each candidate after the "
            f"last reward, so a round's candidates are never known together; fix: use "
            f"--probe-batch single with them (group probing serves {sorted(GROUP_PROBING)})"
        )


def make_agent(name: str, env: Any, **kwargs: Any) -> Any:
    """Build the agent called `name`, or fail naming the known ones."""
    try:
        factory = AGENTS[name]
    except KeyError:
        raise ValueError(f"agent={name!r} is unknown; fix: use one of {sorted(AGENTS)}") from None
    check_probe_batch([name], env.unwrapped.config.probe_batch)
    return factory(env, **kwargs)


__all__ = [
    "AGENTS",
    "GROUP_PROBING",
    "GRPOConfig",
    "GRPOController",
    "check_probe_batch",
    "make_agent",
]
