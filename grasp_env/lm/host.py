"""One backbone in memory, any number of named LoRA adapters on it (PEFT's adapter API).

The source, target, merged and final adapters, every controller process and its candidate
adapters are adapters of one `PeftModel` wrapped around the single backbone (`AdapterHost`);
`lora_state` reads the active adapter's weights in PEFT's saved format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grasp_env.lm import dist
from grasp_env.lm.pruning import lora_parameters
from grasp_env.seeding import seed_everything

__all__ = [
    "AdapterHost",
    "LoraShape",
    "attach_lora",
    "canonical_name",
    "host_of",
    "lora_state",
    "lora_state_from_parameters",
    "state_from_parameters",
]


@dataclass(frozen=True)
class LoraShape:
    """What PEFT needs to build a LoRA adapter (the recipe's shape, the resolved targets)."""

    r: int
    lora_alpha: float
    lora_dropout: float
    target_modules: tuple[str, ...]

    def peft_config(self) -> Any:
        """The PEFT LoraConfig of a causal-LM adapter of this shape."""
        from peft import LoraConfig

        return LoraConfig(
            r=self.r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=list(self.target_modules),
            bias="none",
            task_type="CAUSAL_LM",
        )


class AdapterHost:
    """One backbone in memory, any number of named LoRA adapters on it (PEFT's adapter API).

    The source, target, merged and final adapters, and every controller process, are adapters
    of one `PeftModel` wrapped around the single backbone: `fresh` adds (or re-creates) one,
    `activate` switches to it, `drop` deletes it. No backbone is ever copied (a copy of
    Llama-3-8B is 16-32 GB). One model, one active adapter at a time: whoever computes activates
    its adapter first (`LoraProcess` does before every step and probe).
    """

    def __init__(self, base: Any) -> None:
        """Host adapters on `base` (wrapped by PEFT at the first `fresh`)."""
        self.base = base
        self.model: Any = None

    def names(self) -> list[str]:
        """Adapters present."""
        return [] if self.model is None else list(self.model.peft_config)

    def unique(self, prefix: str) -> str:
        """An adapter name starting with `prefix` that is not in use."""
        names, n, name = set(self.names()), 1, prefix
        while name in names:
            name, n = f"{prefix}_{n}", n + 1
        return name

    def fresh(
        self, name: str, shape: LoraShape, seed: int, state: dict[str, Any] | None = None
    ) -> Any:
        """A newly initialised adapter `name`, made active; returns the shared model.

        An adapter of that name is replaced; `state` (keys as `lora_state` writes them) is
        loaded when given. Adapter names must be valid module keys ('training' is not).
        """
        from peft import get_peft_model, set_peft_model_state_dict

        seed_everything(seed)
        config = shape.peft_config()
        if self.model is None:
            self.model = get_peft_model(self.base, config, adapter_name=name)
        else:
            if name in self.model.peft_config:
                self.drop(name)
            self.model.add_adapter(name, config)
        self.model.set_adapter(name)  # active and trainable (a new adapter is neither)
        if state is not None:
            result = set_peft_model_state_dict(self.model, state, adapter_name=name)
            missing = [k for k in getattr(result, "missing_keys", []) if f".{name}." in k]
            if missing:
                raise ValueError(
                    f"adapter state does not fit the model: missing {missing[:3]}; fix: load a "
                    "state saved from an adapter of the same rank and target modules"
                )
        return self.model

    def activate(self, name: str) -> Any:
        """Make `name` the one active (and trainable) adapter; returns the shared model."""
        if self.model.active_adapter != name:
            self.model.set_adapter(name)
        return self.model

    def drop(self, name: str) -> None:
        """Delete adapter `name` (its memory is freed)."""
        if name not in self.names():
            return
        if self.model.active_adapter == name:
            others = [n for n in self.names() if n != name]
            if others:
                self.model.set_adapter(others[0])
        self.model.delete_adapter(name)


def host_of(base: Any) -> AdapterHost:
    """The adapter host of a backbone (made at the first call; one per backbone object)."""
    host = base.__dict__.get("_grasp_adapter_host")
    if host is None:
        host = AdapterHost(base)
        base.__dict__["_grasp_adapter_host"] = host
    return host


def attach_lora(
    base: Any,
    shape: LoraShape,
    seed: int,
    state: dict[str, Any] | None = None,
    name: str = "default",
) -> Any:
    """A fresh LoRA adapter `name` of `shape` on `base` (optionally loaded with `state`), active.

    The backbone is not copied: every adapter lives on the one model of `host_of(base)`.
    Backbone weights are frozen by PEFT; only the active adapter's lora_A / lora_B train.
    """
    return host_of(base).fresh(name, shape, seed, state)


def lora_state(model: Any) -> dict[str, Any]:
    """A detached CPU copy of the active adapter's LoRA weights, keyed like PEFT's saved state.

    On a sharded backbone (`--strategy fsdp`) the state is read from the adapter's own
    parameters (whole on every process): PEFT's `get_peft_model_state_dict` would gather the
    entire backbone's state dict, a collective the main process cannot run alone and an
    all-gather of every weight (16 GB for Llama-3-8B) to save a few MB.
    """
    if dist.is_sharded(model):
        return lora_state_from_parameters(model)
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(model, adapter_name=model.active_adapter)
    return {k: v.detach().clone().cpu() for k, v in state.items()}


def lora_state_from_parameters(model: Any) -> dict[str, Any]:
    """`lora_state` built from the active adapter's lora_A / lora_B parameters (no state dict)."""
    return state_from_parameters(lora_parameters(model))


def state_from_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """A detached CPU copy of LoRA parameters (`lora_parameters`), keyed like PEFT's saved state.

    The keys lose the adapter's name (`...lora_A.<adapter>.weight` -> `...lora_A.weight`), as
    `get_peft_model_state_dict` writes them, so the state loads into an adapter of any name.
    """
    return {canonical_name(name): p.detach().clone().cpu() for name, p in params.items()}


def canonical_name(name: str) -> str:
    """A LoRA parameter's name without its adapter (`lora_A.<adapter>.weight` -> `lora_A.weight`).

    Checkpoints, start states and stashes are keyed this way, so they outlive adapter names.
    """
    stem, _adapter, leaf = name.rsplit(".", 2)
    return f"{stem}.{leaf}"
