"""What a run would load and do, and what it would need, without loading or training anything.

`describe_run` answers `--dry-run`: the backbone and where its architecture comes from, the
datasets and splits, the LoRA target modules and entries the controller prunes, and an estimate
of the memory per device at the chosen dtype and strategy. Nothing is downloaded: the backbone's
config is read from a local directory, the local Hugging Face cache, the tiny preset's own
config, or a built-in table of well-known backbones (public facts), in that order.

Parameters and LoRA entries are not computed from a formula for one family: the model is built
from its config on the meta device (shapes only, no memory; `grasp_env.lm.architecture`) and
counted from its own modules, so fused projections (GPT-2, GPT-NeoX, Phi-3), biases (Qwen2,
Phi) and head sizes that are not hidden / heads (Gemma2) come out as the real model has them.

The memory estimate is arithmetic, not a measurement: weights at the backbone's dtype (under
FSDP: divided by the number of processes, plus one gathered block and the LM head), LoRA
weights, gradients and AdamW moments in float32, the stash and masks, and activations of one
training row (layers x sequence x hidden x 34 bytes, the usual estimate for a decoder block
without activation checkpointing, divided by the layer count with gradient checkpointing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grasp_env.lm import architecture

__all__ = [
    "KNOWN_ARCHITECTURES",
    "Architecture",
    "architecture_of",
    "describe_run",
    "lora_entries",
    "planned_placement",
    "tiny_backbone_config",
]

KNOWN_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "meta-llama/Meta-Llama-3-8B-Instruct": {
        "model_type": "llama",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
    },
    "meta-llama/Meta-Llama-3-8B": {
        "model_type": "llama",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
    },
}
"""Config fields of backbones a preset names (from their published config.json): `model_type`
picks the transformers config class (llama when absent), the other fields are passed to it."""

_TINY_MODEL = "tiny"
"""The model name meaning "the project-built tiny Llama" (`grasp_env.lm.presets.TINY_MODEL`;
spelled out here so that planning does not import the presets and their training code)."""

_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
_ACTIVATION_BYTES_PER_TOKEN_PER_HIDDEN = 34


@dataclass(frozen=True)
class Architecture:
    """A backbone's transformers config and the model it describes, built on the meta device.

    Every count is read from `model` (shapes only, no weights), so it holds for any
    architecture transformers can build.
    """

    config: Any
    """The transformers config (`AutoConfig`, `LlamaConfig(...)`, ...)."""
    model: Any
    """The causal LM built from `config` on the meta device."""
    source: str
    """Where the config was read: 'local config', 'tiny preset', 'built-in table'."""

    @property
    def model_type(self) -> str:
        """The architecture name transformers uses (`config.model_type`: llama, gpt2, ...)."""
        return str(self.config.model_type)

    @property
    def _text(self) -> Any:
        """The language model's config (the config itself for a plain causal LM)."""
        return self.config.get_text_config()

    @property
    def hidden_size(self) -> int:
        """Width of the residual stream (GPT-2's n_embd through transformers' attribute map)."""
        return int(self._text.hidden_size)

    @property
    def num_hidden_layers(self) -> int:
        """Transformer blocks (GPT-2's n_layer through transformers' attribute map)."""
        return int(self._text.num_hidden_layers)

    @property
    def vocab_size(self) -> int:
        """Rows of the embedding (and of the LM head)."""
        return int(self._text.vocab_size)

    @property
    def tie_word_embeddings(self) -> bool:
        """One matrix for the input embeddings and the LM head (counted once)."""
        return bool(getattr(self._text, "tie_word_embeddings", False))

    @property
    def parameters(self) -> int:
        """Backbone parameters, tied matrices counted once, as the built model has them."""
        return architecture.count_parameters(self.model)


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


def lora_entries(arch: Architecture | Any, r: int, target_modules: tuple[str, ...]) -> int:
    """Entries of every LoRA A and B tensor: what the controller prunes.

    Read from the modules of `arch`'s meta-device model (or of any model passed instead);
    see `grasp_env.lm.architecture.lora_entries`.
    """
    model = arch.model if isinstance(arch, Architecture) else arch
    return architecture.lora_entries(model, r, tuple(target_modules))


def tiny_backbone_config(tiny: Any) -> Any:
    """The LlamaConfig the tiny preset's backbone is built with, from its TinyBackboneConfig.

    The same fields `grasp_env.lm.backbone.build_tiny_backbone` passes (tied embeddings, no
    grouped-query attention); the vocabulary is the BPE trainer's target size, which the
    trained tokenizer reaches on the embedded corpus. Special-token ids do not change a count.
    """
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=tiny.vocab_size,
        hidden_size=tiny.hidden_size,
        intermediate_size=tiny.intermediate_size,
        num_hidden_layers=tiny.num_hidden_layers,
        num_attention_heads=tiny.num_attention_heads,
        num_key_value_heads=tiny.num_attention_heads,
        max_position_embeddings=tiny.max_position_embeddings,
        tie_word_embeddings=True,
    )


def _table_config(values: dict[str, Any]) -> Any:
    """A transformers config from a `KNOWN_ARCHITECTURES` entry."""
    from transformers import AutoConfig

    fields = dict(values)
    return AutoConfig.for_model(fields.pop("model_type", "llama"), **fields)


def _local_config(name: str, trust_remote_code: bool) -> Any:
    """The config of a local directory or of a model in the local HF cache; None if absent.

    A config that is there but cannot be read (unknown model type, remote code not allowed)
    is an error, not a reason to fall back to the table: the table would describe another
    model than the one the run loads.
    """
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(
            name, local_files_only=True, trust_remote_code=trust_remote_code
        )
    except OSError:
        return None
    except ValueError as err:
        raise ValueError(
            f"model={name!r}: its local config could not be read ({str(err).splitlines()[0]}); "
            "fix: check the directory's config.json, or pass --trust-remote-code for a model "
            "that ships its own code"
        ) from None


def architecture_of(
    preset: Any, model: str | None, trust_remote_code: bool = False
) -> Architecture:
    """The backbone's config and meta-device model, read without downloading anything.

    Args:
        preset: Where the backbone is named: `grasp_env.config.BackboneConfig` (its `model`
            and `tiny`), or any object with a `model` and a `tiny` (or `tiny_backbone`)
            TinyBackboneConfig.
        model: Overrides `preset.model` (a local directory, a hub id or 'tiny').
        trust_remote_code: Let a config / model class from the model's own code load.

    Raises:
        ValueError: no local config and not in the built-in table, or a config that cannot be
            read or has no causal-LM class.
    """
    name = model or preset.model
    if name == _TINY_MODEL:
        tiny = getattr(preset, "tiny", None) or getattr(preset, "tiny_backbone", None)
        if tiny is None:
            raise ValueError(
                f"model='tiny' but preset {getattr(preset, 'name', '?')!r} defines no tiny "
                "backbone; fix: use --preset tiny or --preset default, or pass a model id or path"
            )
        config, source = tiny_backbone_config(tiny), "tiny preset"
    else:
        config, source = _local_config(str(name), trust_remote_code), "local config"
        if config is None:
            if name not in KNOWN_ARCHITECTURES:
                raise ValueError(
                    f"model={name!r}: no local config and not in the built-in table; fix: "
                    "pass a local model directory, or fetch the model into the Hugging Face "
                    "cache first"
                )
            config, source = _table_config(KNOWN_ARCHITECTURES[name]), "built-in table"
    meta = architecture.meta_model(config, trust_remote_code=trust_remote_code)
    return Architecture(config, meta, source)


def describe_run(cfg: Any, placement: Any, processes: int = 1) -> dict[str, Any]:
    """Everything `--dry-run` prints, as plain data.

    The LoRA target modules are `--target-modules` when given ("flag"), else PEFT's default
    for the backbone's architecture; either way they are checked against the backbone's
    modules, so a name the model lacks fails here, listing the model's linear layers, rather
    than in PEFT minutes into a run.

    Args:
        cfg: The experiment (`grasp_env.config.ExperimentConfig`): backbone, data, adapters,
            merge, final run and controller settings.
        placement: Device and dtype the run would use (`planned_placement`).
        processes: Launched processes (WORLD_SIZE); with `backbone.strategy` 'fsdp' and more
            than one, the weights are divided among them.

    Raises:
        ValueError: the backbone's config cannot be found or read, or the target modules do
            not fit it (the message names the fix: `--target-modules`).
    """
    bb, data, final = cfg.backbone, cfg.data, cfg.final
    arch = architecture_of(bb, None, bool(bb.trust_remote_code))
    source_lora, target_lora = cfg.source_lora, cfg.target_lora
    merge_form = cfg.merge.form
    rank = source_lora.r if merge_form == "reference" else source_lora.r + target_lora.r
    rank = max(rank, target_lora.r)
    requested = bb.target_modules  # None: PEFT's default for the architecture
    targets = architecture.resolve_target_modules(
        arch.model, None if requested is None else tuple(requested)
    )
    targets_from = "flag" if requested is not None else f"PEFT default for {arch.model_type}"
    entries = lora_entries(arch, rank, targets)
    strategy, gradient_checkpointing = bb.strategy, bool(bb.gradient_checkpointing)
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
        * data.max_length
        * final.batch_size
        * arch.hidden_size
        * _ACTIVATION_BYTES_PER_TOKEN_PER_HIDDEN
    )
    budget = cfg.controller.train_steps or final.max_steps
    rounds = -(-budget // cfg.controller.update_interval)
    return {
        "backbone": {
            "model": bb.model,
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
            "task": data.task,
            "source": f"{data.source_data} ({data.source})",
            "target": f"{data.target_data} ({data.target})",
            "source_rows": [data.source_train_rows, data.source_dev_rows],
            "target_splits": {
                "train": data.train_rows,
                "dev": data.dev_rows,
                "micro_dev": data.micro_dev_rows,
                "test": data.test_rows,
            },
        },
        "lora": {
            "merge_form": merge_form,
            "rank": rank,
            "target_modules": list(targets),
            "target_modules_from": targets_from,
            "entries": entries,
        },
        "controller": {
            "train_steps": budget,
            "rounds": rounds,
            "probes": rounds * cfg.controller.group_size,
            "micro_dev_rows": data.micro_dev_rows,
        },
        "memory_per_device_gb": {
            "backbone_weights": weight_bytes / 1e9,
            "lora_training_state": lora_bytes / 1e9,
            "activations_one_row": activation_bytes / 1e9,
            "total_estimate": (weight_bytes + lora_bytes + activation_bytes) / 1e9,
        },
    }
