"""Several processes, one run: data parallelism through accelerate's process state.

`accelerate launch` or `torchrun` start the processes and set the environment; accelerate's
`PartialState` joins them into a process group (NCCL on GPUs, gloo on CPUs) and this module
adds the few collective steps the run needs, all through accelerate's utilities:

- every process draws the same data order and takes its own rows of each global batch, so a
  step sees `processes x batch_size` rows;
- the controller run's `average_gradients` averages the LoRA gradients across processes before
  each optimizer step in one flat all-reduce (only the active adapter's LoRA tensors train, a
  few MB at 8B scale; a DDP wrapper's buckets are fixed at wrap time and would break when the
  active adapter changes); every other fine-tune runs on transformers' Trainer, which wraps the
  model in DDP itself for the length of the fine-tune;
- evaluation splits its rows across processes and sums loss and token counts (the token mean
  equals a single process's); decoding splits its rows and gathers the texts in order;
- losses are averaged too, so every process takes the same decisions (commits, early stopping,
  NaN handling) and the processes stay in lockstep;
- only the main process writes files (`is_main`).

`--strategy fsdp` shards the frozen backbone for a model that does not fit one device, with
transformers' own load-time sharding (`from_pretrained(distributed_config=DistributedConfig(
fsdp_size=N))`, FSDP2 underneath; `grasp_env.lm.backbone.load_backbone`): each process reads
and keeps 1/N of the weights and gathers a block's weights only while it computes. The LoRA
adapters are added after loading and stay whole, replicated tensors on every process: the
pruning masks rank entries across the whole adapter (a global or per-tensor top-k needs every
entry in one place), and their gradients are averaged as above. A sharded forward is a
collective, so under FSDP every process runs the same number of forward passes (evaluation and
decoding give a shorter share a dummy batch; decoding steps in lockstep with
`generate(synced_gpus=True)`). transformers' Trainer knows such a model (it neither wraps nor
moves it and averages the adapter's gradients itself), so TRL's SFTTrainer trains the source
and target adapters on it unchanged.

With one process (no launcher) every function is the identity and nothing is initialised.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = [
    "STRATEGIES",
    "average_gradients",
    "broadcast_object",
    "full_state_dict",
    "gather_in_order",
    "is_main",
    "is_sharded",
    "main_first",
    "mean",
    "process_count",
    "rank",
    "sum_values",
    "wait_for_everyone",
]


STRATEGIES = ("ddp", "fsdp")
"""ddp: every process holds the whole backbone; fsdp: the backbone's weights are sharded."""


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


COLLECTIVES = {"all_reduce": 0}
"""Collectives `average_gradients` issued in this process (measured in docs/BENCHMARKS.md)."""


def average_gradients(params: dict[str, Any]) -> None:
    """Average the gradients of `params` over all processes, in place, in one collective.

    The LoRA gradients are flattened into one buffer, all-reduced once and copied back (what
    DDP's gradient buckets do, for a parameter set that changes with the active adapter, which
    a DDP wrapper fixed at wrap time could not follow): one collective per step instead of one
    per LoRA tensor (64 for r=8 q/v on a 32-layer model).
    """
    if not _launched():
        return
    import torch
    from accelerate.utils import reduce

    grads = [p.grad for p in params.values() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    flat = reduce(flat, reduction="mean")
    COLLECTIVES["all_reduce"] += 1
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


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


def broadcast_object(obj: Any) -> Any:
    """The main process's `obj` on every process (a picklable value)."""
    if not _launched():
        return obj
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([obj], from_process=0)[0]


def is_sharded(model: Any) -> bool:
    """Whether `model`'s backbone (under any PEFT wrapper) was sharded as it loaded."""
    return bool(getattr(model, "is_distributed_loading_by_transformers", False))


def full_state_dict(model: Any) -> dict[str, Any]:
    """The whole state dict of `model` on the CPU of the main process (a collective).

    Sharded weights are gathered (others get an empty dict); a whole model returns its own
    state dict.
    """
    if not is_sharded(model):
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)
