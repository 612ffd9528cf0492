"""Architecture-dependent facts about a causal LM, read from the model itself, never assumed.

Which linear layers get a LoRA adapter, how many parameters a backbone has and how many LoRA
entries (the numbers the controller prunes) an adapter of rank r has all depend on the
architecture: GPT-2 fuses q/k/v into one Conv1D `c_attn` whose weight is stored (in, out),
GPT-NeoX and Phi-3 have no `q_proj` / `v_proj` at all, Qwen2 and Phi put biases on their
projections, Gemma2's head size is not hidden_size / heads. Rather than a table of shapes per
family, these functions read the answer from a model: the real one, or one built from its
config on the meta device (shapes only, no memory), so `--dry-run` and a real run agree for any
architecture transformers can build.

Target modules follow PEFT's own rules: its per-architecture defaults (the mapping PEFT uses
when `target_modules` is None) and its matching (a name selects every module whose qualified
name is that name or ends with "." + name).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "TARGET_MODULES_FLAG",
    "count_parameters",
    "default_target_modules",
    "linear_layer_names",
    "lora_entries",
    "matches_target",
    "meta_model",
    "resolve_target_modules",
]

TARGET_MODULES_FLAG = "--target-modules"
"""The command-line flag that names LoRA target modules (quoted in every fix)."""

_FIX = f"fix: pass {TARGET_MODULES_FLAG} NAME [NAME ...]"


def _is_model(obj: Any) -> bool:
    """Whether `obj` is a model (a torch module) rather than a config."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return isinstance(obj, torch.nn.Module)


def _config_of(model_or_config: Any) -> Any:
    """The transformers config of a model, or the config itself."""
    return model_or_config.config if _is_model(model_or_config) else model_or_config


def _model_type(config: Any) -> str:
    """`config.model_type`, or a ValueError saying the object is not a transformers config."""
    model_type = getattr(config, "model_type", None)
    if not model_type:
        raise ValueError(
            f"{type(config).__name__} has no model_type; fix: pass a transformers model or "
            "its config (AutoConfig.from_pretrained)"
        )
    return str(model_type)


def _linear_kinds() -> tuple[type, ...]:
    """Module classes a LoRA adapter here can wrap: nn.Linear and transformers' Conv1D.

    PEFT also adapts embeddings and convolutions, but their LoRA weights are named
    lora_embedding_A/B or shaped differently, and the controller prunes lora_A / lora_B of
    linear layers only, so those are not offered as targets.
    """
    import torch
    from transformers.pytorch_utils import Conv1D

    return (torch.nn.Linear, Conv1D)


def matches_target(module_name: str, target: str) -> bool:
    """Whether PEFT's `target_modules` entry `target` selects the module named `module_name`.

    PEFT selects a module when its qualified name equals the entry or ends with "." + entry
    (`peft.tuners.tuners_utils.check_target_module_exists`), so "q_proj" selects
    "model.layers.0.self_attn.q_proj" in every layer, and "self_attn.q_proj" works too.
    """
    return module_name == target or module_name.endswith(f".{target}")


def linear_layer_names(model: Any) -> tuple[str, ...]:
    """The distinct leaf names of the model's linear layers, sorted, without lm_head.

    These are the names `--target-modules` accepts (nn.Linear and GPT-2-style Conv1D); listing
    them in an error tells the user what this architecture calls its projections. The LM head
    is left out: it is a linear layer, but adapting it is rarely what is meant.
    """
    kinds = _linear_kinds()
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if name and isinstance(module, kinds)
    }
    names.discard("lm_head")
    return tuple(sorted(names))


def _peft_default_mapping() -> dict[str, Any]:
    """PEFT's model_type -> default LoRA target modules, as the installed PEFT has it.

    Read from `LoraModel.target_module_mapping` (what `get_peft_model` itself uses when
    `target_modules` is None), falling back to `peft.utils`' constant: never copied, so a PEFT
    upgrade that adds an architecture is picked up.
    """
    try:
        from peft.tuners.lora import LoraModel

        mapping = getattr(LoraModel, "target_module_mapping", None)
        if isinstance(mapping, dict):
            return mapping
    except ImportError:  # pragma: no cover - peft layout changed
        pass
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    return TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING


def _layers_hint(model_or_config: Any) -> str:
    """The "; its linear layers are [...]" part of an error, or "" if no model can be built."""
    try:
        model = model_or_config if _is_model(model_or_config) else meta_model(model_or_config)
        names = linear_layer_names(model)
    except Exception:  # noqa: BLE001 - a hint only: the error it decorates is the point
        return ""
    return f"; its linear layers are {list(names)}" if names else ""


def default_target_modules(model_or_config: Any) -> tuple[str, ...]:
    """PEFT's default LoRA target modules for the model's architecture (`config.model_type`).

    The same names `peft.get_peft_model` would pick with `target_modules=None`, read from the
    installed PEFT: q_proj/v_proj for Llama, Qwen2, Mistral and Gemma2, c_attn for GPT-2,
    query_key_value for GPT-NeoX, q_proj/v_proj/fc1/fc2 for Phi.

    Args:
        model_or_config: A transformers model or its config.

    Returns:
        The default target module names.

    Raises:
        ValueError: PEFT has no default for this model type (Phi-3 in PEFT 0.21, for
            example), or only a regular expression over full module names; the message names
            the model type, the model's linear layers and the fix (`--target-modules`).
    """
    config = _config_of(model_or_config)
    model_type = _model_type(config)
    default = _peft_default_mapping().get(model_type)
    if default is None:
        raise ValueError(
            f"PEFT has no default LoRA target modules for model_type={model_type!r}"
            f"{_layers_hint(model_or_config)}; {_FIX}"
        )
    if isinstance(default, str):
        raise ValueError(
            f"PEFT's default LoRA target modules for model_type={model_type!r} are a regular "
            f"expression over full module names ({default!r}), not names"
            f"{_layers_hint(model_or_config)}; {_FIX}"
        )
    return tuple(default)


def resolve_target_modules(
    model_or_config: Any, requested: tuple[str, ...] | None
) -> tuple[str, ...]:
    """The LoRA target modules a run uses, checked against the model before anything trains.

    PEFT stops a run whose target names match nothing with a bare "target modules not found"
    (no list of what the model has); this check fails first, and says what to pass instead.

    Args:
        model_or_config: A transformers model, or its config (a meta-device model is built
            from it to read the module names: no weights are allocated).
        requested: Names from `--target-modules`; None means PEFT's default for the
            architecture (`default_target_modules`), checked against the model when a model
            (not a config) is passed. A single string is one name.

    Returns:
        `requested` as a tuple, or the default.

    Raises:
        ValueError: No default exists (see `default_target_modules`), a requested name selects
            no module of the model, or selects one that is not a linear layer (PEFT matches by
            the end of the module's qualified name). The message names the offending names, the
            model's distinct linear-layer names (without lm_head) and `--target-modules`.
    """
    if requested is None:
        default = default_target_modules(model_or_config)
        if not _is_model(model_or_config):
            return default
        requested = default  # a model at hand: check PEFT's names against it too
    if isinstance(requested, str):
        requested = (requested,)
    requested = tuple(requested)
    model = model_or_config if _is_model(model_or_config) else meta_model(model_or_config)
    model_type = _model_type(_config_of(model))
    linear = linear_layer_names(model)
    if not requested:
        raise ValueError(
            f"no LoRA target modules given; the {model_type} model's linear layers are "
            f"{list(linear)}; {_FIX}"
        )
    kinds = _linear_kinds()
    modules = [(name, module) for name, module in model.named_modules() if name]
    missing, not_linear = [], []
    for target in requested:
        selected = [module for name, module in modules if matches_target(name, target)]
        if not selected:
            missing.append(target)
        elif not all(isinstance(module, kinds) for module in selected):
            not_linear.append(target)
    problems = []
    if missing:
        problems.append(f"{missing} match no module")
    if not_linear:
        problems.append(f"{not_linear} select modules that are not linear layers")
    if problems:
        raise ValueError(
            f"LoRA target modules do not fit this {model_type} model: {'; '.join(problems)} "
            "(PEFT selects the modules whose name ends with a target name); its linear layers "
            f"are {list(linear)}; {_FIX} with names from that list"
        )
    return requested


def meta_model(config: Any, trust_remote_code: bool = False) -> Any:
    """The causal LM `config` describes, built on the meta device: shapes, no weights.

    Counting parameters and LoRA entries from the real module tree (rather than a formula per
    family) is what makes the dry run right for any architecture; on the meta device that
    costs no memory and well under a second even for an 8B model.

    Args:
        config: A transformers config (`AutoConfig.from_pretrained`, `LlamaConfig(...)`).
        trust_remote_code: Let a config whose model class lives in the model's own code build
            it (runs that code). Off unless the user asked for it.

    Raises:
        ValueError: transformers has no causal-LM class for this config.
    """
    import torch
    from transformers import AutoModelForCausalLM

    try:
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    except ValueError as err:
        raise ValueError(
            f"model_type={getattr(config, 'model_type', None)!r} has no causal-LM class in "
            f"this transformers ({str(err).splitlines()[0]}); fix: pass a causal LM "
            "(a decoder with a language-modelling head)"
        ) from None


def count_parameters(model: Any) -> int:
    """Parameters of `model`, each counted once (a tied embedding and LM head are one matrix).

    `nn.Module.parameters()` already yields a shared parameter once; summing a state dict
    instead would count tied weights twice. Works on meta-device models (only shapes are read).
    """
    return sum(p.numel() for p in model.parameters())


def _in_out(module: Any) -> tuple[int, int]:
    """(in_features, out_features) of nn.Linear or Conv1D, from the module's own shapes.

    nn.Linear stores its weight (out, in) and says so in in_features / out_features; GPT-2's
    Conv1D stores it (in, out) (its `nf` is the output width).
    """
    from transformers.pytorch_utils import Conv1D

    if isinstance(module, Conv1D):
        fan_in, fan_out = module.weight.shape
        return int(fan_in), int(fan_out)
    return int(module.in_features), int(module.out_features)


def lora_entries(model: Any, r: int, target_modules: tuple[str, ...]) -> int:
    """Entries of every LoRA A and B matrix of rank `r` on `target_modules`: what is pruned.

    PEFT gives each selected linear layer an A of (r, in) and a B of (out, r), so the total is
    the sum over selected layers of r * (in + out), each read from the layer itself (fused
    q/k/v, grouped-query key/value widths and Gemma2's head size need no special case).

    Args:
        model: A model (real or meta-device) whose modules are matched like PEFT matches them.
        r: LoRA rank.
        target_modules: Target module names (see `resolve_target_modules`).
    """
    if isinstance(target_modules, str):
        target_modules = (target_modules,)
    kinds = _linear_kinds()
    total = 0
    for name, module in model.named_modules():
        if not name or not isinstance(module, kinds):
            continue
        if any(matches_target(name, target) for target in target_modules):
            fan_in, fan_out = _in_out(module)
            total += r * (fan_in + fan_out)
    return total
