"""Property tests (hypothesis): invariants that must hold for any input, not just examples."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.grpo_math import SCALE_REWARDS, group_advantages
from grasp_env.env import ControllerConfig
from grasp_env.lm.pruning import apply_masks, build_masks

shapes = st.lists(st.tuples(st.integers(1, 9), st.integers(1, 9)), min_size=1, max_size=4)
ratios = st.floats(0.0, 1.0, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(shapes=shapes, ratio=ratios, seed=st.integers(0, 2**16), ties=st.booleans())
def test_per_tensor_masks_prune_exactly_floor_ratio_n(shapes, ratio, seed, ties):
    gen = torch.Generator().manual_seed(seed)
    params = {}
    for i, shape in enumerate(shapes):
        w = torch.randn(*shape, generator=gen)
        params[f"t{i}"] = w.round() if ties else w  # rounding makes many equal magnitudes
    masks = build_masks(params, ratio, "per_tensor")
    for name, p in params.items():
        assert masks[name].shape == p.shape and masks[name].dtype == torch.bool
        assert int((~masks[name]).sum()) == math.floor(ratio * p.numel())


@settings(max_examples=150, deadline=None)
@given(shapes=shapes, ratio=ratios, seed=st.integers(0, 2**16))
def test_global_masks_prune_exactly_and_keep_the_largest(shapes, ratio, seed):
    gen = torch.Generator().manual_seed(seed)
    params = {f"t{i}": torch.randn(*s, generator=gen) for i, s in enumerate(shapes)}
    masks = build_masks(params, ratio, "global")
    total = sum(p.numel() for p in params.values())
    pruned = sum(int((~m).sum()) for m in masks.values())
    assert pruned == math.floor(ratio * total)
    kept = torch.cat([p[m].abs() for p, m in zip(params.values(), masks.values(), strict=True)])
    dropped = torch.cat([p[~m].abs() for p, m in zip(params.values(), masks.values(), strict=True)])
    if kept.numel() and dropped.numel():
        assert dropped.max() <= kept.min()
    applied = {n: p.clone() for n, p in params.items()}
    apply_masks(applied, masks)
    zeros = sum(int((p[~masks[n]] == 0).sum()) for n, p in applied.items())
    assert zeros == pruned


@settings(max_examples=200, deadline=None)
@given(
    rewards=st.lists(
        st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=8),
        min_size=1,
        max_size=5,
    ).filter(lambda g: len({len(x) for x in g}) == 1),
    mode=st.sampled_from(SCALE_REWARDS),
)
def test_advantages_are_finite_and_zero_mean_per_group(rewards, mode):
    r = np.array(rewards)
    adv, frac_zero = group_advantages(r, mode)
    assert adv.shape == r.shape and np.isfinite(adv).all()
    scale = np.abs(adv).max(initial=0.0) + 1.0
    assert np.allclose(adv.mean(axis=1), 0.0, atol=1e-9 * scale * r.shape[1])
    assert 0.0 <= frac_zero <= 1.0
    for g in range(r.shape[0]):
        if np.all(r[g] == r[g][0]):
            assert np.all(adv[g] == 0.0)


@st.composite
def bounds(draw):
    lo = draw(st.floats(0.0, 0.95, allow_nan=False))
    hi = draw(st.floats(lo + 1e-3, 1.0, allow_nan=False))
    return lo, hi


@settings(max_examples=200, deadline=None)
@given(b=bounds(), a1=st.floats(-1.0, 1.0), a2=st.floats(-1.0, 1.0))
def test_action_mapping_is_monotone_and_in_bounds(b, a1, a2):
    lo, hi = b
    cfg = ControllerConfig(p_min=lo, p_max=hi, p_init=lo)
    r1, r2 = cfg.ratio_of(a1), cfg.ratio_of(a2)
    for r in (r1, r2):
        assert lo - 1e-12 <= r <= hi + 1e-12
    if a1 < a2:
        assert r1 <= r2
    assert cfg.ratio_of(-1.0) == pytest.approx(lo) and cfg.ratio_of(1.0) == pytest.approx(hi)
