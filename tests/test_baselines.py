"""The paper's baselines (grasp_env.lm.baselines) on the tiny preset."""

import numpy as np
import pytest
import torch

from grasp_env.lm.baselines import (
    BASELINES,
    LORAHUB_BOUND,
    LORAHUB_L1,
    lorahub_state,
    lorahub_weights,
    run_baseline,
)


@pytest.fixture(scope="module")
def prepared(tiny_backbone_dir):
    from grasp_env.config import ExperimentConfig
    from grasp_env.lm.pipeline import prepare

    return prepare(ExperimentConfig.from_preset("tiny"), progress=False, log=lambda _: None)


_SLOW = {"dare_linear", "dare_ties", "lorahub"}  # the same code paths as ties; lorahub below


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(b, marks=pytest.mark.slow) if b in _SLOW else b
        for b in BASELINES
        if b not in ("target_only", "merged_no_prune")  # final runs: tested with the pipeline
    ],
)
def test_every_baseline_runs_and_is_deterministic_for_its_seed(prepared, name):
    first = run_baseline(prepared, name, (0.2, 0.6))
    again = run_baseline(prepared, name, (0.2, 0.6))
    keep = ("test", "test_loss", "dev_loss", "ratio", "density", "weights", "predictions")
    assert {k: first.get(k) for k in keep} == {k: again.get(k) for k in keep}
    assert np.isfinite(first["test_loss"]) and first["seconds"] >= first["eval_s"] > 0
    from grasp_env.lm.host import host_of

    assert not [n for n in host_of(prepared.base).names() if n.startswith("baseline")]


def test_zero_shot_is_the_backbone_without_any_adapter(prepared, tiny_backbone_dir):
    from grasp_env.lm.backbone import load_backbone
    from grasp_env.lm.batches import evaluate_loss

    bare, _ = load_backbone(tiny_backbone_dir)
    expected = evaluate_loss(bare.eval(), prepared.encoded["test"], prepared.pad_id)
    record = run_baseline(prepared, "zero_shot", ())
    assert record["test_loss"] == pytest.approx(expected, rel=1e-6)
    source = run_baseline(prepared, "source_only", ())
    assert source["test_loss"] != pytest.approx(expected, rel=1e-4)  # the adapter acts


@pytest.mark.parametrize("combination", ["magnitude_prune", "dare_linear"])
def test_merges_at_density_1_equal_peft_linear_merge(prepared, combination):
    """PEFT's magnitude pruning keeps everything and DARE drops nothing at density 1."""
    from grasp_env.lm.baselines import _adapter, _drop
    from grasp_env.lm.pruning import lora_parameters

    model = _adapter(prepared, "baseline_src", "source")
    _adapter(prepared, "baseline_tgt", "target")
    states = {}
    try:
        for kind in ("linear", combination):
            kwargs = {} if kind == "linear" else {"density": 1.0}
            model.add_weighted_adapter(
                ["baseline_src", "baseline_tgt"], [1.0, 1.0], adapter_name=f"m_{kind}",
                combination_type=kind, **kwargs,
            )  # fmt: skip
            model.set_adapter(f"m_{kind}")
            states[kind] = {
                n.replace(f"m_{kind}", "m"): p.detach().clone()
                for n, p in lora_parameters(model).items()
            }
    finally:
        _drop(prepared, "m_linear", f"m_{combination}", "baseline_src", "baseline_tgt")
    assert states["linear"].keys() == states[combination].keys()
    for key, value in states["linear"].items():
        torch.testing.assert_close(states[combination][key], value)


def test_lorahub_stays_in_bounds_and_beats_the_equal_weight_merge(prepared):
    from grasp_env.lm.batches import evaluate_loss
    from grasp_env.lm.host import LoraShape, attach_lora, host_of

    weights, trace = lorahub_weights(prepared, seed=0)
    assert len(trace) == 40 and all(abs(w) <= LORAHUB_BOUND for w in weights)
    assert trace[0][0] == [1.0, 1.0]  # the equal-weight merge was evaluated first
    best = min(v for _, v in trace)
    recipe = prepared.cfg.source_lora
    shape = LoraShape(recipe.r, recipe.lora_alpha, 0.0, prepared.target_modules)
    model = attach_lora(prepared.base, shape, 0, lorahub_state(prepared, weights), name="check")
    micro = evaluate_loss(model, prepared.encoded["micro_dev"], prepared.pad_id)
    host_of(prepared.base).drop("check")
    assert micro + LORAHUB_L1 * sum(abs(w) for w in weights) == pytest.approx(best, rel=1e-6)
    assert best <= trace[0][1]  # no worse than the equal-weight merge
