"""Proposal strategies for the GraspLoRA environment.

Every agent exposes the same surface (`learn`, `predict`, `save`, `load`) and is built from the
name -> factory registry `AGENTS`, so one runner and one evaluation path serve them all.
Agents see the environment only through the Gymnasium API. Baselines (Stable-Baselines3,
random, Optuna, fixed) arrive with issue 6.
"""

from agents.grpo import GRPOConfig, GRPOController

AGENTS = {"grpo": GRPOController}
"""Agent name -> class (constructor takes the env and an optional config)."""

__all__ = ["AGENTS", "GRPOConfig", "GRPOController"]
