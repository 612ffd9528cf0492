"""Run directories shared by every runner: naming, refusing to overwrite, atomic JSON writes."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["RunDirError", "make_run_dir", "write_json"]


class RunDirError(ValueError):
    """A run directory that exists and may not be overwritten."""


def make_run_dir(out_dir: str | Path, run_name: str, overwrite: bool = False) -> Path:
    """Create `out_dir/run_name`; an existing non-empty one is an error unless `overwrite`.

    Nothing already written is ever deleted here: with `overwrite`, files are replaced one by
    one as the new run writes them.
    """
    path = Path(out_dir) / run_name
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise RunDirError(
            f"run directory {str(path)!r} already exists; fix: pass --run-name with a new name, "
            "or --overwrite to replace its files"
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (temporary file in the same directory, then rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
