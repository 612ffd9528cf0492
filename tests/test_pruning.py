import math

import pytest
import torch

from grasp_env.lm.pruning import (
    apply_masks,
    build_masks,
    magnitude_importance,
    reset_optimizer_state,
    sparsity,
)


def _params(seed=0, shapes=((8, 32), (32, 8), (8, 48), (48, 8))):
    g = torch.Generator().manual_seed(seed)
    return {
        f"m{i}.lora_{'A' if i % 2 == 0 else 'B'}.weight": torch.nn.Parameter(
            torch.randn(*s, generator=g)
        )
        for i, s in enumerate(shapes)
    }


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.237, 0.5, 0.675, 0.8, 1.0])
def test_per_tensor_masks_zero_exactly_floor_ratio_n(ratio):
    params = _params()
    masks = build_masks(params, ratio)
    for name, p in params.items():
        assert int((~masks[name]).sum()) == math.floor(ratio * p.numel())
        # the pruned entries are the smallest in magnitude
        if 0 < ratio < 1:
            assert p.detach().abs()[~masks[name]].max() <= p.detach().abs()[masks[name]].min()


def test_ties_do_not_change_the_count():
    params = {"a.lora_A.weight": torch.nn.Parameter(torch.ones(10, 10))}
    masks = build_masks(params, 0.35)
    assert int((~masks["a.lora_A.weight"]).sum()) == 35
    zeros = {"a.lora_A.weight": torch.nn.Parameter(torch.zeros(7, 3))}
    assert int((~build_masks(zeros, 0.5)["a.lora_A.weight"]).sum()) == 10


def test_global_scope_uses_one_threshold():
    params = _params()
    params["m0.lora_A.weight"].data.uniform_(50, 100)  # one tensor much larger than the rest
    masks = build_masks(params, 0.5, scope="global")
    total = sum(p.numel() for p in params.values())
    assert sum(int((~m).sum()) for m in masks.values()) == math.floor(0.5 * total)
    assert int((~masks["m0.lora_A.weight"]).sum()) == 0  # the big tensor survives whole
    kept = torch.cat([p.detach().abs()[masks[n]] for n, p in params.items()])
    dropped = torch.cat([p.detach().abs()[~masks[n]] for n, p in params.items()])
    assert dropped.max() <= kept.min()


def test_bad_ratio_and_scope_are_clear_errors():
    with pytest.raises(ValueError, match="ratio=1.5 is outside"):
        build_masks(_params(), 1.5)
    with pytest.raises(ValueError, match="ratio=nan"):
        build_masks(_params(), float("nan"))
    with pytest.raises(ValueError, match="scope='layer'"):
        build_masks(_params(), 0.5, scope="layer")


def test_apply_and_sparsity():
    params = _params()
    masks = build_masks(params, 0.4)
    apply_masks(params, masks)
    total = sum(p.numel() for p in params.values())
    expected = sum(math.floor(0.4 * p.numel()) for p in params.values()) / total
    assert sparsity(params) == pytest.approx(expected)


def test_importance_is_recomputed_not_stale():
    params = _params()
    first = build_masks(params, 0.5)
    with torch.no_grad():
        for p in params.values():
            p.copy_(torch.flip(p, dims=[0]) * torch.linspace(0.1, 3, p.shape[0]).unsqueeze(1))
    second = build_masks(params, 0.5)
    assert any(not torch.equal(first[n], second[n]) for n in params)
    assert magnitude_importance(params)["m0.lora_A.weight"].min() >= 0


def test_enforcement_and_optimizer_reset_after_steps():
    params = _params()
    opt = torch.optim.AdamW(params.values(), lr=0.1)
    masks = build_masks(params, 0.5)
    apply_masks(params, masks)
    for _ in range(3):  # steps push pruned weights away from zero; enforcement pulls them back
        loss = sum((p - 1).pow(2).sum() for p in params.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert any(float(p.detach()[~masks[n]].abs().max()) > 0 for n, p in params.items())
        apply_masks(params, masks)
        for n, p in params.items():
            assert torch.all(p.detach()[~masks[n]] == 0)
    # commit a sparser mask: moments of the newly pruned entries are reset, others kept
    new = build_masks(params, 0.8)
    newly = {n: masks[n] & ~new[n] for n in masks}
    name = "m0.lora_A.weight"
    before = opt.state[params[name]]["exp_avg"].clone()
    reset_optimizer_state(opt, params, newly)
    after = opt.state[params[name]]["exp_avg"]
    assert torch.all(after[newly[name]] == 0) and torch.all(
        opt.state[params[name]]["exp_avg_sq"][newly[name]] == 0
    )
    assert torch.equal(after[~newly[name]], before[~newly[name]])
    assert newly[name].any()
