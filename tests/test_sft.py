"""Source and target adapters through TRL's SFTTrainer (grasp_env.lm.sft)."""

from dataclasses import replace

import pytest
import torch


def test_sft_trains_the_adapter_keeps_the_best_checkpoint_and_logs(tiny_backbone_dir, tmp_path):
    from grasp_env.data.embedded import embedded_target_splits
    from grasp_env.lm.adapters import LoraTrainConfig, attach_lora, lora_state
    from grasp_env.lm.backbone import load_backbone
    from grasp_env.lm.batches import encode_rows
    from grasp_env.lm.sft import sft_train

    base, tok = load_backbone(tiny_backbone_dir)
    base.requires_grad_(False)
    splits = embedded_target_splits("qa", "ar", 0)
    train = encode_rows(tok, splits.train, "qa", "ar", 160)
    dev = encode_rows(tok, splits.dev[:16], "qa", "ar", 160)
    cfg = replace(LoraTrainConfig(), max_steps=12, eval_every=3, patience=0, lora_dropout=0.0)
    model = attach_lora(base, cfg, 0)
    frozen = {n: p.clone() for n, p in model.named_parameters() if "lora_" not in n}
    before = lora_state(model)
    info = sft_train(model, train, dev, cfg, 0, tok, log_dir=tmp_path / "tb")
    after = lora_state(model)
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the adapter trained
    for n, p in model.named_parameters():
        if "lora_" not in n:
            assert torch.equal(p, frozen[n])  # the backbone did not
    assert info["steps"] == 12 and [s for s, _ in info["dev_losses"]] == [3, 6, 9, 12]
    best = min(loss for _, loss in info["dev_losses"])
    assert info["best_dev_loss"] == best
    assert info["restored_dev_loss"] == pytest.approx(best, rel=1e-5)  # the best one is kept
    assert any((tmp_path / "tb").rglob("events.out.tfevents.*"))


def test_the_loop_trainer_keeps_the_earlier_adapter_cache_keys():
    from grasp_env.lm.pipeline import PipelineConfig

    assert PipelineConfig().adapter_trainer == "sft"
    with pytest.raises(ValueError, match="adapter_trainer='trainer' is unknown"):
        PipelineConfig(adapter_trainer="trainer")
