"""One place that seeds and snapshots the random streams a run draws from.

`seed_everything` delegates to `transformers.set_seed` (Python's `random`, numpy, torch and every
CUDA device); `rng_state` / `restore_rng` capture and restore the streams training consumes
(dropout draws from torch's, data order from Python's), so a checkpointed run continues
exactly as an uninterrupted one would. Heavy imports happen inside the functions.
"""

from __future__ import annotations

import random
from typing import Any

__all__ = ["as_tuple", "restore_rng", "rng_state", "seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed Python, numpy, torch (CPU and every CUDA device) from one integer."""
    from transformers import set_seed

    set_seed(seed % 2**32)


def rng_state() -> dict[str, Any]:
    """The RNG streams training draws from: torch (dropout) and Python's `random`."""
    import torch

    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Undo `rng_state` exactly."""
    import torch

    torch.set_rng_state(state["torch"])
    random.setstate(as_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def as_tuple(value: Any) -> Any:
    """random.setstate needs tuples where a round trip may hand back lists."""
    if isinstance(value, list | tuple):
        return tuple(as_tuple(v) for v in value)
    return value
