"""Run by tests/test_interrupted_writes.py: one write of one kind, to be killed or starved.

    python interrupt_write.py KIND TARGET VERSION [--fsize BYTES] [--no-exchange] [--backbone DIR]

KIND is what is written at TARGET, its content determined by VERSION (so the test can tell the
previous version from the new one): `text` (atomic_write_text), `dir` (atomic_dir with three
files), `adapter` (save_adapter), `merged` (export_merged), `cached` (a cached_adapter entry
named TARGET, trained by a stub) or `backbone` (a tiny backbone cache entry, TARGET unused).
The test kills it with GRASP_FAULT (inherited); `--fsize` caps the size of any file the write
makes (RLIMIT_FSIZE: the write fails with EFBIG part-way, as on a full disk), `--no-exchange`
forces the two-rename swap that systems without RENAME_EXCHANGE use. Prints "DONE" at the end.
"""

from __future__ import annotations

import argparse
import resource
import signal
from pathlib import Path

import grasp_env.atomic as dirs


def _lora_model(backbone: str, version: int):
    """A LoRA model on the tiny backbone whose weights depend on `version`."""
    import torch

    from grasp_env.lm.backbone import load_backbone
    from grasp_env.lm.host import LoraShape, attach_lora
    from grasp_env.lm.pruning import lora_parameters

    base, tok = load_backbone(backbone)
    model = attach_lora(base, LoraShape(2, 8, 0.0, ("q_proj",)), 0)
    g = torch.Generator().manual_seed(version)
    with torch.no_grad():
        for p in lora_parameters(model).values():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model, tok


def _mini_backbone_config():
    """A tiny backbone that builds in about a second (the test only needs its cache entry)."""
    from grasp_env.lm.backbone import TinyBackboneConfig

    return TinyBackboneConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        vocab_size=300,
        seq_len=32,
        batch_size=2,
        steps=2,
        warmup_steps=1,
        corpus_fraction=0.02,
    )


def _prepare(kind: str, target: Path, version: int, backbone: str | None):
    """Everything slow (imports, model loading) before the write: (the write, what it writes).

    Cache entries are named by content keys: the path is printed first for the test.
    """
    if kind == "text":
        return lambda: dirs.atomic_write_text(target, f"version {version}\n" * 200), target
    if kind == "dir":

        def write_dir() -> None:
            with dirs.atomic_dir(target) as tmp:
                for i in range(3):
                    (tmp / f"part{i}.txt").write_text(f"version {version}\n" * 2000)

        return write_dir, target
    if kind in ("adapter", "merged"):
        from grasp_env.lm.export import export_merged, save_adapter

        model, tok = _lora_model(backbone, version)
        if kind == "adapter":
            return lambda: save_adapter(model, target), target
        return lambda: export_merged(model, target, tok), target
    if kind == "cached":
        from grasp_env.lm.backbone import cache_root
        from grasp_env.lm.cache import adapter_key, cached_adapter

        model, _ = _lora_model(backbone, version)
        parts = {"name": target.name, "v": 1}
        entry = cache_root() / "adapters" / f"{target.name}-{adapter_key(parts)}"
        return lambda: cached_adapter(parts, lambda: (model, {}), log=print), entry
    if kind == "backbone":
        from grasp_env.lm.backbone import ensure_tiny_backbone, tiny_backbone_path

        cfg = _mini_backbone_config()
        return lambda: ensure_tiny_backbone(cfg, progress=False), tiny_backbone_path(cfg)
    raise SystemExit(f"unknown kind {kind!r}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind")
    parser.add_argument("target", type=Path)
    parser.add_argument("version", type=int)
    parser.add_argument("--fsize", type=int)
    parser.add_argument("--no-exchange", action="store_true")
    parser.add_argument("--backbone")
    args = parser.parse_args()
    write, entry = _prepare(args.kind, args.target, args.version, args.backbone)
    print(f"ENTRY {entry}", flush=True)
    if args.no_exchange:
        dirs._exchange = lambda a, b: False
    if args.fsize:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write(), not a signal death
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.fsize, args.fsize))
    write()
    print("DONE")


if __name__ == "__main__":
    main()
