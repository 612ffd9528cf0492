"""The target-only loss with logits computed at the target positions only (issue 15)."""

import pytest
import torch
import torch.nn.functional as F

from grasp_env.lm.batches import IGNORE_INDEX, answer_loss, collate


@pytest.fixture(scope="module")
def prepared(tiny_backbone_dir):
    from grasp_env.config import ExperimentConfig
    from grasp_env.lm.pipeline import prepare

    return prepare(ExperimentConfig.from_preset("tiny"), progress=False, log=lambda _: None)


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


def test_greedy_decoding_uses_the_kv_cache_and_stops_when_every_row_hit_eos(prepared):
    """Each step after the prompt feeds one new token (the KV cache), and a batch whose rows
    have all produced EOS stops there instead of running to max_new_tokens."""
    from grasp_env.lm.batches import generate
    from grasp_env.lm.pipeline import start_model

    model = start_model(prepared, "merged")
    cfg, tok = prepared.cfg, prepared.tokenizer
    rows = [prepared.splits.test[0]] * 2  # same prompt: both rows emit the same tokens
    widths: list[int] = []
    hook = model.get_base_model().register_forward_pre_hook(
        lambda _m, args, kwargs: widths.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    try:

        def decode(eos: int, max_new: int) -> list[str]:
            widths.clear()
            stand_in = _Tokenizer(tok, eos)
            return generate(model, stand_in, rows, cfg.data.task, cfg.data.target, 256, max_new)

        free = _greedy_ids(model, tok, rows, cfg, 8)  # what the rows emit, EOS ignored
        eos = tok.eos_token_id
        decode(eos, 8)
        expected = free.index(eos) + 1 if eos in free else 8
        assert len(widths) == expected and widths[0] > 1 and set(widths[1:]) == {1}
        decode(int(free[0]), 8)  # every row's first token is EOS: one forward, then stop
        assert len(widths) == 1
    finally:
        hook.remove()


class _Tokenizer:
    """The real tokenizer with another EOS id (to place EOS where the test wants it)."""

    def __init__(self, tok, eos: int) -> None:
        self._tok, self.eos_token_id = tok, eos

    def __getattr__(self, name):
        return getattr(self._tok, name)

    def __call__(self, *args, **kwargs):
        return self._tok(*args, **kwargs)


def _greedy_ids(model, tok, rows, cfg, max_new):
    """The first row's greedy continuation ids, ignoring EOS (what `decode` would emit)."""
    from grasp_env.data.prompts import tokenize_row

    ids = tokenize_row(tok, rows[0], cfg.data.task, cfg.data.target, 256, with_target=False)[
        "input_ids"
    ]
    inp = torch.tensor([ids])
    model.eval()
    with torch.no_grad():
        out = model.generate(
            input_ids=inp,
            attention_mask=torch.ones_like(inp),
            max_new_tokens=max_new,
            min_new_tokens=max_new,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
        )
    return out[0, inp.shape[1] :].tolist()
