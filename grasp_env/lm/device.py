"""Where a run computes and in which precision: resolved once, from two run settings.

`--device auto` picks CUDA, then Apple's MPS, then the CPU; `--dtype auto` picks bfloat16 where
the device computes it natively (a CUDA device with bf16 support) and float32 elsewhere (CPU and
MPS). An explicit choice the machine cannot honour is an error that names the setting, the value
and the fix: a run never silently falls back to another device or precision. The backbone is
placed and cast once when it is loaded; batches move to its device in `collate`; LoRA weights
stay float32 (PEFT's adapter autocast), so pruning masks and the stash are exact whatever the
backbone's precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DEVICES", "DTYPES", "Placement", "peak_memory", "resolve"]

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
"""Accepted `--device` values; 'cuda:1' style indices are accepted too."""
DTYPES: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")
"""Accepted `--dtype` values."""


@dataclass(frozen=True)
class Placement:
    """A resolved device and dtype (as names, so configs and metrics.json print them)."""

    device: str
    """'cpu', 'cuda', 'cuda:1', 'mps'."""
    dtype: str
    """'float32', 'bfloat16' or 'float16': the backbone's weights."""

    @property
    def torch_device(self) -> Any:
        """The torch.device."""
        import torch

        return torch.device(self.device)

    @property
    def torch_dtype(self) -> Any:
        """The torch.dtype."""
        import torch

        return getattr(torch, self.dtype)


def check_names(device: str, dtype: str) -> None:
    """Reject unknown names before any work (cheap: no torch import)."""
    if device not in DEVICES and not device.startswith("cuda:"):
        raise ValueError(f"device={device!r} is unknown; fix: use one of {DEVICES} (or cuda:N)")
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is unknown; fix: use one of {DTYPES}")


def resolve(device: str = "auto", dtype: str = "auto") -> Placement:
    """The device and dtype a run uses on this machine.

    Raises:
        ValueError: an unknown name, or a device / dtype this machine does not have (the
            message names the setting, the value and the fix).
    """
    import os

    import torch

    check_names(device, dtype)
    if device in ("auto", "cuda") and torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        # launched (accelerate launch / torchrun): each process owns the GPU of its local rank
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    if device == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    elif device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} but this machine has no CUDA device; fix: use --device auto "
                "or --device cpu"
            )
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} but only {torch.cuda.device_count()} CUDA device(s); fix: "
                "use an index below that"
            )
    elif device == "mps" and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise ValueError("device='mps' but MPS is not available; fix: use --device auto or cpu")
    cuda = device.startswith("cuda")
    if dtype == "auto":
        dtype = "bfloat16" if cuda and torch.cuda.is_bf16_supported() else "float32"
    elif dtype == "bfloat16" and device == "cpu":
        pass  # supported (slowly) by CPU kernels; the user asked for it
    elif dtype == "bfloat16" and cuda and not torch.cuda.is_bf16_supported():
        raise ValueError(
            f"dtype='bfloat16' but {device} does not support it; fix: use --dtype float16 or "
            "--dtype auto"
        )
    return Placement(device, dtype)


def peak_memory(placement: Placement) -> dict[str, float]:
    """Peak memory of this process so far, in GB.

    The host's resident set, and on CUDA the most the device's allocator held for tensors
    (`max_memory_allocated`) and reserved.
    """
    import resource

    import torch

    out = {"host_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}  # KiB
    if placement.device.startswith("cuda"):
        device = placement.torch_device
        out["device_allocated_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
        out["device_reserved_gb"] = torch.cuda.max_memory_reserved(device) / 1e9
    return out
