"""--dry-run: memory arithmetic under the two strategies, counts from the meta-device model."""

from types import SimpleNamespace

import pytest

from grasp_env.config import ExperimentConfig
from grasp_env.lm.backbone import TinyBackboneConfig
from grasp_env.lm.device import Placement
from grasp_env.lm.plan import architecture_of, describe_run, lora_entries


def _weights_gb(processes: int, strategy: str) -> float:
    plan = describe_run(
        ExperimentConfig.from_preset("paper", **{"backbone.strategy": strategy}),
        Placement("cuda", "bfloat16"),
        processes=processes,
    )
    assert plan["strategy"]["kind"] == strategy and plan["strategy"]["processes"] == processes
    return plan["memory_per_device_gb"]["backbone_weights"]


def test_fsdp_divides_the_weights_but_keeps_a_block_and_the_head_whole():
    whole = _weights_gb(8, "ddp")
    assert whole == pytest.approx(8_030_261_248 * 2 / 1e9)  # DDP: every process holds all
    block = whole / 34  # 32 blocks + embeddings + head, roughly
    head = 128_256 * 4096 * 2 / 1e9
    assert _weights_gb(8, "fsdp") == pytest.approx(whole / 8 + block + head, rel=1e-6)
    assert _weights_gb(1, "fsdp") == whole  # one process: nothing to shard


def _plan(preset: str, **values) -> dict:
    cfg = ExperimentConfig.from_preset(preset, **values)
    return describe_run(cfg, Placement("cpu", "float32"))


def test_the_paper_backbone_is_counted_from_its_meta_device_model():
    default = _plan("paper")
    assert default["backbone"]["architecture_from"] == "built-in table"
    assert default["backbone"]["parameters"] == 8_030_261_248  # Llama-3-8B's published count
    assert (default["backbone"]["layers"], default["backbone"]["hidden_size"]) == (32, 4096)
    # r=8 on q_proj (4096 -> 4096) and v_proj (4096 -> 1024, grouped-query) in 32 layers
    assert default["lora"]["entries"] == 32 * 8 * ((4096 + 4096) + (4096 + 1024))
    assert default["lora"]["target_modules"] == ["q_proj", "v_proj"]
    assert default["lora"]["target_modules_from"] == "PEFT default for llama"
    flag = _plan("paper", **{"backbone.target_modules": ("q_proj", "v_proj")})
    assert flag["lora"]["target_modules_from"] == "flag"
    assert flag["lora"]["entries"] == default["lora"]["entries"]


def test_the_tiny_preset_plan_matches_the_built_backbone(tiny_backbone_dir):
    from peft import LoraConfig, get_peft_model

    from grasp_env.lm.backbone import load_backbone

    plan = _plan("tiny")
    assert plan["backbone"]["architecture_from"] == "tiny preset"
    model, _ = load_backbone(tiny_backbone_dir)
    assert plan["backbone"]["parameters"] == sum(p.numel() for p in model.parameters())
    peft_model = get_peft_model(model, LoraConfig(r=8, target_modules=None))
    lora = [p.numel() for n, p in peft_model.named_parameters() if ".lora_" in n]
    assert plan["lora"]["entries"] == sum(lora)


def test_wrong_target_modules_fail_the_dry_run_with_the_model_layers():
    with pytest.raises(ValueError, match="--target-modules") as err:
        _plan("paper", **{"backbone.target_modules": ("c_attn",)})
    assert "['c_attn'] match no module" in str(err.value) and "'q_proj'" in str(err.value)


def test_a_model_without_a_config_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no local config and not in the built-in table"):
        _plan("tiny", **{"backbone.model": str(tmp_path / "nowhere")})
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(ValueError, match="local config could not be read"):
        _plan("tiny", **{"backbone.model": str(broken)})


def test_architecture_of_takes_any_object_naming_the_backbone():
    arch = architecture_of(SimpleNamespace(model="meta-llama/Meta-Llama-3-8B"), None)
    assert arch.model_type == "llama" and not arch.tie_word_embeddings
    assert lora_entries(arch, 1, ("k_proj",)) == 32 * (4096 + 1024)
    assert lora_entries(arch, 1, ("k_proj",)) == lora_entries(arch.model, 1, ("k_proj",))
    tiny = TinyBackboneConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
    old_style = architecture_of(SimpleNamespace(model="tiny", tiny_backbone=tiny), None)
    assert old_style.source == "tiny preset" and old_style.tie_word_embeddings
    assert (old_style.hidden_size, old_style.num_hidden_layers) == (32, 1)
    with pytest.raises(ValueError, match="defines no tiny backbone"):
        architecture_of(SimpleNamespace(model="tiny", tiny=None, name="paper"), None)
