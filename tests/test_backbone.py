import json

import pytest

from grasp_env.config import ExperimentConfig
from grasp_env.lm.backbone import (
    BackboneError,
    ensure_tiny_backbone,
    load_backbone,
    tiny_backbone_path,
)
from grasp_env.lm.cache import verify_manifest

TINY = ExperimentConfig.from_preset("tiny").backbone.tiny


def test_tiny_backbone_builds_loads_and_generates(tiny_backbone_dir):
    import torch

    info = json.loads((tiny_backbone_dir / "build_info.json").read_text())
    assert (
        info["heldout_loss_final"] < info["heldout_loss_initial"]
    )  # pretraining learned something
    assert list(tiny_backbone_dir.glob("*.safetensors"))
    assert verify_manifest(tiny_backbone_dir) is None
    model, tok = load_backbone(tiny_backbone_dir)
    assert type(model).__name__ == "LlamaForCausalLM"
    for text in ("Egypt uses the Egyptian Pound.", "تستخدم مصر الجنيه.", "埃及使用埃及镑。"):
        assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    ids = tok("埃及", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] == ids.shape[1] + 3


def test_cache_is_reused_and_keyed_by_config(tiny_backbone_dir):
    cfg = TINY
    built = []
    assert ensure_tiny_backbone(cfg, progress=False, log=built.append) == tiny_backbone_dir
    assert built == []  # no rebuild
    from dataclasses import replace

    assert tiny_backbone_path(replace(cfg, steps=31)) != tiny_backbone_dir


def test_corrupted_cache_entry_is_reported_and_rebuilt(tiny_backbone_dir):
    weights = next(tiny_backbone_dir.glob("*.safetensors"))
    original = weights.read_bytes()
    weights.write_bytes(original[:-10] + b"0123456789")
    assert "does not match" in verify_manifest(tiny_backbone_dir)
    messages = []
    path = ensure_tiny_backbone(TINY, progress=False, log=messages.append)
    assert "corrupted" in messages[0] and "rebuilding" in messages[0]
    assert verify_manifest(path) is None
    # the rebuild is deterministic: same bytes as before the corruption
    assert next(path.glob("*.safetensors")).read_bytes() == original


def test_model_directory_without_safetensors_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(BackboneError, match=r"no \*\.safetensors weights.*pickled"):
        load_backbone(tmp_path)


def test_unloadable_name_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneError, match="could not be loaded"):
        load_backbone("no-such-org/no-such-model")


def test_any_causal_lm_of_llama_architecture_loads_from_a_directory(tmp_path, tiny_backbone_dir):
    """The `paper` preset's path: a Llama model saved by someone else loads the same way."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    LlamaForCausalLM(cfg).save_pretrained(tmp_path, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_backbone_dir).save_pretrained(tmp_path)
    model, tok = load_backbone(tmp_path)
    assert model.config.num_key_value_heads == 1 and tok.pad_token_id is not None
