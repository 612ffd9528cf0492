"""Crash-safe checkpoints: atomic writes and safe loads.

RNG capture lives in `grasp_env.seeding` (the LM side needs it below the run helpers).

A controller run on a real model takes hours; a SIGKILL must cost at most one round. Every
checkpoint is written to a temporary file in the same directory and renamed into place, so a
kill during the write leaves the previous checkpoint intact. Checkpoints hold only tensors and
plain Python data and load with `torch.load(weights_only=True)`: no pickle code runs on load.
`maybe_fault` (tests kill a run at an exact point) lives in `grasp_env.faults` and is
re-exported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grasp_env.atomic import atomic_file
from grasp_env.faults import maybe_fault

__all__ = [
    "CheckpointError",
    "load_checkpoint",
    "maybe_fault",
    "save_checkpoint",
]


class CheckpointError(ValueError):
    """A checkpoint that cannot be read back (truncated, foreign or corrupted)."""


CHECKPOINT_VERSION = 5
"""3: the controller process checkpoints its mask with the stash (PruneState) and the env its
mask ratio. 4: the process's own dropout stream instead of the global RNG, and the baseline
agents' transition logs (round-level resume). 5: the row stream (seed, position) instead of a
shuffled list; the final run's state lives in Trainer checkpoints (checkpoint/final/)."""


def save_checkpoint(path: str | Path, state: dict[str, Any], kind: str) -> None:
    """Write `state` (tagged with its `kind`) to a temporary file, then rename it over `path`."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        torch.save({**state, "kind": kind, "version": CHECKPOINT_VERSION}, tmp)


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
