"""One place that seeds and snapshots the random streams a run draws from.

`seed_everything` delegates to `transformers.set_seed` (Python's `random`, numpy, torch and every
CUDA device); `rng_state` / `restore_rng` capture and restore the streams training consumes
(dropout draws from torch's, data order from Python's), so a checkpointed run continues
exactly as an uninterrupted one would. Heavy imports happen inside the functions.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["PrivateTorchStream", "as_tuple", "restore_rng", "rng_state", "seed_everything"]


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


class PrivateTorchStream:
    """A torch random stream of its own (dropout of the controller run), apart from the global one.

    Why: the controller run trains with LoRA dropout, which draws from torch's global stream,
    and so do the agents (an SB3 policy samples its actions there). Sharing one stream ties
    the LM's dropout masks to how many numbers the agent drew, so an agent could not be
    replayed without the LM (round-level resume, `agents.baselines.EpisodeRecorder`) and a
    change of agent changed the LM's training noise. `active()` swaps this stream in for the
    duration of a computation and hands the global stream back untouched.

    Seeded like `torch.manual_seed(seed)`, so a run in which nothing else draws from torch
    (the GRPO controller draws from numpy) gets the same numbers as before the split.
    """

    def __init__(self, device: Any = None) -> None:
        """A stream for the CPU and, when `device` is a CUDA device, that device too."""
        import torch

        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.cpu: Any = None
        self.cuda: Any = None
        self.seed(0)

    def seed(self, seed: int) -> None:
        """Restart the stream as `torch.manual_seed(seed)` would."""
        import torch

        self.cpu = torch.Generator().manual_seed(seed).get_state()
        if self.device.type == "cuda":
            self.cuda = torch.Generator(self.device).manual_seed(seed).get_state()

    @contextmanager
    def active(self) -> Iterator[None]:
        """Draw from this stream inside the block; the global stream is left as it was."""
        import torch

        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self.cpu)
            if self.cuda is not None:
                torch.cuda.set_rng_state(self.cuda, self.device)
            try:
                yield
            finally:
                self.cpu = torch.get_rng_state()
                if self.cuda is not None:
                    self.cuda = torch.cuda.get_rng_state(self.device)

    def state_dict(self) -> dict[str, Any]:
        """The stream's position (tensors only: loads with weights_only)."""
        state = {"torch": self.cpu.clone()}
        if self.cuda is not None:
            state["cuda"] = self.cuda.clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict`."""
        self.cpu = state["torch"].clone()
        if "cuda" in state and self.device.type == "cuda":
            self.cuda = state["cuda"].clone()


def as_tuple(value: Any) -> Any:
    """random.setstate needs tuples where a round trip may hand back lists."""
    if isinstance(value, list | tuple):
        return tuple(as_tuple(v) for v in value)
    return value
