"""Device and dtype resolution (GPU-free: CUDA and MPS availability are faked)."""

import pytest
import torch

from grasp_env.lm.device import Placement, check_names, resolve


def _fake(monkeypatch, cuda=False, bf16=False, count=1, mps=False):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count if cuda else 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    _fake(monkeypatch, cuda=True, bf16=True)
    assert resolve() == Placement("cuda", "bfloat16")
    _fake(monkeypatch, cuda=True, bf16=False)
    assert resolve() == Placement("cuda", "float32")
    _fake(monkeypatch, mps=True)
    assert resolve() == Placement("mps", "float32")
    _fake(monkeypatch)
    assert resolve() == Placement("cpu", "float32")
    assert resolve("cpu", "bfloat16") == Placement("cpu", "bfloat16")


def test_a_device_the_machine_lacks_is_an_error_not_a_fallback(monkeypatch):
    _fake(monkeypatch)
    with pytest.raises(ValueError, match="device='cuda' but this machine has no CUDA"):
        resolve("cuda")
    with pytest.raises(ValueError, match="device='mps' but MPS is not available"):
        resolve("mps")
    _fake(monkeypatch, cuda=True, count=2)
    assert resolve("cuda:1", "float32") == Placement("cuda:1", "float32")
    with pytest.raises(ValueError, match="only 2 CUDA device"):
        resolve("cuda:2")
    with pytest.raises(ValueError, match="does not support it"):
        resolve("cuda", "bfloat16")


def test_unknown_names_fail_before_any_work():
    with pytest.raises(ValueError, match="device='tpu' is unknown"):
        check_names("tpu", "auto")
    with pytest.raises(ValueError, match="dtype='fp8' is unknown"):
        check_names("auto", "fp8")
    from grasp_env.config import BackboneConfig

    with pytest.raises(ValueError, match="dtype='half' is unknown"):
        BackboneConfig(dtype="half")


def test_prepare_places_the_backbone_once_and_lora_stays_float32(tiny_backbone_dir):
    from grasp_env.config import ExperimentConfig
    from grasp_env.lm.batches import collate, model_device
    from grasp_env.lm.pipeline import prepare, start_model

    cfg = ExperimentConfig.from_preset(
        "tiny", **{"backbone.device": "cpu", "backbone.dtype": "bfloat16"}
    )
    prep = prepare(cfg, progress=False, log=lambda _: None)
    assert prep.placement == Placement("cpu", "bfloat16")
    assert {p.dtype for p in prep.base.parameters()} == {torch.bfloat16}
    model = start_model(prep, "merged")
    lora = {p.dtype for n, p in model.named_parameters() if "lora_" in n}
    assert lora == {torch.float32}
    batch = collate(prep.encoded["micro_dev"].encodings[:2], prep.pad_id, model_device(model))
    assert batch["input_ids"].device == model_device(model)


def test_a_launched_process_takes_the_gpu_of_its_local_rank(monkeypatch):
    _fake(monkeypatch, cuda=True, bf16=True, count=4)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert resolve() == Placement("cuda:3", "bfloat16")
    assert resolve("cuda") == Placement("cuda:3", "bfloat16")
    assert resolve("cpu") == Placement("cpu", "float32")  # an explicit CPU run stays on the CPU


def test_gradient_checkpointing_gives_the_same_losses(tiny_backbone_dir):
    from dataclasses import replace

    from grasp_env.config import ExperimentConfig
    from grasp_env.lm.backbone import load_backbone
    from grasp_env.lm.pipeline import prepare, start_model
    from grasp_env.lm.trainer import train_lora

    prep = prepare(ExperimentConfig.from_preset("tiny"), progress=False, log=lambda _: None)
    lora = replace(prep.cfg.final, max_steps=4, eval_every=100, lora_dropout=0.1)

    def losses(checkpointing: bool) -> list[float]:
        base, _ = load_backbone(tiny_backbone_dir)
        base.requires_grad_(False)
        if checkpointing:
            base.activation_checkpointing_enable(
                activation_checkpointing_kwargs={"use_reentrant": False}
            )
        prep.base = base
        model = start_model(prep, "merged")
        train, dev = prep.encoded["train"], prep.encoded["dev"]
        result = train_lora(model, train, dev, lora, 0, prep.pad_id)
        assert model.base_model.model.is_activation_checkpointing == checkpointing
        return result.train_losses

    assert losses(True) == pytest.approx(losses(False), rel=1e-5)
