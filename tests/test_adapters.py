import json

import pytest
import torch

from grasp_env.lm.backbone import load_backbone
from grasp_env.lm.cache import cached_adapter
from grasp_env.lm.export import adapter_stats, export_merged, save_adapter
from grasp_env.lm.host import (
    LoraShape,
    attach_lora,
    host_of,
    lora_state,
    lora_state_from_parameters,
)
from grasp_env.lm.merge import merge_lora_states
from grasp_env.lm.pruning import lora_parameters

CFG = LoraShape(r=4, lora_alpha=16, lora_dropout=0.0, target_modules=("q_proj", "v_proj"))


def _shape(r, alpha):
    return LoraShape(r, alpha, 0.0, ("q_proj", "v_proj"))


@pytest.fixture(scope="module")
def backbone(tiny_backbone_dir):
    model, tok = load_backbone(tiny_backbone_dir)
    model.requires_grad_(False)
    return model, tok


def _random_state(base, seed):
    model = attach_lora(base, CFG, seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lora_parameters(model).values():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return lora_state(model)


def _q_proj(model):
    return model.base_model.model.model.layers[0].self_attn.q_proj


def _ab(state, which):
    key = next(k for k in state if "layers.0.self_attn.q_proj" in k and f"lora_{which}" in k)
    return state[key]


def test_reference_merge_computes_sum_of_B_times_sum_of_A_without_scaling(backbone):
    base, _ = backbone
    src, tgt = _random_state(base, 1), _random_state(base, 2)
    merged, rank, alpha = merge_lora_states(src, tgt, "reference", CFG.r, CFG.lora_alpha)
    assert (rank, alpha) == (4, 4.0)
    model = attach_lora(base, _shape(rank, alpha), 0, merged).eval()
    layer = _q_proj(model)
    x = torch.randn(3, layer.in_features)
    expected = x @ ((_ab(src, "B") + _ab(tgt, "B")) @ (_ab(src, "A") + _ab(tgt, "A"))).T
    with torch.no_grad():
        delta = layer(x) - layer.base_layer(x)
    torch.testing.assert_close(delta, expected, rtol=1e-4, atol=1e-5)


def test_sum_merge_computes_scaled_sum_of_deltas_and_matches_peft_multi_adapter(backbone):
    base, tok = backbone
    src, tgt = _random_state(base, 1), _random_state(base, 2)
    merged, rank, alpha = merge_lora_states(src, tgt, "sum", CFG.r, CFG.lora_alpha)
    assert (rank, alpha) == (8, 32)
    model = attach_lora(base, _shape(rank, alpha), 0, merged).eval()
    layer = _q_proj(model)
    x = torch.randn(3, layer.in_features)
    s = CFG.lora_alpha / CFG.r
    expected = s * x @ (_ab(src, "B") @ _ab(src, "A") + _ab(tgt, "B") @ _ab(tgt, "A")).T
    with torch.no_grad():
        delta = layer(x) - layer.base_layer(x)
    torch.testing.assert_close(delta, expected, rtol=1e-4, atol=1e-5)

    # PEFT's own multi-adapter forward (both adapters active) gives the same logits.
    from peft import set_peft_model_state_dict

    multi = attach_lora(base, CFG, 0, src)
    multi.add_adapter("tgt", multi.peft_config["default"])
    set_peft_model_state_dict(multi, tgt, adapter_name="tgt")
    multi.base_model.set_adapter(["default", "tgt"])
    multi.eval()
    ids = tok("埃及使用埃及镑。", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, multi(ids).logits, rtol=1e-4, atol=1e-4)


def test_merge_rejects_unknown_form_and_mismatched_modules(backbone):
    base, _ = backbone
    src = _random_state(base, 1)
    with pytest.raises(ValueError, match="form='ties'"):
        merge_lora_states(src, src, "ties", 4, 16)
    with pytest.raises(ValueError, match="different modules"):
        merge_lora_states(src, dict(list(src.items())[:2]), "reference", 4, 16)


def test_lora_state_from_parameters_equals_peft_state_dict(backbone):
    """The sharded-backbone path of lora_state gives PEFT's keys and values exactly."""
    base, _ = backbone
    attach_lora(base, CFG, 0, _random_state(base, 5), name="other")
    model = attach_lora(base, CFG, 0, _random_state(base, 6), name="mine")
    peft_state, own = lora_state(model), lora_state_from_parameters(model)
    assert sorted(own) == sorted(peft_state) and len(own) > 0
    for key, value in peft_state.items():
        assert torch.equal(own[key], value), key


def test_peft_save_load_round_trip(backbone, tiny_backbone_dir, tmp_path):
    from peft import AutoPeftModelForCausalLM, PeftModel

    base, tok = backbone
    model = attach_lora(base, CFG, 0, _random_state(base, 4), name="saved").eval()
    save_adapter(model, tmp_path, base_model=str(tiny_backbone_dir))  # at the root, any name
    fresh, _ = load_backbone(tiny_backbone_dir)
    loaded = PeftModel.from_pretrained(fresh, tmp_path).eval()
    ids = tok("Egypt uses the Egyptian Pound.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, loaded(ids).logits)
    # the adapter names its backbone: PEFT's auto class loads both from the directory alone
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_backbone_dir)
    auto = AutoPeftModelForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, auto(ids).logits)


def test_adapter_cache_reuses_and_rebuilds_corrupted_entries(backbone, isolated_cache):
    base, _ = backbone
    calls = []

    def train():
        calls.append(1)
        return attach_lora(base, CFG, 0, _random_state(base, 6)), {"best_dev_loss": 1.0}

    key = {"name": "unit", "x": 1}
    state1, info = cached_adapter(key, train, log=lambda _: None)
    state2, _ = cached_adapter(key, train, log=lambda _: None)
    assert len(calls) == 1 and info["best_dev_loss"] == 1.0
    assert all(torch.equal(state1[k], state2[k]) for k in state1)
    entry = next((isolated_cache / "adapters").glob("unit-*"))
    built = json.loads((entry / "train_info.json").read_text())["built_with"]
    assert built["torch_threads"] == torch.get_num_threads() and built["processes"] == 1
    assert built["torch"].startswith(torch.__version__.split("+")[0]) and built["transformers"]
    (entry / "adapter_model.safetensors").write_bytes(b"broken")
    messages = []
    cached_adapter(key, train, log=messages.append)
    assert len(calls) == 2 and "corrupted" in messages[0]
    # a partial entry (killed before its manifest was written) is rebuilt too
    (entry / "MANIFEST.json").unlink()
    cached_adapter(key, train, log=messages.append)
    assert len(calls) == 3 and any("MANIFEST.json is missing" in m for m in messages)
    cached_adapter(key, train, log=messages.append)
    assert len(calls) == 3  # and the rebuilt entry is used again
    # a manifest of the wrong JSON type, or one that vouches for nothing, is no manifest
    for text, problem in (("[1, 2]", "not an object"), ("{}", "lists no files")):
        (entry / "MANIFEST.json").write_text(text)
        cached_adapter(key, train, log=messages.append)
        assert any(problem in m for m in messages), messages
    assert len(calls) == 5
    # a file the manifest leaves out (an emptied or edited manifest) is caught too
    manifest = json.loads((entry / "MANIFEST.json").read_text())
    manifest.pop("adapter_model.safetensors")
    (entry / "MANIFEST.json").write_text(json.dumps(manifest))
    (entry / "adapter_model.safetensors").write_bytes(b"truncated")
    cached_adapter(key, train, log=messages.append)
    assert len(calls) == 6 and "not in MANIFEST.json" in messages[-1]


def test_one_backbone_in_memory_for_the_whole_pipeline(tiny_backbone_dir):
    # prepare (source + target LoRA, merge), a controller process, a final run: every adapter
    # lives on one backbone; no LlamaForCausalLM copy is made
    import gc

    from transformers import LlamaForCausalLM

    from grasp_env.config import ExperimentConfig
    from grasp_env.lm.pipeline import final_run, prepare
    from grasp_env.process import LoraProcess

    gc.collect()
    before = sum(type(o) is LlamaForCausalLM for o in gc.get_objects())
    cfg = ExperimentConfig.from_preset("tiny", seed=3)
    prep = prepare(cfg, progress=False, log=lambda _: None)
    backbone_numel = sum(p.numel() for n, p in prep.base.named_parameters() if "lora_" not in n)
    process = LoraProcess(prep)
    process.reset(seed=0)
    process.train(2)
    run = final_run(prep, 0.3, keep_model=True)
    gc.collect()
    models = [o for o in gc.get_objects() if type(o) is LlamaForCausalLM]
    assert len(models) - before == 1
    host = host_of(prep.base)
    assert run.model is host.model and process.model is host.model
    assert set(host.names()) == {process.name, "default"}  # training adapters were dropped
    held = {p.data_ptr(): p.numel() for n, p in host.model.named_parameters() if "lora_" not in n}
    assert sum(held.values()) == backbone_numel
    process.close()
    assert host.names() == ["default"]


def test_merging_adapters_of_different_rank_and_alpha(backbone):
    base, _ = backbone
    small = _shape(2, 2)  # scaling 1; the source's is 4
    src = _random_state(base, 11)
    model = attach_lora(base, small, 12, name="small")
    g = torch.Generator().manual_seed(12)
    with torch.no_grad():
        for p in lora_parameters(model).values():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    tgt = lora_state(model)
    x = torch.randn(3, _q_proj(model).in_features)
    s_src, s_tgt = CFG.lora_alpha / CFG.r, small.lora_alpha / small.r
    # sum: exact scaled sum of both deltas
    merged, rank, alpha = merge_lora_states(src, tgt, "sum", CFG.r, CFG.lora_alpha, 2, 2)
    assert (rank, alpha) == (6, 24.0)
    layer = _q_proj(attach_lora(base, _shape(rank, alpha), 0, merged).eval())
    expected = x @ (s_src * _ab(src, "B") @ _ab(src, "A") + s_tgt * _ab(tgt, "B") @ _ab(tgt, "A")).T
    with torch.no_grad():
        torch.testing.assert_close(layer(x) - layer.base_layer(x), expected, rtol=1e-4, atol=1e-5)
    # reference: the smaller adapter zero-padded, unscaled
    merged, rank, alpha = merge_lora_states(src, tgt, "reference", CFG.r, CFG.lora_alpha, 2, 2)
    assert (rank, alpha) == (4, 4.0)
    layer = _q_proj(attach_lora(base, _shape(rank, alpha), 0, merged).eval())
    b_t, a_t = torch.zeros_like(_ab(src, "B")), torch.zeros_like(_ab(src, "A"))
    b_t[:, :2], a_t[:2] = _ab(tgt, "B"), _ab(tgt, "A")
    expected = x @ ((_ab(src, "B") + b_t) @ (_ab(src, "A") + a_t)).T
    with torch.no_grad():
        torch.testing.assert_close(layer(x) - layer.base_layer(x), expected, rtol=1e-4, atol=1e-5)


def test_exported_merged_model_gives_the_adapter_on_backbone_logits(backbone, tmp_path):
    from transformers import AutoModelForCausalLM

    base, tok = backbone
    model = attach_lora(base, CFG, 0, _random_state(base, 13), name="export").eval()
    params = lora_parameters(model)
    with torch.no_grad():  # a pruned adapter: half of every tensor at zero
        for p in params.values():
            p.view(-1)[: p.numel() // 2] = 0
    weight_before = _q_proj(model).base_layer.weight.detach().clone()
    export_merged(model, tmp_path / "merged", tok)
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    ids = tok("Egypt uses the Egyptian Pound.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(exported(ids).logits, model(ids).logits, rtol=1e-4, atol=1e-4)
    # the live model still carries its adapter (nothing was merged in place)
    from peft.tuners.lora import LoraLayer

    assert isinstance(_q_proj(model), LoraLayer) and "export" in host_of(base).names()
    assert torch.equal(_q_proj(model).base_layer.weight, weight_before)
    save_adapter(model, tmp_path / "adapter")
    stats = adapter_stats(model, tmp_path / "adapter")
    assert stats["entries"] == sum(p.numel() for p in params.values())
    assert stats["nonzero"] <= stats["entries"] // 2 + len(params)
    assert stats["bytes_on_disk"] > 4 * stats["entries"] and stats["zeros_stored_densely"]
