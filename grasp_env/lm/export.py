"""What leaves a run: the adapter in PEFT's format, its statistics, the merged backbone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grasp_env.atomic import atomic_dir
from grasp_env.lm import dist
from grasp_env.lm.host import lora_state

__all__ = ["adapter_stats", "export_merged", "save_adapter", "write_adapter_files"]


def save_adapter(model: Any, directory: str | Path, base_model: str | None = None) -> None:
    """Write the active adapter in PEFT's format at the root of `directory`, atomically.

    `adapter_model.safetensors` + `adapter_config.json`, loadable with
    `PeftModel.from_pretrained(backbone, directory)` whatever the adapter's name on the host
    (PEFT's own `save_pretrained` puts adapters not named 'default' in a subfolder). The two
    files are written into a temporary sibling and swapped in together (`atomic_dir`): a
    kill or a full disk never leaves new weights beside an old config, or half a file.
    """
    with atomic_dir(directory) as tmp:
        write_adapter_files(model, tmp, base_model)


def write_adapter_files(model: Any, directory: Path, base_model: str | None = None) -> None:
    """The two files of `save_adapter`, written straight into an existing `directory`.

    `base_model` (a hub id or the backbone's directory) goes into adapter_config.json's
    `base_model_name_or_path`, so PEFT's `AutoPeftModelForCausalLM.from_pretrained(directory)`
    finds the backbone by itself.
    """
    import copy

    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in lora_state(model).items()}
    save_file(state, directory / "adapter_model.safetensors", metadata={"format": "pt"})
    config = copy.copy(model.peft_config[model.active_adapter])
    if base_model is not None:
        config.base_model_name_or_path = str(base_model)
    config.save_pretrained(str(directory))


def adapter_stats(model: Any, directory: str | Path) -> dict[str, Any]:
    """What the saved pruned adapter holds: entries, non-zero entries, its size on disk.

    PEFT and safetensors store tensors densely: a pruned entry is a stored zero, so the file
    is as large as the unpruned adapter's (the pruning's value is in the model, not the bytes).
    """
    state = lora_state(model)
    entries = sum(v.numel() for v in state.values())
    nonzero = sum(int((v != 0).sum()) for v in state.values())
    size = sum(p.stat().st_size for p in Path(directory).iterdir() if p.is_file())
    return {
        "entries": entries,
        "nonzero": nonzero,
        "sparsity": 1.0 - nonzero / max(entries, 1),
        "bytes_on_disk": size,
        "zeros_stored_densely": True,
    }


def export_merged(model: Any, directory: str | Path, tokenizer: Any = None) -> None:
    """Save the backbone with the active adapter merged into its weights (safetensors).

    W' = W + delta_W for every LoRA module (PEFT's `get_delta_weight`, scaling included), in
    the backbone's dtype. The live model is not touched (no `merge_and_unload`): the merged
    weights are new tensors only for the adapted modules, the rest of the state dict is the
    backbone's own. The result loads with `AutoModelForCausalLM.from_pretrained(directory)`.

    Under `--strategy fsdp` every process must call it: the sharded weights are gathered on
    the main process's CPU (`dist.full_state_dict`), which alone merges and writes. The files
    go to a temporary sibling swapped in whole (`atomic_dir`): a kill mid-export (gigabytes)
    leaves the previous export or none, never one that loads with half its shards.
    """
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    adapter = model.active_adapter
    layers = {name: m for name, m in base.named_modules() if isinstance(m, LoraLayer)}
    whole = dist.full_state_dict(base)
    if not dist.is_main():
        return
    state = {}
    for key, value in whole.items():
        if ".lora_" in key:
            continue
        if ".base_layer." in key:
            module, _, leaf = key.rpartition(".base_layer.")
            if leaf == "weight" and module in layers:
                delta = layers[module].get_delta_weight(adapter).detach().to(value.device)
                value = (value.float() + delta.float()).to(value.dtype)
            key = f"{module}.{leaf}"
        state[key] = value
    with atomic_dir(directory) as tmp:  # a kill never leaves a half-exported model
        _write_merged(base, state, tmp, tokenizer)


def _write_merged(base: Any, state: dict[str, Any], directory: Path, tokenizer: Any) -> None:
    """`export_merged`'s files (weights, config, tokenizer) into an existing `directory`."""
    if dist.is_sharded(base):
        # save_pretrained of a sharded model gathers (and writes) the model's own unmerged
        # weights, so the gathered, merged state is written with huggingface_hub's writer
        # (safetensors files of at most 5 GB and their index, as save_pretrained writes them).
        from huggingface_hub import save_torch_state_dict

        if getattr(base.config, "tie_word_embeddings", False):
            state.pop("lm_head.weight", None)  # tied again when the model loads
        save_torch_state_dict(state, str(directory), max_shard_size="5GB")
        base.config.save_pretrained(str(directory))
        if getattr(base, "generation_config", None) is not None:
            base.generation_config.save_pretrained(str(directory))
    else:
        base.save_pretrained(str(directory), state_dict=state, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(directory))
