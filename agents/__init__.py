"""Proposal strategies for the GraspLoRA environment (the GRPO controller and baselines).

Agents see the environment only through the Gymnasium API. The GRPO controller arrives with
issue 5, the Stable-Baselines3, random, Optuna and fixed-ratio baselines with issue 6.
"""

__all__: list[str] = []
