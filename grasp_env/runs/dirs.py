"""Run directories shared by every runner: naming, refusing to overwrite, atomic writes.

Every file a run leaves is written so that a process killed at any moment (SIGKILL, OOM
killer, a preempted node) or stopped by a full disk leaves either the previous complete
version of the file or no file, never a torn one that a later run or `--resume` would trust:

- files: `atomic_file` / `atomic_write_text` / `write_json` / `save_figure` write a hidden
  temporary sibling and rename it over the target (one `os.replace`, atomic on a filesystem);
- directories (adapter/, merged/, cache entries): `atomic_dir` fills a hidden temporary
  sibling directory and swaps it into place;
- append-only logs (history.jsonl, TensorBoard events) may end in a torn last record, which
  their readers drop (`RoundLogger`).

A killed writer leaves its hidden temporary (`.<name>.tmp-*`, `.<name>.old-*`) behind: nothing
reads those names, and `remove_litter` deletes them once the directory is held again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grasp_env.atomic import (
    atomic_dir,
    atomic_file,
    atomic_write_text,
    remove_litter,
    save_figure,
)
from grasp_env.faults import maybe_fault

__all__ = [
    "RoundLogger",
    "RunDirError",
    "atomic_dir",
    "atomic_file",
    "atomic_write_text",
    "check_figure_path",
    "check_out_dir",
    "check_run_name",
    "config_markdown",
    "hold_run_dir",
    "make_run_dir",
    "read_config",
    "read_json_record",
    "remove_litter",
    "resume_run_dir",
    "save_figure",
    "write_json",
]


class RunDirError(ValueError):
    """A run directory that exists and may not be overwritten."""


LOCK_NAME = ".lock"
"""The file inside a run directory that the process writing it holds locked."""

_held: dict[str, Any] = {}


def hold_run_dir(path: Path) -> None:
    """Lock the run directory `path` for the rest of this process, or refuse: one writer each.

    The lock is the operating system's (flock on `path/.lock`): it is released when the process
    ends, however it ends (a SIGKILLed run leaves no stale lock), so `--resume` after a crash is
    never refused.
    """
    from filelock import FileLock, Timeout

    if str(path) in _held:
        return
    lock = FileLock(str(path / LOCK_NAME))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunDirError(
            f"run directory {str(path)!r} is being written by another running process (it holds "
            f"{str(path / LOCK_NAME)!r}); fix: wait for that run to finish, or pass another "
            "--run-name"
        ) from None
    _held[str(path)] = lock


def check_run_name(run_name: str) -> None:
    """A run name is one plain directory name: never a path that leaves --out-dir."""
    if len(run_name.encode()) > 255:
        raise RunDirError(
            f"run_name is {len(run_name.encode())} bytes long; fix: pass a --run-name of at most "
            "255 bytes (the filesystem's limit for one name)"
        )
    bad = (
        not run_name
        or run_name in (".", "..")
        or "/" in run_name
        or "\\" in run_name
        or "\0" in run_name
        or run_name.startswith("~")
    )
    if bad:
        raise RunDirError(
            f"run_name={run_name!r} is not a plain directory name; fix: pass --run-name without "
            "'/', '\\', '..' or '~' (choose where runs go with --out-dir)"
        )


def _checked(out_dir: str | Path, run_name: str) -> Path:
    """out_dir / run_name after checking both (a plain name; an output path that is a folder)."""
    check_run_name(run_name)
    check_out_dir(out_dir)
    return Path(out_dir) / run_name


def check_out_dir(out_dir: str | Path) -> None:
    """The output directory, or its nearest existing parent, must be a directory."""
    out = Path(out_dir)
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                raise RunDirError(
                    f"out_dir={str(out_dir)!r}: {str(parent)!r} is a file, not a directory; fix: "
                    "pass --out-dir naming a directory (it is created if missing)"
                )
            break


def _content(path: Path) -> list[Path]:
    """What a run directory holds that a run wrote (not its lock, not a killed writer's litter)."""
    return [p for p in path.iterdir() if p.name != LOCK_NAME and not p.name.startswith(".")]


def make_run_dir(out_dir: str | Path, run_name: str, overwrite: bool = False) -> Path:
    """Create `out_dir/run_name`; an existing one with results is an error unless `overwrite`.

    A directory holding only its lock (a run that failed before writing anything) counts as
    empty, so the corrected rerun goes ahead. Nothing already written is ever deleted here:
    with `overwrite`, files are replaced one by one as the new run writes them. The directory
    is then held (`hold_run_dir`): a second run naming it while this one runs is refused.
    """
    path = _checked(out_dir, run_name)
    if path.exists() and not path.is_dir():
        raise RunDirError(
            f"run directory {str(path)!r} is a file; fix: pass another --run-name, or move the file"
        )
    if path.exists() and _content(path) and not overwrite:
        finished = (path / "metrics.json").is_file() or (path / "benchmark.json").is_file()
        how = (
            "pass --run-name with a new name, or --overwrite to replace its files"
            if finished
            else "it is an unfinished run: pass --resume with its flags to continue it, a new "
            "--run-name, or --overwrite to start it again"
        )
        raise RunDirError(f"run directory {str(path)!r} already exists; fix: {how}")
    path.mkdir(parents=True, exist_ok=True)
    hold_run_dir(path)
    remove_litter(path)
    return path


RESUME_IGNORES = frozenset(
    {"resume", "overwrite", "export_merged", "dry_run", "overrides", "backbone_path"}
)
"""config.json keys that steer one invocation, not the experiment: not compared by --resume."""


def read_json_record(path: str | Path, what: str, needs: tuple[str, ...], fix: str) -> dict:
    """A run's JSON file as a dict, or a ValueError naming the file, what is wrong and `fix`.

    For the tools that read what a runner wrote (grid_report.py, --grid-from): a missing
    file, one that is not UTF-8 or not JSON, one that holds no object, or one written by
    another runner (a key in `needs` missing) each get one clear line, never a traceback.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file; fix: {fix}")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text; fix: {fix}") from None
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} is not valid JSON ({err.msg}, line {err.lineno}); fix: {fix}"
        ) from None
    if not isinstance(record, dict):
        raise ValueError(f"{path} holds a {type(record).__name__}, not {what}; fix: {fix}")
    missing = [k for k in needs if k not in record]
    if missing:
        raise ValueError(f"{path} is not {what} (it lacks {missing}); fix: {fix}")
    return record


def check_figure_path(out: str | Path) -> None:
    """A figure's output path names a file whose folder can be made (before any work)."""
    out = Path(out)
    if out.is_dir():
        raise RunDirError(
            f"--out {str(out)!r} is a directory; fix: name the image file, e.g. {out / 'plot.png'}"
        )
    check_out_dir(out.parent)


def read_config(path: Path) -> dict[str, Any]:
    """A run's config.json as a dict, or a RunDirError naming the file and the fix."""
    fix = "fix: restore it from the run's flags, or start a new run with another --run-name"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunDirError(f"--resume: {str(path)!r} is not valid JSON ({err}); {fix}") from None
    if not isinstance(saved, dict):
        raise RunDirError(
            f"--resume: {str(path)!r} holds a {type(saved).__name__}, not a run's config; {fix}"
        )
    return saved


def resume_run_dir(out_dir: str | Path, run_name: str, config: dict[str, Any]) -> Path:
    """The run directory `--resume` continues; its config.json must match `config`.

    `config` is this invocation's config; keys that only steer the invocation
    (`RESUME_IGNORES`) are not compared. A mismatch is an error naming every differing setting:
    a resumed run with other settings would silently mix two experiments.
    """
    path = _checked(out_dir, run_name)
    saved_path = path / "config.json"
    if not saved_path.is_file():
        raise RunDirError(
            f"--resume: {str(saved_path)!r} does not exist, so there is no run to resume; fix: "
            "check --run-name/--out-dir (and --seed/--task, which name the run), or drop --resume"
        )
    saved = dict(_flatten(read_config(saved_path)))
    new = dict(_flatten(json.loads(json.dumps(config, default=str))))
    diff = [
        f"{k}: saved {saved.get(k)!r}, now {new.get(k)!r}"
        for k in sorted(set(saved) | set(new))
        if k.split(".")[0] not in RESUME_IGNORES and saved.get(k) != new.get(k)
    ]
    if diff:
        raise RunDirError(
            f"--resume: the flags differ from the run in {str(path)!r} ({'; '.join(diff)}); "
            "fix: resume with the run's own flags (see its config.json), or start a new run "
            "with another --run-name"
        )
    hold_run_dir(path)
    remove_litter(path)
    return path


def write_json(path: str | Path, data: Any) -> None:
    """Write `data` as indented JSON, atomically (`atomic_write_text`)."""
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str))


def config_markdown(config: dict[str, Any]) -> str:
    """A two-column markdown table of a (flattened) config: TensorBoard's first write."""
    rows = ["| key | value |", "|---|---|"]
    for key, value in _flatten(config):
        rows.append(f"| {key} | {value} |")
    return "\n".join(rows)


def _flatten(config: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.extend(_flatten(value, name + "."))
        else:
            out.append((name, value))
    return out


class RoundLogger:
    """One writer per run: TensorBoard tags under fixed prefixes and history.jsonl.

    Tags (all against the optimizer-step axis of the controller run):
    `controller/candidate_ratios` (histogram), `rewards/mean|std|max`,
    `rewards/frac_reward_zero_std`, `controller/mu|sigma|committed_ratio|learned_ratio`,
    `env/baseline_loss`, `env/achieved_sparsity`, `losses/train` (per optimizer step), then
    `eval/*` once at the end.

    Both logs are append-only, so a kill can tear their last record; neither is ever trusted
    past the last round checkpoint. history.jsonl: a resumed run keeps the complete lines up to
    the checkpoint's rounds and drops a torn last line (`_kept_history`), then rewrites the file
    atomically. TensorBoard event files: every record carries its length and CRCs, and
    TensorBoard's reader stops at a torn record and goes on with the next events file (the
    resumed writer's), so a torn tail is tolerated by design and those files are not made
    atomic (tests/test_interrupted_writes.py reads events files cut at every few bytes).
    """

    def __init__(
        self, run_dir: Path, config: dict[str, Any], resume_rounds: int | None = None
    ) -> None:
        """Open the writer and write the config table first.

        With `resume_rounds` (a resumed run whose checkpoint holds that many rounds),
        history.jsonl is cut back to those rounds and TensorBoard is told, through
        `purge_step`, to drop whatever the killed process logged after them: no round is
        lost or logged twice.
        """
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = run_dir
        self.history_path = run_dir / "history.jsonl"
        if resume_rounds is None:
            self.writer = SummaryWriter(log_dir=str(run_dir))
            self.writer.add_text("config", config_markdown(config), 0)
            atomic_write_text(self.history_path, "")
            return
        kept = self._kept_history(resume_rounds)
        purge = int(kept[-1]["step"]) + 1 if kept else 1
        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=purge)
        text = "".join(json.dumps(r, default=float) + "\n" for r in kept)
        atomic_write_text(self.history_path, text)

    def _kept_history(self, rounds: int) -> list[dict[str, Any]]:
        """The first `rounds` records of history.jsonl; a torn last line is dropped.

        A line cut by a kill (or a full disk) is the last one written and comes after the
        checkpoint (rounds are logged before they are checkpointed), so reading stops there:
        it may be cut inside a UTF-8 character or a JSON token, and a cut line never parses
        as a whole record (a record ends with its closing brace).
        """
        lines = []
        raw = self.history_path.read_bytes() if self.history_path.exists() else b""
        for line in raw.split(b"\n"):
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                break  # a line cut by the kill: it is after the checkpoint anyway
            if not isinstance(record, dict):
                break
            lines.append(record)
        if len(lines) < rounds:
            raise ValueError(
                f"{self.history_path} has {len(lines)} complete rounds but the checkpoint has "
                f"{rounds}; fix: the run directory was edited or truncated, rerun with "
                "--overwrite"
            )
        return lines[:rounds]

    def round(self, record: dict[str, Any]) -> None:
        """Log one finished controller round."""
        import numpy as np

        step = int(record["step"])
        rewards = np.asarray(record["rewards"], dtype=float)
        w = self.writer
        w.add_histogram("controller/candidate_ratios", np.asarray(record["ratios"]), step)
        w.add_scalar("rewards/mean", float(rewards.mean()), step)
        w.add_scalar("rewards/std", float(rewards.std()), step)
        w.add_scalar("rewards/max", float(rewards.max()), step)
        for key in ("frac_reward_zero_std", "mu", "sigma"):
            if key in record:
                prefix = "rewards" if key.startswith("frac") else "controller"
                w.add_scalar(f"{prefix}/{key}", float(record[key]), step)
        w.add_scalar("controller/committed_ratio", float(record["committed_ratio"]), step)
        w.add_scalar("controller/learned_ratio", float(record["learned_ratio"]), step)
        w.add_scalar("env/baseline_loss", float(record["baseline_loss"]), step)
        w.add_scalar("env/achieved_sparsity", float(record["achieved_sparsity"]), step)
        first = int(record.get("first_step", step - len(record.get("train_losses", [])) + 1))
        for i, loss in enumerate(record.get("train_losses", [])):
            w.add_scalar("losses/train", float(loss), first + i)
        line = (json.dumps(record, default=float) + "\n").encode("utf-8")
        with self.history_path.open("ab") as fh:  # a torn tail is dropped on resume
            fh.write(line[: len(line) // 2])
            fh.flush()
            maybe_fault("history-append")  # tests: a kill with half of the line written
            fh.write(line[len(line) // 2 :])
        self.writer.flush()  # the round checkpoint follows: nothing before it may be lost

    def final(self, metrics: dict[str, float], hparams: dict[str, Any], step: int) -> None:
        """Final metrics under eval/ and the HPARAMS view at `step`; closes the writer.

        The main job passes the controller run's last step + 1, the purge step of a resumed
        writer, so a final stage that is repeated after a kill replaces its points.
        """
        for key, value in metrics.items():
            self.writer.add_scalar(f"eval/{key}", float(value), step)
        clean = {
            k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in hparams.items()
        }
        self.writer.add_hparams(
            clean,
            {f"hparam/{k}": float(v) for k, v in metrics.items()},
            run_name=".",
            global_step=step,
        )
        self.writer.close()
