"""Group probing (--controller.probe-batch group): a round's candidates in shared forwards.

Checked against what the package already trusts: one `probe` per candidate (the reference
path). The group path must give the same losses, leave the live weights, the optimizer and the
global random stream alone, and play a GRPO episode with the same candidates and commits.
"""

import numpy as np
import pytest
import torch

from agents import GRPOController, check_probe_batch, make_agent
from grasp_env.env import ControllerConfig, GraspLoRAEnv
from grasp_env.lm.batches import evaluate_loss, evaluate_losses
from grasp_env.lm.pruning import lora_parameters
from grasp_env.synthetic import SyntheticProcess


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
    proc.train(3)
    proc.commit(0.4)
    yield proc
    proc.close()


def test_group_losses_equal_one_probe_per_ratio(process):
    ratios = [0.1, 0.4, 0.75]  # below, at and above the committed ratio (the stash matters)
    single = [process.probe(r) for r in ratios]
    group = process.probe_group(ratios)
    assert group == pytest.approx(single, rel=1e-5)
    assert len(set(np.round(single, 6))) == 3  # the candidates really differ


def test_group_probe_touches_neither_weights_nor_optimizer_nor_random_stream(process):
    weights = {n: p.detach().clone() for n, p in process.params.items()}
    moments = {n: dict(process.optimizer.state[p]) for n, p in process.params.items()}
    rng = torch.random.get_rng_state()
    process.probe_group([0.2, 0.6])
    assert torch.equal(torch.random.get_rng_state(), rng)  # slot init ran on a forked stream
    for name, p in process.params.items():
        assert torch.equal(p.detach(), weights[name]), name
        assert p.requires_grad
        for key, value in moments[name].items():
            assert torch.equal(process.optimizer.state[p][key], value)
    model = process.model
    assert model.active_adapter == process.name
    assert set(lora_parameters(model)) == set(process.params)
    slot_params = [p for n, p in model.named_parameters() if "_probe" in n]
    assert slot_params and not any(p.requires_grad for p in slot_params)


def test_training_after_group_probes_matches_training_after_single_probes(prepared):
    from grasp_env.process import LoraProcess

    def run(group):
        proc = LoraProcess(prepared)
        proc.reset(seed=3)
        proc.train(2)
        _ = proc.probe_group([0.3, 0.5]) if group else [proc.probe(0.3), proc.probe(0.5)]
        proc.commit(0.3)
        losses = proc.train(3)
        weights = {n: p.detach().clone() for n, p in proc.params.items()}
        proc.close()
        return losses, weights

    losses_single, weights_single = run(False)
    losses_group, weights_group = run(True)
    assert losses_group == losses_single  # training sees exactly the same model and stream
    for name, w in weights_single.items():
        assert torch.equal(weights_group[name], w), name


def test_close_drops_the_candidate_adapters(prepared):
    from grasp_env.process import LoraProcess

    proc = LoraProcess(prepared)
    proc.reset(seed=0)
    proc.probe_group([0.2, 0.5, 0.7])
    names = proc.host.names()
    slots = [n for n in names if n.startswith(f"{proc.name}_probe")]
    assert len(slots) == 3
    proc.close()
    assert not any(n in proc.host.names() for n in [*slots, proc.name])


def test_evaluate_losses_equals_evaluate_loss_per_adapter(process):
    model, split, pad = process.model, process.micro_dev, process.prep.pad_id
    slots = process._candidate_slots(2)
    with torch.no_grad():  # two different adapters: the live one scaled, and zeroed
        for name, p in process.params.items():
            process._slot_params[slots[0]][name].copy_(p * 0.5)
            process._slot_params[slots[1]][name].zero_()
    expected = []
    for slot in slots:
        process.host.activate(slot)
        expected.append(evaluate_loss(model, split, pad, batch_size=3))
    process.host.activate(process.name)
    got = evaluate_losses(model, split, pad, slots, batch_size=3)  # uneven chunks: 3, 3, 2
    assert got == pytest.approx(expected, rel=1e-5)
    assert expected[0] != pytest.approx(expected[1], rel=1e-3)


def _episode(probe_batch, prepared=None, process=None):
    controller = ControllerConfig(train_steps=30, probe_batch=probe_batch)
    if process is not None:
        env = GraspLoRAEnv(process=process, controller=controller)
    else:
        env = GraspLoRAEnv(prepared=prepared, controller=controller)
    agent = GRPOController(env, seed=7)
    agent.learn(seed=11)
    history = env.history
    env.close()
    return agent.result, history


def test_a_grpo_episode_is_the_same_with_group_probing(prepared):
    # The same draws in the same order; the losses differ only by float rounding (a 24-row
    # forward sums in another order than three 8-row ones), and so, through GRPO's update,
    # do the later candidates (by ~1e-5).
    single, hist_single = _episode("single", prepared)
    group, hist_group = _episode("group", prepared)
    assert len(hist_group) == len(hist_single) == 3
    for a, b in zip(hist_group, hist_single, strict=True):
        assert a["candidates"] == pytest.approx(b["candidates"], abs=1e-4)
        assert a["committed_ratio"] == pytest.approx(b["committed_ratio"], abs=1e-4)
        assert a["losses"] == pytest.approx(b["losses"], rel=1e-4)
        assert a["baseline_loss"] == pytest.approx(b["baseline_loss"], rel=1e-5)
    assert group.learned_ratio == pytest.approx(single.learned_ratio, abs=1e-4)


def test_probe_ahead_serves_the_announced_steps_and_drops_them_on_a_different_action():
    calls = []

    class Counting(SyntheticProcess):
        def probe(self, ratio):
            calls.append(ratio)
            return super().probe(ratio)

    env = GraspLoRAEnv(
        process=Counting(), controller=ControllerConfig(train_steps=40, group_size=3)
    )
    env.reset(seed=0)
    cfg = env.config
    actions = [cfg.action_of(r) for r in (0.2, 0.3, 0.5)]
    env.probe_ahead([0.2, 0.3, 0.5])
    assert calls == pytest.approx([0.2, 0.3, 0.5])  # no probe_group here: one by one
    env.step(actions[0])
    assert len(calls) == 3  # served from the announcement
    env.step(cfg.action_of(0.6))  # not the announced 0.3: probed now, announcement dropped
    env.step(actions[2])
    assert calls[3:] == pytest.approx([0.6, 0.5])
    with pytest.raises(ValueError, match="announce between 1 and 3"):
        env.probe_ahead([0.2] * 4)
    with pytest.raises(ValueError, match=r"outside \[p_min, p_max\]"):
        env.probe_ahead([0.95])


@pytest.mark.parametrize("wrapper", ["none", "rescale", "clip", "rescale+clip"])
def test_group_probing_works_unchanged_under_action_wrappers(wrapper):
    """GRPO acts through the wrappers; the env still serves every step from the announcement."""
    import gymnasium as gym

    calls = {"group": 0, "single": 0}

    class Counting(SyntheticProcess):
        def probe(self, ratio):
            calls["single"] += 1
            return super().probe(ratio)

        def probe_group(self, ratios):
            calls["group"] += 1
            return [super(Counting, self).probe(r) for r in ratios]

    def episode(kind):
        env = GraspLoRAEnv(
            process=Counting(0.5, noise=0.01),
            controller=ControllerConfig(train_steps=50, probe_batch="group"),
        )
        inner = env
        if "rescale" in kind:
            env = gym.wrappers.RescaleAction(
                env, min_action=np.zeros(1, np.float32), max_action=np.full(1, 5.0, np.float32)
            )
        if "clip" in kind:
            env = gym.wrappers.ClipAction(env)
        agent = GRPOController(env, seed=4)
        agent.learn(seed=2)
        return agent.result, inner.history

    reference, ref_history = episode("none")
    calls.update(group=0, single=0)
    result, history = episode(wrapper)
    assert calls == {"group": 5, "single": 0}  # every round announced, no probe repeated
    assert result.learned_ratio == pytest.approx(reference.learned_ratio, abs=1e-6)
    for a, b in zip(history, ref_history, strict=True):
        assert a["candidates"] == pytest.approx(b["candidates"], abs=1e-6)


def test_group_probing_is_refused_for_agents_that_cannot_announce():
    check_probe_batch(["grpo"], "group")
    check_probe_batch(["random", "sac"], "single")
    with pytest.raises(
        ValueError, match=r"agent\(s\) \['random'\].*--controller.probe-batch single"
    ):
        check_probe_batch(["grpo", "random"], "group")
    env = GraspLoRAEnv(
        process=SyntheticProcess(), controller=ControllerConfig(train_steps=40, probe_batch="group")
    )
    with pytest.raises(ValueError, match="--controller.probe-batch group"):
        make_agent("ppo", env, seed=0)


def test_unknown_probe_batch_names_the_field():
    with pytest.raises(ValueError, match="probe_batch='pairs'.*fix: use one of"):
        GraspLoRAEnv(
            process=SyntheticProcess(),
            controller=ControllerConfig(train_steps=40, probe_batch="pairs"),
        )
