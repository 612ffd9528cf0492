"""A fault-injection hook for tests: SIGKILL this process at a named point.

`GRASP_FAULT=<point>:<n>` makes the process SIGKILL itself the n-th time it reaches the named
point (`maybe_fault`). It exists so tests can kill a run at an exact, reproducible place; it
is inert unless the variable is set. With `GRASP_FAULT_ONCE=<file>` as well, only the first
process to get there dies (it creates the file first): a Ray task retried in a fresh worker
then runs through, as after a real crash. Its own module because every layer calls it (cache
entries, atomic writes, checkpoints, runners).
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

__all__ = ["FAULT_ENV", "FAULT_ONCE_ENV", "maybe_fault"]

FAULT_ENV = "GRASP_FAULT"
FAULT_ONCE_ENV = "GRASP_FAULT_ONCE"
_fault_counts: Counter[str] = Counter()


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
