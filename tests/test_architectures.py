"""LoRA targets, dry-run counts and the pipeline on eight causal-LM architectures.

Each architecture is a tiny random model saved like a downloaded one (tests/helpers/
tiny_models.py). The dry run's counts are compared with the model actually loaded from that
directory with LoRA attached by PEFT; target-module errors must name the model's own layers and
the flag; and the real pipeline (prepare + a pruned final run) must run on each.
"""

from __future__ import annotations

import math

import pytest
from helpers.tiny_models import KINDS, write_tiny_model

from grasp_env.config import AdapterConfig, ExperimentConfig, FinalConfig
from grasp_env.lm.architecture import (
    count_parameters,
    default_target_modules,
    linear_layer_names,
    lora_entries,
    meta_model,
    resolve_target_modules,
)
from grasp_env.lm.backbone import load_backbone
from grasp_env.lm.device import Placement
from grasp_env.lm.pipeline import final_run, prepare
from grasp_env.lm.plan import describe_run

LINEAR_LAYERS = {
    "llama": ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"],
    "qwen2": ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"],
    "mistral": ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"],
    "gpt2": ["c_attn", "c_fc", "c_proj"],
    "gpt_neox": ["dense", "dense_4h_to_h", "dense_h_to_4h", "query_key_value"],
    "gemma2": ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"],
    "phi": ["dense", "fc1", "fc2", "k_proj", "q_proj", "v_proj"],
    "phi3": ["down_proj", "gate_up_proj", "o_proj", "qkv_proj"],
}
"""Distinct linear-layer leaf names (nn.Linear / Conv1D, lm_head left out) of each family."""

NO_PEFT_DEFAULT = {"phi3": ("qkv_proj",)}
"""Families PEFT 0.21 has no default targets for, and what these tests pass instead."""


def _experiment(directory, target_modules, **values) -> ExperimentConfig:
    """The tiny preset on the model in `directory`; target_modules None: PEFT's default."""
    return ExperimentConfig.from_preset(
        "tiny",
        **{"backbone.model": str(directory), "backbone.target_modules": target_modules},
        **values,
    )


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, tiny_backbone_dir):
    """kind -> directory of a saved tiny random model of that architecture."""
    root = tmp_path_factory.mktemp("tiny-models")
    return {kind: write_tiny_model(kind, root / kind, tiny_backbone_dir) for kind in KINDS}


def _config(directory):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(directory), local_files_only=True)


def _peft_lora_entries(directory, targets) -> tuple[int, int, object]:
    """(parameters, LoRA A/B entries, peft model) of the model loaded from `directory`."""
    from peft import LoraConfig, get_peft_model

    model, _ = load_backbone(directory)
    parameters = sum(p.numel() for p in model.parameters())
    config = LoraConfig(
        r=8, lora_alpha=16, target_modules=None if targets is None else list(targets)
    )
    peft_model = get_peft_model(model, config)
    entries = sum(
        p.numel()
        for name, p in peft_model.named_parameters()
        if ".lora_A." in name or ".lora_B." in name
    )
    return parameters, entries, peft_model


@pytest.mark.parametrize("kind", KINDS)
def test_dry_run_counts_equal_the_loaded_model_with_peft_lora(kind, tiny_models):
    directory = tiny_models[kind]
    requested = NO_PEFT_DEFAULT.get(kind)  # None: PEFT's default for the architecture
    plan = describe_run(_experiment(directory, requested), Placement("cpu", "float32"))
    targets = tuple(plan["lora"]["target_modules"])
    assert targets == resolve_target_modules(_config(directory), requested)
    if requested is None:
        assert plan["lora"]["target_modules_from"] == f"PEFT default for {kind}"
    else:
        assert plan["lora"]["target_modules_from"] == "flag"
    assert plan["backbone"]["architecture_from"] == "local config"
    assert (plan["backbone"]["layers"], plan["backbone"]["hidden_size"]) == (2, 64)
    assert plan["lora"]["rank"] == 8

    parameters, entries, peft_model = _peft_lora_entries(directory, targets)
    assert plan["backbone"]["parameters"] == parameters
    assert plan["lora"]["entries"] == entries > 0
    assert set(peft_model.peft_config["default"].target_modules) == set(targets)
    if requested is None:  # what get_peft_model itself picks with target_modules=None
        _, _, by_peft = _peft_lora_entries(directory, None)
        assert set(by_peft.peft_config["default"].target_modules) == set(targets)


@pytest.mark.parametrize("kind", KINDS)
def test_architecture_functions_agree_with_the_real_model(kind, tiny_models):
    model, _ = load_backbone(tiny_models[kind])
    meta = meta_model(model.config)
    assert next(meta.parameters()).device.type == "meta"
    assert count_parameters(meta) == count_parameters(model)
    assert list(linear_layer_names(model)) == LINEAR_LAYERS[kind]
    assert linear_layer_names(meta) == linear_layer_names(model)
    for name in LINEAR_LAYERS[kind]:
        assert lora_entries(meta, 4, (name,)) == lora_entries(model, 4, (name,)) > 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_wrong_target_name_lists_the_model_layers_and_the_flag(kind, tiny_models):
    config = _config(tiny_models[kind])
    for model_or_config in (config, meta_model(config)):
        with pytest.raises(ValueError) as err:
            resolve_target_modules(model_or_config, (LINEAR_LAYERS[kind][0], "not_a_layer"))
        message = str(err.value)
        assert "['not_a_layer']" in message and "--target-modules" in message
        assert str(LINEAR_LAYERS[kind]) in message and "lm_head" not in message


def test_a_name_that_selects_a_non_linear_module_is_refused(tiny_models):
    config = _config(tiny_models["llama"])
    with pytest.raises(ValueError, match=r"\['mlp'\] select modules that are not linear"):
        resolve_target_modules(config, ("q_proj", "mlp"))
    # PEFT matches the end of the qualified name: a dotted suffix is a valid name
    assert resolve_target_modules(config, ("self_attn.q_proj",)) == ("self_attn.q_proj",)
    assert resolve_target_modules(config, "v_proj") == ("v_proj",)
    assert resolve_target_modules(meta_model(config), None) == default_target_modules(config)


def test_no_peft_default_names_the_model_type_its_layers_and_the_flag(tiny_models):
    config = _config(tiny_models["phi3"])
    with pytest.raises(ValueError) as err:
        default_target_modules(config)
    message = str(err.value)
    assert "'phi3'" in message and "--target-modules" in message
    assert str(LINEAR_LAYERS["phi3"]) in message
    with pytest.raises(ValueError, match="'phi3'"):
        resolve_target_modules(config, None)
    with pytest.raises(ValueError, match="--target-modules"):  # the dry run fails the same way
        describe_run(_experiment(tiny_models["phi3"], None), Placement("cpu", "float32"))


END_TO_END = ("llama", "qwen2", "gpt2", "gpt_neox", "gemma2", "phi3")
"""Families the real pipeline runs on here (Mistral is Llama's layout; Phi's is counted above)."""


@pytest.mark.parametrize("kind", END_TO_END)
def test_pipeline_runs_end_to_end(kind, tiny_models):
    directory = tiny_models[kind]
    targets = resolve_target_modules(_config(directory), NO_PEFT_DEFAULT.get(kind))
    short = {"max_steps": 2, "eval_every": 2, "batch_size": 2}
    cfg = _experiment(
        directory,
        targets,
        **{"backbone.device": "cpu", "backbone.dtype": "float32"},
        source_lora=AdapterConfig(**short),
        target_lora=AdapterConfig(**short),
        final=FinalConfig(**short),
    )
    prep = prepare(cfg, progress=False, log=lambda _: None)
    assert prep.target_modules == targets
    run = final_run(prep, 0.3)
    assert math.isfinite(run.dev_loss) and math.isfinite(run.test_loss)
    assert set(run.test) == {"em", "f1"} and len(run.predictions) == len(prep.splits.test)
    assert run.fit.state
    for key, tensor in run.fit.state.items():
        assert any(f".{t}.lora_" in key for t in targets), key
        assert int((tensor == 0).sum()) >= math.floor(0.3 * tensor.numel()), key
