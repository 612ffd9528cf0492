"""The target-only loss with logits computed at the target positions only (issue 15)."""

import pytest
import torch
import torch.nn.functional as F

from grasp_env.lm.batches import IGNORE_INDEX, answer_loss, collate


@pytest.fixture(scope="module")
def prepared(tiny_backbone_dir):
    from grasp_env.lm.pipeline import PipelineConfig, prepare
    from grasp_env.lm.presets import get_preset

    return prepare(get_preset("tiny"), PipelineConfig(), progress=False, log=lambda _: None)


def _full_logits_loss(model, batch, reduction):
    """The plain computation: logits at every position, targets shifted by one."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.size(-1)),
        batch["labels"][:, 1:].reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction=reduction,
    )


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_target_positions_only_give_the_full_logits_loss(prepared, reduction):
    from grasp_env.lm.pipeline import start_model

    model = start_model(prepared, "merged")
    model.eval()
    rows = [  # prompts cut by different amounts: answers at different positions
        {k: v[3 * i :] for k, v in r.items() if k in ("input_ids", "labels")}
        for i, r in enumerate(prepared.encoded["train"].encodings[:6])
    ]
    assert len({len(r["input_ids"]) for r in rows}) == 6
    batch = collate(rows, prepared.pad_id)
    with torch.no_grad():
        got = answer_loss(model, batch, reduction)
        want = _full_logits_loss(model, batch, reduction)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), (got, want)

    model.train()  # and the gradients of a training step
    model.zero_grad()
    torch.manual_seed(0)
    answer_loss(model, batch).backward()
    mine = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    torch.manual_seed(0)
    _full_logits_loss(model, batch, "mean").backward()
    for name, p in model.named_parameters():
        if p.grad is not None:
            assert torch.allclose(mine[name], p.grad, rtol=1e-4, atol=1e-6), name


def test_a_batch_without_targets_gives_nan_mean_and_zero_sum(prepared):
    from grasp_env.lm.pipeline import start_model

    model = start_model(prepared, "merged")
    rows = [dict(r) for r in prepared.encoded["train"].encodings[:2]]
    for r in rows:
        r["labels"] = [IGNORE_INDEX] * len(r["labels"])
    batch = collate(rows, prepared.pad_id)
    with torch.no_grad():
        assert torch.isnan(answer_loss(model, batch))
        assert answer_loss(model, batch, "sum").item() == 0.0
