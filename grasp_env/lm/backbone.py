"""Backbones: any Hugging Face causal LM, and the tiny default that the project builds itself.

The tiny default exists because nothing can be downloaded here: a small Llama-architecture model,
a byte-level BPE tokenizer trained on the embedded corpus, pretrained by `pretrain` on the plain
multilingual text of `grasp_env.data.embedded.build_corpus`. It is saved with `save_pretrained`
and cached under a key derived from its config, so the first run builds it and later runs reuse
it. Every cache entry carries a manifest of file hashes; a corrupted or partial entry is reported
and rebuilt, never silently used.

Heavy imports (torch, transformers, tokenizers) happen inside functions: `import grasp_env` stays
cheap.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grasp_env.atomic import atomic_dir, remove_litter
from grasp_env.data.embedded import EmbeddedConfig, build_corpus
from grasp_env.lm.cache import cache_lock, cache_root, verify_manifest, write_manifest

__all__ = [
    "BackboneError",
    "TinyBackboneConfig",
    "build_tiny_backbone",
    "cache_root",
    "ensure_tiny_backbone",
    "load_backbone",
    "tiny_backbone_path",
]

BUILD_VERSION = "1"
"""Bump when the build procedure changes in a way the config does not capture."""

SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "pad_token": "<pad>",
    "unk_token": "<unk>",
}


class BackboneError(ValueError):
    """A model name or path that cannot be loaded, with the reason and the fix."""


@dataclass(frozen=True)
class TinyBackboneConfig:
    """Architecture and pretraining schedule of the project-built tiny Llama backbone."""

    hidden_size: int = 256
    """Width of the residual stream."""
    num_hidden_layers: int = 4
    """Transformer blocks."""
    num_attention_heads: int = 4
    """Attention heads (no grouped-query attention at this size)."""
    intermediate_size: int = 688
    """Width of the SwiGLU MLP."""
    vocab_size: int = 3000
    """Byte-level BPE vocabulary trained on the embedded corpus."""
    max_position_embeddings: int = 512
    """Longest sequence the rotary embedding is set up for."""
    seq_len: int = 192
    """Tokens per pretraining row: as long as the longest task row, so every position the
    adapters see was seen in pretraining."""
    batch_size: int = 20
    """Rows per pretraining step."""
    steps: int = 330
    """Pretraining optimizer steps."""
    lr: float = 3e-3
    """Peak AdamW learning rate (cosine decay to a tenth after a linear warm-up)."""
    warmup_steps: int = 30
    """Linear warm-up steps."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    heldout_fraction: float = 0.02
    """Share of corpus documents kept out of pretraining to measure the held-out loss."""
    corpus_fraction: float = 1.0
    """Share of corpus documents used at all (the tiny test preset uses a slice)."""
    seed: int = 0
    """Seed of the corpus, the initialisation and the batch order."""
    corpus: EmbeddedConfig = field(default_factory=EmbeddedConfig)
    """How the pretraining corpus is generated."""

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise BackboneError(
                f"TinyBackboneConfig.hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}; fix: pick a divisor"
            )
        for name in ("heldout_fraction", "corpus_fraction"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise BackboneError(f"TinyBackboneConfig.{name}={value} is outside (0, 1]")

    @property
    def cache_key(self) -> str:
        """Content key of the build: config, build version and the babel (CLDR) release."""
        import babel

        blob = json.dumps(
            {"cfg": dataclasses.asdict(self), "build": BUILD_VERSION, "babel": babel.__version__},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def tiny_backbone_path(cfg: TinyBackboneConfig) -> Path:
    """Cache directory of the tiny backbone built from `cfg` (it may not exist yet)."""
    return cache_root() / "backbones" / f"tiny-{cfg.cache_key}"


# ------------------------------------------------------------------------------ build


def _train_tokenizer(docs: list[str], vocab_size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(docs, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)


def _token_rows(tokenizer: Any, docs: list[str], seq_len: int) -> Any:
    """All documents as one EOS-separated stream cut into rows of `seq_len` tokens."""
    import torch

    ids: list[int] = []
    for enc in tokenizer(docs, add_special_tokens=False)["input_ids"]:
        ids.extend(enc)
        ids.append(tokenizer.eos_token_id)
    n = len(ids) // seq_len
    return torch.tensor(ids[: n * seq_len], dtype=torch.long).view(n, seq_len)


def _lm_loss(model: Any, rows: Any, batch_size: int = 64) -> float:
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            total += model(input_ids=batch, labels=batch).loss.item() * len(batch)
            count += len(batch)
    model.train()
    return total / max(count, 1)


def pretrain(model: Any, rows: Any, cfg: TinyBackboneConfig, progress: bool = True) -> list[float]:
    """Causal-LM pretraining on token rows; returns the training loss of every step."""
    import torch
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay
    )

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    losses = []
    model.train()
    bar = tqdm(range(cfg.steps), desc="pretraining tiny backbone", disable=not progress)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        batch = rows[torch.randint(len(rows), (cfg.batch_size,), generator=gen)]
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 10 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    return losses


def build_tiny_backbone(
    cfg: TinyBackboneConfig, out_dir: Path, progress: bool = True
) -> dict[str, Any]:
    """Build tokenizer and model from scratch, pretrain, save to `out_dir`; return build info."""
    import random

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    t0 = time.perf_counter()
    docs = build_corpus(cfg.seed, cfg.corpus)
    if cfg.corpus_fraction < 1.0:
        docs = docs[: max(10, int(len(docs) * cfg.corpus_fraction))]
    order = list(range(len(docs)))
    random.Random(cfg.seed).shuffle(order)
    n_held = max(1, int(len(docs) * cfg.heldout_fraction))
    heldout_docs = [docs[i] for i in order[:n_held]]
    train_docs = [docs[i] for i in order[n_held:]]
    tokenizer = _train_tokenizer(train_docs, cfg.vocab_size)
    train_rows = _token_rows(tokenizer, train_docs, cfg.seq_len)
    heldout_rows = _token_rows(tokenizer, heldout_docs, cfg.seq_len)
    t_data = time.perf_counter() - t0

    torch.manual_seed(cfg.seed)
    model_cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_attention_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(model_cfg)
    initial_heldout = _lm_loss(model, heldout_rows)
    losses = pretrain(model, train_rows, cfg, progress=progress)
    final_heldout = _lm_loss(model, heldout_rows)
    elapsed = time.perf_counter() - t0

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    info = {
        "config": dataclasses.asdict(cfg),
        "cache_key": cfg.cache_key,
        "parameters": sum(p.numel() for p in model.parameters()),
        "corpus_documents": len(docs),
        "corpus_characters": sum(len(d) for d in docs),
        "train_tokens": int(train_rows.numel()),
        "heldout_tokens": int(heldout_rows.numel()),
        "heldout_loss_initial": initial_heldout,
        "heldout_loss_final": final_heldout,
        "train_loss_last10": sum(losses[-10:]) / len(losses[-10:]),
        "data_seconds": t_data,
        "build_seconds": elapsed,
        "torch_threads": torch.get_num_threads(),
    }
    (out_dir / "build_info.json").write_text(json.dumps(info, indent=2))
    return info


def ensure_tiny_backbone(cfg: TinyBackboneConfig, progress: bool = True, log: Any = print) -> Path:
    """Path of a verified cache entry for `cfg`, building (or rebuilding) it if needed.

    The build goes to a temporary directory beside the entry and is swapped into place only
    when complete and hashed (`atomic_dir`), so an interrupted build never leaves a
    half-written entry that looks valid, and a corrupted entry stays (and is reported again)
    until its replacement is whole. A lock (`cache_lock`) makes concurrent processes build it
    once; holding it, the builder also deletes what killed builders left (`remove_litter`).
    """
    path = tiny_backbone_path(cfg)
    if path.exists() and verify_manifest(path) is None:
        return path
    with cache_lock(path):
        if path.exists():  # built by another process while this one waited, or corrupted
            problem = verify_manifest(path)
            if problem is None:
                return path
            log(f"cached backbone {path} is corrupted ({problem}); rebuilding it")
        remove_litter(path.parent, path.name)
        with atomic_dir(path) as tmp:
            info = build_tiny_backbone(cfg, tmp, progress=progress)
            write_manifest(tmp)
    log(
        f"built tiny backbone in {info['build_seconds']:.0f} s: {info['parameters']:,} parameters, "
        f"held-out LM loss {info['heldout_loss_final']:.3f} -> {path}"
    )
    return path


# ---------------------------------------------------------------------------- loading


def _has_safetensors(path: Path) -> bool:
    return any(path.glob("*.safetensors")) or (path / "model.safetensors.index.json").is_file()


def load_backbone(
    name_or_path: str | Path,
    trust_remote_code: bool = False,
    dtype: str = "float32",
    shard: bool = False,
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer by hub name or local path, from safetensors only.

    Args:
        name_or_path: A local directory written by `save_pretrained`, or a hub model id.
        trust_remote_code: Run the model's own code from the hub/directory. Off unless asked:
            it executes arbitrary Python.
        dtype: Torch dtype name of the weights ("float32", "bfloat16", ...).
        shard: Shard the weights over the launched processes as they load (transformers'
            `from_pretrained(distributed_config=DistributedConfig(fsdp_size=N))`: FSDP2, each
            process reads and keeps only its shard; `--strategy fsdp`). Needs a launcher.

    Returns:
        (model, tokenizer); the tokenizer always has a pad token (EOS when it had none).

    Raises:
        BackboneError: a directory without safetensors weights, or a name that cannot be loaded.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(name_or_path)
    if path.exists():
        if not path.is_dir():
            raise BackboneError(f"model={str(path)!r} is a file; fix: pass the model's directory")
        if not _has_safetensors(path):
            raise BackboneError(
                f"model={str(path)!r} holds no *.safetensors weights; fix: save the model with "
                "save_pretrained(..., safe_serialization=True) (pickled .bin weights are refused)"
            )
    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        raise BackboneError(f"dtype={dtype!r} is not a torch dtype; fix: use float32 or bfloat16")
    extra: dict[str, Any] = {}
    if shard:
        from transformers.distributed import DistributedConfig

        from grasp_env.lm import dist

        extra["distributed_config"] = DistributedConfig(fsdp_size=dist.process_count())
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(name_or_path), trust_remote_code=trust_remote_code
        )
        model = AutoModelForCausalLM.from_pretrained(
            str(name_or_path),
            use_safetensors=True,
            trust_remote_code=trust_remote_code,
            dtype=torch_dtype,
            **extra,
        )
    except (OSError, ValueError) as err:
        raise BackboneError(
            f"model={str(name_or_path)!r} could not be loaded ({err.__class__.__name__}: "
            f"{str(err).splitlines()[0]}); fix: pass a local directory with config.json, "
            "tokenizer files and safetensors weights, or a hub id available in the local cache"
        ) from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
