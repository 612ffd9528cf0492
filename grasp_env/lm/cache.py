"""The content-addressed cache of built backbones and trained adapters.

An entry is a directory named by the hash of everything that determines its content (`adapter_key`),
written whole into a temporary sibling and swapped in (`grasp_env.atomic.atomic_dir`), with a
MANIFEST.json of every file's sha256 written last. A reader verifies the manifest first
(`verify_manifest`): a damaged entry of any shape (a file missing, truncated or changed, a manifest
that is missing, torn, of the wrong type, or that leaves files out) is reported and rebuilt, never
loaded. One process builds a missing entry while the others wait on its lock (`cache_lock`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grasp_env.atomic import atomic_dir, remove_litter
from grasp_env.lm import dist
from grasp_env.lm.export import write_adapter_files

__all__ = [
    "adapter_key",
    "build_environment",
    "cache_lock",
    "cache_root",
    "cached_adapter",
    "verify_manifest",
    "write_manifest",
]


def cache_root() -> Path:
    """Cache of built backbones and adapters: $GRASP_CACHE_DIR or ~/.cache/grasp_lora_gym."""
    value = os.environ.get("GRASP_CACHE_DIR")
    if value is None:
        root = Path.home() / ".cache" / "grasp_lora_gym"
    elif not value.strip():
        raise ValueError(
            "GRASP_CACHE_DIR is set but empty (the cache would land in the current directory); "
            "fix: unset it for ~/.cache/grasp_lora_gym, or name a directory"
        )
    else:
        root = Path(value)
    if root.exists() and not root.is_dir():
        raise ValueError(
            f"GRASP_CACHE_DIR={str(root)!r} is a file, not a directory; fix: point "
            "GRASP_CACHE_DIR at a directory (it is created if missing)"
        )
    return root


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(directory: Path) -> None:
    """Record the sha256 of every file in `directory` (MANIFEST.json, written last).

    Written into the entry's temporary directory before it is swapped in (`atomic_dir`): an
    entry in place always has its manifest, so `verify_manifest` catches later damage.
    """
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != "MANIFEST.json")
    manifest = {str(p.relative_to(directory)): _sha256(p) for p in files}
    (directory / "MANIFEST.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))


def verify_manifest(directory: Path) -> str | None:
    """None if MANIFEST.json lists exactly the entry's files and each matches, else what is wrong.

    Every way a manifest can fail to vouch for an entry is a problem: missing, not JSON, not an
    object of file -> sha256 strings, listing no files, leaving a file of the entry out, or a
    listed file missing or changed.
    """
    manifest_path = directory / "MANIFEST.json"
    if not manifest_path.is_file():
        return "MANIFEST.json is missing (partial write?)"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "MANIFEST.json is not valid JSON"
    if not isinstance(manifest, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in manifest.items()
    ):
        return "MANIFEST.json is not an object of file -> sha256"
    if not manifest:
        return "MANIFEST.json lists no files"
    present = {
        str(p.relative_to(directory))
        for p in directory.rglob("*")
        if p.is_file() and p.name != "MANIFEST.json"
    }
    unlisted = sorted(present - set(manifest))
    if unlisted:
        return f"{unlisted[0]} is not in MANIFEST.json"
    for name, digest in manifest.items():
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        if _sha256(path) != digest:
            return f"{name} does not match its recorded sha256"
    return None


def cache_lock(entry: Path) -> Any:
    """An inter-process lock for building the cache entry `entry` (a file beside it).

    Two processes that need the same missing entry (two runs started together, Ray workers)
    build it once: the first holds the lock while it builds, the others wait and then find the
    entry. The lock is the operating system's (flock), so a killed builder releases it.
    """
    from filelock import FileLock

    entry.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(entry.parent / f".{entry.name}.lock"))


def adapter_key(parts: dict[str, Any]) -> str:
    """Content key of an adapter: everything that determines its weights."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached_adapter(
    key_parts: dict[str, Any], train_fn: Callable[[], tuple[Any, dict[str, Any]]], log: Any = print
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(LoRA state, info) from the cache, or from `train_fn` (then saved in PEFT format).

    `train_fn` returns (peft_model_with_best_state, info). The entry is written to a temporary
    directory, hashed (MANIFEST.json) and swapped into place (`atomic_dir`): a kill or a full
    disk while it is written leaves no entry (or the previous one), never a partial one that
    a later run would load; a corrupted entry is rebuilt.
    """
    from safetensors.torch import load_file

    key = adapter_key(key_parts)
    path = cache_root() / "adapters" / f"{key_parts.get('name', 'adapter')}-{key}"
    # Another run may be training the same entry: the main process takes the entry's lock
    # (`cache_lock`) and decides for all processes of this run (they train together or load).
    lock = cache_lock(path) if dist.is_main() else contextlib.nullcontext()
    with lock:
        problem = None
        if dist.is_main():
            problem = verify_manifest(path) if path.exists() else "absent"
        problem = dist.broadcast_object(problem)
        if problem is None:
            info = json.loads((path / "train_info.json").read_text())
            return load_file(path / "adapter_model.safetensors"), info
        if problem != "absent" and dist.is_main():
            log(f"cached adapter {path} is corrupted ({problem}); retraining it")
        model, info = train_fn()  # every process trains (data parallel); the main one writes
        logs = info.pop("tensorboard_dir", None)
        if dist.is_main():
            remove_litter(path.parent, path.name)  # of killed writers (the lock is ours)
            with atomic_dir(path) as tmp:
                write_adapter_files(model, tmp)
                if logs is not None and Path(logs).is_dir():
                    shutil.move(logs, tmp / "tensorboard")  # the adapter's training curves
                built = {**info, "key": key_parts, "built_with": build_environment()}
                info_json = json.dumps(built, default=str)
                (tmp / "train_info.json").write_text(info_json)
                write_manifest(tmp)
        if logs is not None:  # moved into the entry, or this process's own copy: not kept
            shutil.rmtree(logs, ignore_errors=True)
        dist.wait_for_everyone()
    return load_file(path / "adapter_model.safetensors"), info


def build_environment() -> dict[str, Any]:
    """What besides the key shaped a trained cache entry: torch threads and library versions.

    The key holds every setting, but the same settings trained in a process with another
    torch thread count give other weights (float sums in another order; docs/BENCHMARKS.md,
    "Reproducibility across installs"). Recorded so that an entry's origin can be traced.
    """
    from importlib.metadata import PackageNotFoundError, version

    import torch

    versions = {}
    for package in ("torch", "transformers", "peft", "trl", "accelerate"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {"torch_threads": torch.get_num_threads(), "processes": dist.process_count(), **versions}
