"""The controller process on the real tiny preset: stash, absolute probes, masks, AdamW state.

Every assertion reads the weights or the optimizer state themselves, so breaking any of
`LoraProcess.train` re-zeroing after each step, `commit` resetting the moments of newly pruned
entries, `probe` restoring the weights, or the stash itself makes a test here fail.
"""

import pytest
import torch

from grasp_env.lm.batches import evaluate_loss
from grasp_env.lm.pruning import PruneState, build_masks


@pytest.fixture(scope="module")
def prepared(tiny_backbone_dir):
    from grasp_env.config import ExperimentConfig
    from grasp_env.lm.pipeline import prepare

    return prepare(ExperimentConfig.from_preset("tiny"), progress=False, log=lambda _: None)


@pytest.fixture
def process(prepared):
    from grasp_env.process import LoraProcess

    proc = LoraProcess(prepared)
    proc.reset(seed=0)
    return proc


def _weights(proc):
    return {n: p.detach().clone() for n, p in proc.params.items()}


def _moments(proc):
    return {
        n: {k: v.clone() for k, v in proc.optimizer.state[p].items() if torch.is_tensor(v)}
        for n, p in proc.params.items()
    }


def test_reset_is_unpruned_and_commit_stashes_the_pruned_values(process):
    assert process.masks is None and process.sparsity() == 0.0
    process.train(3)
    before = _weights(process)
    achieved = process.commit(0.5)
    assert achieved == pytest.approx(0.5, abs=0.02)
    for name, p in process.params.items():
        keep = process.masks[name]
        assert (p[~keep] == 0).all()
        assert torch.equal(process.prune.stash[name][~keep], before[name][~keep])
        assert torch.equal(p[keep], before[name][keep])


def test_probe_below_the_committed_ratio_measures_the_less_pruned_model(process):
    process.train(3)
    process.commit(0.6)
    process.train(2)
    l0 = process.baseline_loss()
    live = _weights(process)
    loss = process.probe(0.2)
    assert loss != pytest.approx(l0, abs=1e-6)  # not a copy of L0 (the bug before the stash)
    # the same model built by hand: effective weights (stash where pruned), masked at 0.2
    effective = {n: torch.where(process.masks[n], live[n], process.prune.stash[n]) for n in live}
    keep = build_masks(effective, 0.2)
    with torch.no_grad():
        for name, p in process.params.items():
            p.copy_(effective[name] * keep[name])
    by_hand = evaluate_loss(process.model, process.micro_dev, process.prep.pad_id)
    with torch.no_grad():
        for name, p in process.params.items():
            p.copy_(live[name])
    assert loss == pytest.approx(by_hand, rel=1e-6)


def test_probe_restores_weights_and_optimizer_state_exactly(process):
    process.train(3)
    process.commit(0.4)
    process.train(2)
    weights, moments = _weights(process), _moments(process)
    for ratio in (0.1, 0.4, 0.8):
        process.probe(ratio)
    assert all(torch.equal(weights[n], p) for n, p in process.params.items())
    after = _moments(process)
    assert all(torch.equal(moments[n][k], after[n][k]) for n in moments for k in moments[n])


def test_downward_commit_revives_the_released_entries_from_the_stash(process):
    process.train(3)
    process.commit(0.7)
    stashed = {n: s.clone() for n, s in process.prune.stash.items()}
    old_keep = {n: k.clone() for n, k in process.masks.items()}
    process.train(2)  # pruned entries stay at zero; the stash keeps their values
    process.commit(0.2)
    released_any = False
    for name, p in process.params.items():
        released = ~old_keep[name] & process.masks[name]
        released_any |= bool(released.any())
        assert torch.equal(p[released], stashed[name][released])
        assert (p[released] != 0).any() or not released.any()
        assert (process.prune.stash[name][process.masks[name]] == 0).all()
    assert released_any
    assert process.sparsity() == pytest.approx(0.2, abs=0.02)


def test_train_re_zeroes_the_pruned_entries_after_every_step(process):
    process.train(2)
    process.commit(0.5)
    for _ in range(3):
        process.train(1)
        for name, p in process.params.items():
            assert (p[~process.masks[name]] == 0).all()
    # the optimizer did push the pruned entries (so the re-zeroing is what holds them at 0)
    moved = any(
        (process.optimizer.state[p]["exp_avg"][~process.masks[n]] != 0).any()
        for n, p in process.params.items()
    )
    assert moved


def test_commit_resets_the_moments_of_newly_pruned_entries_only(process):
    process.train(4)
    before = _moments(process)
    old = {n: torch.ones_like(p, dtype=torch.bool) for n, p in process.params.items()}
    process.commit(0.5)
    after = _moments(process)
    for name in process.params:
        newly = old[name] & ~process.masks[name]
        for key in ("exp_avg", "exp_avg_sq"):
            assert (after[name][key][newly] == 0).all()
            assert torch.equal(after[name][key][~newly], before[name][key][~newly])
        assert (before[name]["exp_avg_sq"][newly] != 0).any()


def test_released_entries_keep_their_moments(process):
    # documented choice (PruneState): moments accumulated while pruned stay, so AdamW's
    # second moment keeps its scale when the entry comes back
    process.train(2)
    process.commit(0.7)
    process.train(3)
    before = _moments(process)
    old_keep = {n: k.clone() for n, k in process.masks.items()}
    process.commit(0.2)
    after = _moments(process)
    for name in process.params:
        released = ~old_keep[name] & process.masks[name]
        assert torch.equal(
            after[name]["exp_avg_sq"][released], before[name]["exp_avg_sq"][released]
        )


def test_state_dict_round_trips_the_stash(process, prepared):
    from grasp_env.process import LoraProcess

    process.train(2)
    process.commit(0.6)
    process.train(2)
    state = process.state_dict()
    other = LoraProcess(prepared)  # a second adapter
    assert other.name != process.name and other.host is process.host  # one backbone
    other.reset(seed=1)
    other.load_state_dict(state)
    ours, theirs = process.prune.stash, other.prune.stash
    assert len(ours) == len(theirs)
    assert all(torch.equal(a, b) for a, b in zip(ours.values(), theirs.values(), strict=True))
    assert other.probe(0.2) == process.probe(0.2)
    other.close()
    assert other.name not in process.host.names()


def test_prune_state_without_a_commit_is_the_live_model():
    params = {"a.lora_A.weight": torch.nn.Parameter(torch.randn(4, 6))}
    state = PruneState(params)
    assert state.sparsity() == 0.0
    assert torch.equal(state.effective(params)["a.lora_A.weight"], params["a.lora_A.weight"])
    state.enforce(params)  # nothing to enforce before a commit
    assert (params["a.lora_A.weight"] != 0).all()


def test_a_rebuild_at_the_same_ratio_swaps_entries_by_their_stashed_importance():
    # pruned entries are ranked by their stashed magnitude, not by their enforced zero: when
    # kept entries shrink below them, a rebuild at the same ratio brings them back
    params = {"a.lora_A.weight": torch.nn.Parameter(torch.arange(1.0, 11.0).reshape(2, 5))}
    state = PruneState(params)
    state.commit(params, state.masks_at(params, 0.5))  # prunes 1..5, stashes them
    assert torch.equal(state.stash["a.lora_A.weight"].flatten()[:5], torch.arange(1.0, 6.0))
    with torch.no_grad():
        params["a.lora_A.weight"][1] = 0.01  # the kept entries 6..10 shrink to 0.01
    state.commit(params, state.masks_at(params, 0.5))
    assert torch.equal(params["a.lora_A.weight"][0], torch.arange(1.0, 6.0))  # revived
    assert (params["a.lora_A.weight"][1] == 0).all()
    assert torch.allclose(state.stash["a.lora_A.weight"][1], torch.full((5,), 0.01))


def test_final_run_with_a_rebuilding_mask_keeps_the_ratio(prepared):
    from grasp_env.lm.pipeline import start_model
    from grasp_env.lm.trainer import PruneSpec, train_lora

    model = start_model(prepared, "merged")
    lora = prepared.cfg.final
    result = train_lora(
        model,
        prepared.encoded["train"],
        prepared.encoded["dev"],
        lora,
        0,
        prepared.pad_id,
        prune=PruneSpec(0.5, "per_tensor", None, 2),
    )
    assert result.steps == lora.max_steps
    zeros = sum(int((v == 0).sum()) for k, v in result.state.items() if "lora_" in k)
    total = sum(v.numel() for k, v in result.state.items() if "lora_" in k)
    assert zeros / total == pytest.approx(0.5, abs=0.02)
