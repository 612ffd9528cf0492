"""Crash-safe checkpoints: atomic writes, safe loads and a fault-injection hook.

RNG capture lives in `grasp_env.seeding` (the LM side needs it below the run helpers).

A controller run on a real model takes hours; a SIGKILL must cost at most one round. Every
checkpoint is written to a temporary file in the same directory and renamed into place, so a
kill during the write leaves the previous checkpoint intact. Checkpoints hold only tensors and
plain Python data and load with `torch.load(weights_only=True)`: no pickle code runs on load.

`GRASP_FAULT=<point>:<n>` makes the process SIGKILL itself the n-th time it reaches the named
point (`maybe_fault`). It exists so tests can kill a run at an exact, reproducible place; it
is inert unless the variable is set. With `GRASP_FAULT_ONCE=<file>` as well, only the first
process to get there dies (it creates the file first): a Ray task retried in a fresh worker
then runs through, as after a real crash.
"""

from __future__ import annotations

import os
import signal
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = [
    "CheckpointError",
    "load_checkpoint",
    "maybe_fault",
    "save_checkpoint",
]

FAULT_ENV = "GRASP_FAULT"
FAULT_ONCE_ENV = "GRASP_FAULT_ONCE"
_fault_counts: Counter[str] = Counter()


class CheckpointError(ValueError):
    """A checkpoint that cannot be read back (truncated, foreign or corrupted)."""


CHECKPOINT_VERSION = 4
"""3: the controller process checkpoints its mask with the stash (PruneState) and the env its
mask ratio (issue 11). 4: the process's own dropout stream instead of the global RNG, and the
baseline agents' transition logs (round-level resume, issue 14)."""


def save_checkpoint(path: str | Path, state: dict[str, Any], kind: str) -> None:
    """Write `state` (tagged with its `kind`) to a temporary file, then rename it over `path`."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.close(fd)
    try:
        torch.save({**state, "kind": kind, "version": CHECKPOINT_VERSION}, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, kind: str, keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load a `kind` checkpoint written by `save_checkpoint` (weights_only: no code runs).

    A truncated or foreign file, another kind of checkpoint, or one missing any of `keys`
    is a CheckpointError naming the file and the fix, never a traceback mid-resume.
    """
    import torch

    fix = "fix: delete it to restart that stage, or rerun with --overwrite"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be read ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]}); {fix}"
        ) from None
    if not isinstance(state, dict) or state.get("kind") != kind:
        found = state.get("kind") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"checkpoint {str(path)!r} is a {found!r} checkpoint, not {kind!r}; {fix}"
        )
    if state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has version {state.get('version')!r}, this code writes "
            f"{CHECKPOINT_VERSION}; {fix}"
        )
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} lacks {missing}; {fix}")
    return state


def maybe_fault(point: str) -> None:
    """SIGKILL this process if GRASP_FAULT names `point` and this is its n-th arrival."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    name, _, count = spec.partition(":")
    if name != point:
        return
    _fault_counts[point] += 1
    if _fault_counts[point] != int(count or 1):
        return
    once = os.environ.get(FAULT_ONCE_ENV)
    if once:
        try:
            Path(once).touch(exist_ok=False)
        except FileExistsError:
            return  # another process has died here already
    os.kill(os.getpid(), signal.SIGKILL)
