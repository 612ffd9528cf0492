"""Small random causal LMs of several architectures, saved like a real model directory.

Tests of architecture-dependent code (LoRA target modules, `--dry-run`'s counts, the pipeline on
a backbone other than Llama) need models whose layer names and shapes differ the way the real
families' do, but that build in well under a second and run on a CPU. `write_tiny_model` saves
one: random weights (safetensors), config.json and the tiny preset's tokenizer, so the
directory loads with `grasp_env.lm.backbone.load_backbone` like any downloaded model.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

__all__ = ["KINDS", "tiny_config", "write_tiny_model"]

KINDS: tuple[str, ...] = (
    "llama",
    "qwen2",
    "mistral",
    "gpt2",
    "gpt_neox",
    "gemma2",
    "phi",
    "phi3",
)
"""Architectures `write_tiny_model` can write (transformers' `model_type` names)."""

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

_HIDDEN, _LAYERS, _HEADS, _KV_HEADS, _INTERMEDIATE, _POSITIONS = 64, 2, 4, 2, 128, 512


def tiny_config(kind: str, tokenizer: Any) -> Any:
    """The transformers config of a tiny `kind` model whose vocabulary is `tokenizer`'s.

    Sizes are explicit (2 layers, hidden 64, 4 heads, 2 key/value heads where the family has
    grouped-query attention, MLP width 128) rather than each family's defaults, which are
    full-size. Fields that would otherwise point outside an 800-token vocabulary (Phi-3's
    pad id 32000) or change the shapes under test are set too.

    Args:
        kind: One of `KINDS`.
        tokenizer: The tokenizer the model is paired with (vocabulary size, special ids).

    Raises:
        ValueError: `kind` is not one of `KINDS`.
    """
    from transformers import (
        Gemma2Config,
        GPT2Config,
        GPTNeoXConfig,
        LlamaConfig,
        MistralConfig,
        Phi3Config,
        PhiConfig,
        Qwen2Config,
    )

    ids = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    decoder = {
        "hidden_size": _HIDDEN,
        "intermediate_size": _INTERMEDIATE,
        "num_hidden_layers": _LAYERS,
        "num_attention_heads": _HEADS,
        "max_position_embeddings": _POSITIONS,
        **ids,
    }
    if kind == "llama":
        # untied head (Llama-3): the tiny preset's own backbone covers the tied case
        return LlamaConfig(**decoder, num_key_value_heads=_KV_HEADS, tie_word_embeddings=False)
    if kind == "qwen2":
        # q/k/v carry biases in Qwen2, which a Llama-shaped count misses
        return Qwen2Config(**decoder, num_key_value_heads=_KV_HEADS, tie_word_embeddings=False)
    if kind == "mistral":
        return MistralConfig(**decoder, num_key_value_heads=_KV_HEADS, sliding_window=64)
    if kind == "gpt2":
        # Conv1D layers (weight stored as (in, out)), fused c_attn, tied head
        return GPT2Config(
            n_embd=_HIDDEN,
            n_layer=_LAYERS,
            n_head=_HEADS,
            n_inner=_INTERMEDIATE,
            n_positions=_POSITIONS,
            **ids,
        )
    if kind == "gpt_neox":
        # fused query_key_value, biases everywhere, untied embed_out
        return GPTNeoXConfig(**decoder, rotary_pct=0.25, tie_word_embeddings=False)
    if kind == "gemma2":
        # head_dim 32 with hidden 64 and 4 heads: q_proj is 64 -> 128, not 64 -> 64
        return Gemma2Config(
            **decoder,
            num_key_value_heads=_KV_HEADS,
            head_dim=32,
            query_pre_attn_scalar=32,
            sliding_window=64,
            tie_word_embeddings=True,
        )
    if kind == "phi":
        # q/k/v/dense and fc1/fc2 with biases, partial rotary, LM head with a bias
        return PhiConfig(**decoder, partial_rotary_factor=0.5, tie_word_embeddings=False)
    if kind == "phi3":
        # fused qkv_proj and gate_up_proj; no q_proj / v_proj at all
        return Phi3Config(
            **decoder,
            num_key_value_heads=_KV_HEADS,
            original_max_position_embeddings=_POSITIONS,
            sliding_window=None,
            tie_word_embeddings=False,
        )
    raise ValueError(f"kind={kind!r} is unknown; fix: use one of {KINDS}")


def _tiny_backbone_dir() -> Path:
    """The tiny preset's backbone (built into $GRASP_CACHE_DIR on first use, seconds)."""
    from grasp_env.config import ExperimentConfig
    from grasp_env.lm.backbone import ensure_tiny_backbone

    tiny = ExperimentConfig.from_preset("tiny").backbone.tiny
    return ensure_tiny_backbone(tiny, progress=False, log=lambda _: None)


def write_tiny_model(
    kind: str, directory: str | Path, tokenizer_from: str | Path | None = None, seed: int = 0
) -> Path:
    """Save a small random `kind` causal LM with a tokenizer into `directory`.

    The tokenizer files are copied from the tiny preset's backbone (or `tokenizer_from`): the
    pipeline's data encoding and decoding then work exactly as on the tiny preset, and the
    tokenizer has a pad token. Weights are random (seeded), float32, safetensors.

    Args:
        kind: One of `KINDS`.
        directory: Where to save (created if missing).
        tokenizer_from: A directory holding tokenizer.json / tokenizer_config.json; None takes
            the tiny preset's backbone (built into the cache if missing).
        seed: Seed of the random weights.

    Returns:
        `directory` as a Path.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = Path(tokenizer_from) if tokenizer_from is not None else _tiny_backbone_dir()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for name in _TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, out / name)
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    if tokenizer.pad_token_id is None:
        raise ValueError(f"the tokenizer in {source} has no pad token; fix: use one that has")
    config = tiny_config(kind, tokenizer)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out, safe_serialization=True)
    return out
