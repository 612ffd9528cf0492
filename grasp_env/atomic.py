"""Writes that a kill or a full disk cannot tear: files and directories swapped in whole.

Every file a run leaves is written so that a process killed at any moment (SIGKILL, OOM
killer, a preempted node) or stopped by a full disk leaves either the previous complete
version of the file or no file, never a torn one that a later run or `--resume` would trust:

- files: `atomic_file` / `atomic_write_text` / `save_figure` write a hidden temporary sibling
  and rename it over the target (one `os.replace`, atomic on a filesystem);
- directories (adapter/, merged/, cache entries): `atomic_dir` fills a hidden temporary
  sibling directory and swaps it into place;
- append-only logs (history.jsonl, TensorBoard events) may end in a torn last record, which
  their readers drop (`grasp_env.runs.dirs.RoundLogger`).

A killed writer leaves its hidden temporary (`.<name>.tmp-*`, `.<name>.old-*`) behind: nothing
reads those names, and `remove_litter` deletes them once the directory is held again. This
module sits below both the LM side (cache entries, adapters) and the runners (run
directories), so it imports nothing of the package but the fault hook.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from grasp_env.faults import maybe_fault

__all__ = [
    "atomic_dir",
    "atomic_file",
    "atomic_write_text",
    "remove_litter",
    "save_figure",
]

TMP_MARK = ".tmp-"
"""Names of in-progress temporaries: `.<name>.tmp-<random><suffix>` beside the target."""
OLD_MARK = ".old-"
"""Names of a displaced old directory while a new one is swapped in (no RENAME_EXCHANGE)."""


def atomic_write_text(path: str | Path, text: str) -> None:
    """Replace `path` with `text` (UTF-8) in one rename: readers see the old file or the new.

    A kill at any moment leaves the previous complete `path` (or none, if it did not exist);
    a full disk raises OSError (ENOSPC, naming `path`) with `path` untouched.
    `GRASP_FAULT=half-<name>:<n>` kills the process with half of the bytes written (tests).
    """
    data = text.encode("utf-8")
    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data[: len(data) // 2])
        fh.flush()
        maybe_fault(f"half-{Path(path).name}")
        fh.write(data[len(data) // 2 :])


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """A temporary sibling of `path` to write; renamed over `path` only if the block succeeds.

    For writers that open the file themselves (matplotlib, SB3's zip, torch): they write the
    yielded path, which keeps `path`'s suffix (they pick the format from it) and gets the
    usual permissions (umask, not mkstemp's 0600). The data is flushed to disk before the
    rename, so a write error surfaces here with `path` untouched. On any error the temporary
    is removed and the error re-raised; a SIGKILL leaves it as litter for `remove_litter`.
    `GRASP_FAULT=write-<name>:<n>` kills the process just before the rename (tests).
    """
    path = Path(path)
    try:
        tmp = _reserve(path, _new_file, path.suffix)
    except OSError as err:
        _reraise_naming(err, path)
    try:
        yield tmp
        _fsync(tmp)
        maybe_fault(f"write-{path.name}")
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        _reraise_naming(err, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """An empty temporary sibling directory to fill; it becomes `path` if the block succeeds.

    Why: a directory (a PEFT adapter, a merged model, a cache entry) is several files, and a
    reader that finds some of them new and some old, or half of them, loads a wrong model
    without an error. Filled aside and swapped in whole, `path` is at every moment the
    previous complete directory or the new complete one: swapped by one atomic exchange where
    the system has one (Linux renameat2), else the old one is renamed aside first, so that a
    kill between the two renames leaves no `path` (never a mixed one). Errors remove the
    temporary and leave `path` as it was. `GRASP_FAULT=write-<name>:<n>` kills the process
    with the new directory complete but not yet swapped in, `swap-<name>:<n>` right after the
    old one was exchanged or moved aside (tests).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp = _reserve(path, os.mkdir)
    except OSError as err:
        _reraise_naming(err, path)
    try:
        yield tmp
        for file in sorted(p for p in tmp.rglob("*") if p.is_file()):
            _fsync(file)
        maybe_fault(f"write-{path.name}")
        _swap_in(tmp, path)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        _reraise_naming(err, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(path.parent)


_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})
"""Write errors that carry no file name (the disk or quota is full, the device failed)."""


def _reraise_naming(err: OSError, path: Path) -> NoReturn:
    """Raise `err` naming the target `path` instead of our temporary or of nothing.

    A full disk shows up as `OSError(ENOSPC)` without a file name, other errors name the
    temporary, which the user never chose; the runners' error line
    (`cli.filesystem_error`) names the file from it, so it should be the one they asked for.
    """
    ours = err.filename is not None and TMP_MARK in os.fspath(err.filename)
    unnamed = err.filename is None and err.errno in _WRITE_ERRNOS
    if not (ours or unnamed):
        raise err
    raise OSError(err.errno, err.strerror, str(path)) from err


def _swap_in(new: Path, path: Path) -> None:
    """Put the complete directory `new` at `path`, replacing (then deleting) any old one."""
    if not os.path.lexists(path):
        os.replace(new, path)
        return
    if _exchange(new, path):  # `new` now holds the old version
        maybe_fault(f"swap-{path.name}")
        _remove(new)
        return
    old = path.with_name(f".{path.name}{OLD_MARK}{secrets.token_hex(4)}")
    os.replace(path, old)
    maybe_fault(f"swap-{path.name}")
    os.replace(new, path)
    _remove(old)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError, TypeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False  # old kernel or a filesystem without it (NFS): the two-rename fallback
    raise OSError(err, os.strerror(err), str(b))


def _reserve(path: Path, create: Callable[[Path], Any], suffix: str = "") -> Path:
    """A new hidden temporary beside `path` (same filesystem: the rename stays atomic).

    `create` makes it exclusively (O_EXCL, mkdir), so two writers never share one.
    """
    for _ in range(100):
        candidate = path.with_name(f".{path.name}{TMP_MARK}{secrets.token_hex(4)}{suffix}")
        try:
            create(candidate)
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(
        f"no free temporary name beside {str(path)!r}; fix: delete its .{path.name}{TMP_MARK}* "
        "files (remove_litter)"
    )


def _new_file(path: Path) -> None:
    """Create an empty file that did not exist, with the umask's permissions (mkstemp: 0600)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


def _fsync(path: Path) -> None:
    """Flush a written file to disk: a delayed write error (NFS, quotas) is raised here."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable; skipped where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    """Delete a file or a whole directory (litter, a swapped-out old version)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_litter(directory: str | Path, name: str | None = None) -> list[Path]:
    """Delete the temporaries that killed atomic writers left in `directory`; returns them.

    Only the litter of entry `name` when given, else all of it. Call it only while holding
    the directory (`hold_run_dir`) or the entry's lock (`cache_lock`): a running writer's
    temporary would otherwise be deleted under it.
    """
    stem = glob.escape(name) if name is not None else "*"
    found = [p for mark in (TMP_MARK, OLD_MARK) for p in Path(directory).glob(f".{stem}{mark}*")]
    for p in found:
        _remove(p)
    return found


def save_figure(fig: Any, path: str | Path, **savefig_kwargs: Any) -> None:
    """`fig.savefig(path)` through `atomic_file`: a killed plot leaves the previous image.

    The format follows `path`'s suffix (png when it has none) and is passed explicitly, since
    matplotlib would otherwise append an extension to the temporary's name.
    """
    path = Path(path)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format=path.suffix[1:] or "png", **savefig_kwargs)
