"""Command-line pieces shared by the runners: flags from the config tree, and the error exit.

Every runner's `Args` is the experiment's config tree (`grasp_env.config.ExperimentConfig`)
plus the runner's own flags, so its `--help` is that tree's option groups. `parse` reads
`--preset`, `--method` and `--task` first, builds the tree those name (their values become the
defaults shown in `--help`), then lets tyro parse every flag on top of it. What the user changed
is the difference between the parsed tree and those defaults (`overrides`): recorded in
config.json, and an error where nothing in the run reads it (`check_used`).
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from grasp_env.config import ExperimentConfig, as_dict, overrides, unused_settings

__all__ = ["RunDirArgs", "check_used", "config_record", "defaults_for", "parse", "run_cli"]


@dataclass(frozen=True)
class RunDirArgs:
    """Where a runner writes."""

    out_dir: Path = Path("runs")
    """Parent directory of run directories."""
    run_name: str | None = None
    """Run directory name (each runner has its own default)."""
    overwrite: bool = False
    """Replace the files of an existing run directory."""

    def check_run_dir(self) -> None:
        """The run name and output directory are usable (before any work)."""
        from grasp_env.runs.dirs import check_out_dir, check_run_name

        if self.run_name is not None:
            check_run_name(self.run_name)
        check_out_dir(self.out_dir)


def _leading(argv: list[str]) -> argparse.Namespace:
    """--preset, --method and --task, read before the rest (they choose the defaults)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default="default")
    pre.add_argument("--method", default="default")
    pre.add_argument("--task", default="qa")
    known, _ = pre.parse_known_args(argv)
    return known


def defaults_for(args_type: type, preset: str, method: str, task: str) -> Any:
    """The runner's default flags for a preset, method and task (its own flags at defaults)."""
    tree = ExperimentConfig.from_preset(preset, method, task)
    return args_type(**{f.name: getattr(tree, f.name) for f in fields(ExperimentConfig)})


def parse(args_type: type, argv: list[str] | None = None) -> tuple[Any, Any]:
    """(parsed flags, the defaults they were parsed against) for a runner's `Args`."""
    import tyro

    argv = list(sys.argv[1:] if argv is None else argv)
    lead = _leading(argv)
    defaults = defaults_for(args_type, lead.preset, lead.method, lead.task)
    args = tyro.cli(args_type, default=defaults, args=argv)
    return args, defaults


def experiment_of(args: Any) -> ExperimentConfig:
    """The experiment part of a runner's flags."""
    return ExperimentConfig(**{f.name: getattr(args, f.name) for f in fields(ExperimentConfig)})


def check_used(args: Any, defaults: Any, agents: tuple[str, ...]) -> None:
    """Refuse flags nothing in this run reads (`grasp_env.config.unused_settings`)."""
    unused = unused_settings(experiment_of(args), experiment_of(defaults), agents)
    if unused:
        raise ValueError(
            f"flag(s) that nothing in this run reads: {'; '.join(unused)}; fix: drop them, or "
            "choose the agent/setting that uses them"
        )


def config_record(args: Any, defaults: Any) -> dict[str, Any]:
    """config.json: the resolved tree and runner flags, and what differs from the defaults."""
    return {**as_dict(args), "overrides": _plain(overrides(args, defaults))}


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        if isinstance(value, tuple | list):
            value = list(value)
        elif not (value is None or isinstance(value, bool | int | float | str)):
            value = str(value)
        out[key] = value
    return out


def run_cli(main: Callable[..., int], args_type: type, launchable: bool = True) -> None:
    """Parse flags, run `main`, and turn user errors into one line and exit 2.

    A runner whose `Args` is an experiment (`ExperimentConfig` subclass) is parsed against its
    preset and method (`parse`) and called as `main(args, defaults)`; a tool with flags of its
    own (analyze.py, grid_report.py) as `main(args)`. User errors are the ValueErrors the
    package raises for bad input (DataError, RunDirError, BackboneError and config validation
    are all ValueErrors): no traceback for those. `launchable=False`: the runner refuses to
    run under accelerate launch / torchrun (its processes would each write the same files).
    """
    import os

    import tyro

    try:
        experiment = issubclass(args_type, ExperimentConfig)
        if experiment:
            args, defaults = parse(args_type)
        else:
            args, defaults = tyro.cli(args_type), None
        if experiment:
            from grasp_env.runs.allocator import keep_freed_memory

            keep_freed_memory()  # CPU runs only: freed pages are reused, not faulted in again
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if not launchable and world > 1:
            raise ValueError(
                f"WORLD_SIZE={world}: {Path(sys.argv[0]).name} runs many independent runs and "
                "is single-process; fix: run it without accelerate launch / torchrun (only "
                "train_agent.py runs data-parallel)"
            )
        sys.exit(main(args, defaults) if experiment else main(args))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:
        message = filesystem_error(err)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


_FS_FIXES = {
    errno.ENOSPC: "free space on that filesystem, or write elsewhere (--out-dir, GRASP_CACHE_DIR)",
    errno.EDQUOT: "free space within your quota, or write elsewhere (--out-dir, GRASP_CACHE_DIR)",
    errno.EROFS: "write to a writable filesystem (--out-dir, GRASP_CACHE_DIR)",
    errno.EACCES: "give yourself write permission there, or write elsewhere (--out-dir, "
    "GRASP_CACHE_DIR)",
    errno.EPERM: "write to a directory you may create files in (--out-dir, GRASP_CACHE_DIR)",
}


def filesystem_error(err: OSError) -> str | None:
    """One line for a filesystem fault (disk full, read-only, no permission), or None.

    It names the path, the operating system's reason and the fix. Files already written stay
    as they were: every file of a run is written to a temporary name and renamed into place.
    """
    if err.errno not in _FS_FIXES:
        return None
    where = err.filename if err.filename is not None else "(unnamed file)"
    return (
        f"cannot write {str(where)!r}: {err.strerror} (errno {errno.errorcode[err.errno]}); "
        f"fix: {_FS_FIXES[err.errno]}"
    )
