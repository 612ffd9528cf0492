"""What a run would load and do, and what it would need, without loading or training anything.

`describe_run` answers `--dry-run`: the backbone and where its architecture comes from, the
datasets and splits, the LoRA entries the controller prunes, and an estimate of the memory
per device at the chosen dtype and strategy. Nothing is downloaded: the architecture is read
from a local directory, the local Hugging Face cache, the tiny preset's own config, or a
built-in table of well-known backbones (public facts), in that order.

The memory estimate is arithmetic, not a measurement: weights at the backbone's dtype (under
FSDP: divided by the number of processes, plus one gathered block and the LM head), LoRA
weights, gradients and AdamW moments in float32, the stash and masks, and activations of one
training row (layers x sequence x hidden x 34 bytes, the usual estimate for a decoder block
without activation checkpointing, divided by the layer count with gradient checkpointing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "KNOWN_ARCHITECTURES",
    "Architecture",
    "architecture_of",
    "describe_run",
    "lora_entries",
    "planned_placement",
]

KNOWN_ARCHITECTURES: dict[str, dict[str, int]] = {
    "meta-llama/Meta-Llama-3-8B-Instruct": {
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
    },
    "meta-llama/Meta-Llama-3-8B": {
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
    },
}
"""Llama-family shapes of backbones a preset names (from their published config.json)."""

_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
_ACTIVATION_BYTES_PER_TOKEN_PER_HIDDEN = 34


@dataclass(frozen=True)
class Architecture:
    """The shapes that decide parameter count and LoRA size (Llama-style decoder)."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    source: str
    """Where the shapes were read: 'local config', 'tiny preset', 'built-in table'."""
    tie_word_embeddings: bool = False
    """One matrix for the input embeddings and the LM head (the tiny backbones tie them)."""

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden_size // self.num_attention_heads

    def module_shape(self, module: str) -> tuple[int, int]:
        """(in_features, out_features) of a Llama linear module."""
        h, kv = self.hidden_size, self.num_key_value_heads * self.head_dim
        shapes = {
            "q_proj": (h, h),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (h, h),
            "gate_proj": (h, self.intermediate_size),
            "up_proj": (h, self.intermediate_size),
            "down_proj": (self.intermediate_size, h),
        }
        if module not in shapes:
            raise ValueError(
                f"target module {module!r} is unknown; fix: use one of {sorted(shapes)}"
            )
        return shapes[module]

    @property
    def parameters(self) -> int:
        """Backbone parameters (embeddings and LM head untied, as in Llama-3)."""
        h = self.hidden_size
        modules = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
        per_layer = sum(i * o for i, o in (self.module_shape(m) for m in modules))
        embeddings = (1 if self.tie_word_embeddings else 2) * self.vocab_size * h
        return self.num_hidden_layers * (per_layer + 2 * h) + embeddings + h


def planned_placement(device: str, dtype: str) -> Any:
    """The placement a run would use: resolved here for 'auto', taken as given otherwise.

    A dry run may describe a machine other than this one (`--device cuda --dtype bfloat16` on
    a laptop), so an explicit device is not checked against this machine's hardware.
    """
    from grasp_env.lm.device import Placement, check_names, resolve

    check_names(device, dtype)
    if device == "auto":
        return resolve(device, dtype)
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    return Placement(device, dtype)


def lora_entries(arch: Architecture, r: int, target_modules: tuple[str, ...]) -> int:
    """Entries of every LoRA A and B tensor: what the controller prunes."""
    per_layer = sum(r * (i + o) for i, o in (arch.module_shape(m) for m in target_modules))
    return arch.num_hidden_layers * per_layer


def architecture_of(preset: Any, model: str | None) -> Architecture:
    """The backbone's shapes, read without downloading anything."""
    from pathlib import Path

    from grasp_env.lm.presets import TINY_MODEL

    name = model or preset.model
    keys = Architecture.__dataclass_fields__.keys() - {"source", "tie_word_embeddings"}
    if name == TINY_MODEL:
        tiny = preset.tiny_backbone
        fields = {k: getattr(tiny, k) for k in keys if hasattr(tiny, k)}
        fields.setdefault("num_key_value_heads", tiny.num_attention_heads)
        return Architecture(**fields, source="tiny preset", tie_word_embeddings=True)
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(Path(name)), local_files_only=True)
    except (OSError, ValueError):
        config = None
    if config is not None:
        fields = {k: getattr(config, k) for k in keys if hasattr(config, k)}
        fields.setdefault("num_key_value_heads", fields.get("num_attention_heads"))
        if len(fields) == len(keys):
            tied = bool(getattr(config, "tie_word_embeddings", False))
            return Architecture(**fields, source="local config", tie_word_embeddings=tied)
    if name in KNOWN_ARCHITECTURES:
        return Architecture(**KNOWN_ARCHITECTURES[name], source="built-in table")
    raise ValueError(
        f"model={name!r}: no local config and not in the built-in table; fix: pass a local "
        "model directory, or fetch the model into the Hugging Face cache first"
    )


def describe_run(
    preset: Any,
    cfg: Any,
    controller: Any,
    placement: Any,
    processes: int = 1,
    strategy: str = "ddp",
    gradient_checkpointing: bool = False,
) -> dict[str, Any]:
    """Everything `--dry-run` prints, as plain data."""
    arch = architecture_of(preset, cfg.model)
    final = cfg.final_lora or preset.final_lora
    source_lora = cfg.source_lora or preset.source_lora
    target_lora = cfg.target_lora or preset.target_lora
    rank = source_lora.r if cfg.merge_form == "reference" else source_lora.r + target_lora.r
    rank = max(rank, target_lora.r)
    entries = lora_entries(arch, rank, tuple(final.target_modules))
    weight_bytes = arch.parameters * _BYTES[placement.dtype]
    if strategy == "fsdp" and processes > 1:
        # each process keeps 1/N of every weight, plus one block gathered while it computes
        # and the LM head, which transformers' FSDP plan keeps gathered (keep_full_weight)
        per_block = weight_bytes // (arch.num_hidden_layers + 2)
        head = arch.vocab_size * arch.hidden_size * _BYTES[placement.dtype]
        weight_bytes = weight_bytes // processes + per_block + head
    lora_bytes = entries * 4 * 4  # weights, gradients, two AdamW moments (float32)
    lora_bytes += entries * 5  # the stash (float32) and the keep-mask (bool)
    layers_held = 1 if gradient_checkpointing else arch.num_hidden_layers
    activation_bytes = (
        layers_held
        * preset.max_length
        * final.batch_size
        * arch.hidden_size
        * _ACTIVATION_BYTES_PER_TOKEN_PER_HIDDEN
    )
    data_source = cfg.target_data or preset.data_source[cfg.task]
    budget = controller.train_steps or final.max_steps
    return {
        "backbone": {
            "model": cfg.model or preset.model,
            "architecture_from": arch.source,
            "parameters": arch.parameters,
            "layers": arch.num_hidden_layers,
            "hidden_size": arch.hidden_size,
        },
        "placement": {"device": placement.device, "dtype": placement.dtype},
        "strategy": {
            "processes": processes,
            "kind": strategy,
            "gradient_checkpointing": gradient_checkpointing,
        },
        "data": {
            "task": cfg.task,
            "source": f"{cfg.source_data or preset.data_source[cfg.task]} ({cfg.source})",
            "target": f"{data_source} ({cfg.target})",
            "source_rows": list(preset.source_sizes[cfg.task]),
            "target_splits": {
                "train": preset.sizes.train,
                "dev": preset.sizes.dev,
                "micro_dev": preset.sizes.micro_dev,
                "test": preset.sizes.test,
            },
        },
        "lora": {
            "merge_form": cfg.merge_form,
            "rank": rank,
            "target_modules": list(final.target_modules),
            "entries": entries,
        },
        "controller": {
            "train_steps": budget,
            "rounds": -(-budget // controller.update_interval),
            "probes": -(-budget // controller.update_interval) * controller.group_size,
            "micro_dev_rows": controller.micro_dev_size,
        },
        "memory_per_device_gb": {
            "backbone_weights": weight_bytes / 1e9,
            "lora_training_state": lora_bytes / 1e9,
            "activations_one_row": activation_bytes / 1e9,
            "total_estimate": (weight_bytes + lora_bytes + activation_bytes) / 1e9,
        },
    }
