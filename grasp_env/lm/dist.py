"""Several processes, one run: data parallelism through accelerate's process state.

`accelerate launch` or `torchrun` start the processes and set the environment; accelerate's
`PartialState` joins them into a process group (NCCL on GPUs, gloo on CPUs) and this module
adds the few collective steps the run needs, all through accelerate's utilities:

- every process draws the same data order and takes its own rows of each global batch, so a
  step sees `processes x batch_size` rows;
- `average_gradients` averages the LoRA gradients across processes before the optimizer step
  (only the active adapter's LoRA tensors train, a few MB at 8B scale, so they are reduced
  directly instead of wrapping the model in DDP, whose buckets are fixed at wrap time and would
  break when the active adapter changes);
- evaluation splits its rows across processes and sums loss and token counts (the token mean
  equals a single process's); decoding splits its rows and gathers the texts in order;
- losses are averaged too, so every process takes the same decisions (commits, early stopping,
  NaN handling) and the processes stay in lockstep;
- only the main process writes files (`is_main`).

With one process (no launcher) every function is the identity and nothing is initialised.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = [
    "average_gradients",
    "gather_in_order",
    "is_main",
    "main_first",
    "mean",
    "process_count",
    "rank",
    "sum_values",
    "wait_for_everyone",
]


def _launched() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _state() -> Any:
    import torch
    from accelerate import PartialState

    # Without CUDA, accelerate joins launched processes only when told they are CPU ones.
    return PartialState(cpu=not torch.cuda.is_available())


def process_count() -> int:
    """Processes in this run (1 without a launcher)."""
    return _state().num_processes if _launched() else 1


def rank() -> int:
    """This process's index (0 without a launcher)."""
    return _state().process_index if _launched() else 0


def is_main() -> bool:
    """Whether this process writes the run's files."""
    return rank() == 0


def wait_for_everyone() -> None:
    """A barrier (no-op for one process)."""
    if _launched():
        _state().wait_for_everyone()


def sum_values(values: list[float], device: Any = "cpu") -> list[float]:
    """Elementwise sum of `values` over all processes."""
    if not _launched():
        return list(values)
    import torch
    from accelerate.utils import reduce

    summed = reduce(torch.tensor(values, dtype=torch.float64, device=device), reduction="sum")
    return [float(v) for v in summed.cpu()]


def mean(value: float, device: Any = "cpu") -> float:
    """The mean of a scalar over all processes."""
    if not _launched():
        return value
    return sum_values([value], device)[0] / process_count()


def average_gradients(params: dict[str, Any]) -> None:
    """Average the gradients of `params` over all processes, in place."""
    if not _launched():
        return
    from accelerate.utils import reduce

    for p in params.values():
        if p.grad is not None:
            p.grad.copy_(reduce(p.grad, reduction="mean"))


def main_first() -> Any:
    """A context the main process runs first, the others after it.

    A cache the main process builds inside it is then read, not rebuilt, by the others.
    """
    import contextlib

    if not _launched():
        return contextlib.nullcontext()
    return _state().main_process_first()


def gather_in_order(items: list[Any]) -> list[Any]:
    """Concatenate every process's `items` in rank order (each process gets the whole list)."""
    if not _launched():
        return list(items)
    from accelerate.utils import gather_object

    return list(gather_object(items))
