"""The stand-in library (grasp_env.surrogate): the real process's semantics, curves, floor."""

import json

import numpy as np
import pytest

from grasp_env.surrogate import (
    FAMILIES,
    NOISE_MODES,
    Instance,
    Noise,
    SurrogateProcess,
    family_fit,
    instance_set,
    load_curves,
    make_env,
    pchip,
    pchip_eval,
)


def _inst(family="symmetric", noise=None, **params):
    params = params or {"optimum": 0.5}
    return Instance(family, tuple(params.items()), noise or Noise(noise=0.05), seed=7)


def _process(inst, budget=150):
    proc = SurrogateProcess(inst, budget=budget)
    proc.reset(3)
    proc.train(10)
    return proc


def test_a_probe_at_the_committed_ratio_equals_l0_in_expectation():
    proc = _process(_inst(noise=Noise(noise=0.05, jitter=0.05, bias=0.05)))
    proc.commit(0.6)
    proc.train(10)
    probes = [proc.probe(0.6) for _ in range(4000)]
    baselines = [proc.baseline_loss() for _ in range(4000)]
    sd = 0.05 * 0.3 / np.sqrt(4000)
    assert abs(np.mean(probes) - np.mean(baselines)) < 5 * sd * np.sqrt(2)
    assert abs(np.mean(probes) - proc.expected_loss(0.6)) < 5 * sd


def test_a_probe_below_the_committed_ratio_measures_a_less_pruned_model():
    inst = _inst(optimum=0.3)
    proc = _process(inst)
    proc.commit(0.7)
    proc.train(10)
    below = np.mean([proc.probe(0.3) for _ in range(2000)])
    l0 = np.mean([proc.baseline_loss() for _ in range(2000)])
    # the true curve there (its optimum, plus the training trend), not the baseline at 0.7
    trend = 0.5 * 0.3 * np.exp(-proc.steps_done / 50)
    assert below == pytest.approx(float(inst.true_curve(0.3)) + trend, abs=2e-3)
    assert l0 - below > 0.1  # 0.7 is far up the parabola: a clearly worse loss


def test_the_baseline_is_unpruned_before_the_first_commit():
    inst = _inst(optimum=0.5, noise=Noise(noise=0.0))
    proc = _process(inst)
    assert proc.sparsity() == 0.0
    assert proc.baseline_loss() == pytest.approx(proc.expected_loss(0.0))
    assert proc.commit(0.45) == 0.45 and proc.baseline_loss() == pytest.approx(
        proc.expected_loss(0.45)
    )


def _rewards(inst, seed, actions):
    env = make_env(inst, rounds=4)
    env.reset(seed=seed)
    return [env.step(np.array([a], dtype=np.float32))[1] for a in actions]


def test_the_same_seed_gives_the_same_episode():
    inst = instance_set("smoke")[6]  # a moving optimum, with noise
    actions = list(np.linspace(-0.9, 0.9, 12))
    first, again = _rewards(inst, 5, actions), _rewards(inst, 5, actions)
    assert first == again
    assert _rewards(inst, 6, actions) != first


def test_regret_is_zero_at_the_true_argmin_and_one_at_the_worst_point():
    for inst in instance_set("smoke"):
        grid = inst.fine_grid
        values = inst.true_curve(grid)
        assert inst.regret(inst.optimum) == pytest.approx(0.0, abs=1e-12)
        assert inst.regret(float(grid[np.argmax(values)])) == pytest.approx(1.0)
        assert 0.0 <= inst.regret(0.37) <= 1.0


@pytest.mark.parametrize("set_name", ["train", "test"])
def test_every_curve_has_its_stated_optimum(set_name):
    for inst in instance_set(set_name):
        stated = inst.stated_optimum
        if stated is None:  # real curves: the end curve's argmin
            assert inst.p_min <= inst.optimum <= inst.p_max
            continue
        # flat_bottom's optimum is its plateau's centre: regret 0 all over the plateau
        assert inst.regret(stated) < 1e-9, inst.name
        assert inst.range == pytest.approx(inst.noise.depth)


def test_moving_and_two_minima_curves_change_with_training():
    moving = _inst("moving", base="symmetric", o_start=0.6, o_end=0.3, schedule="linear")
    grid = np.linspace(0.1, 0.8, 701)
    assert grid[np.argmin(moving.shape_at(grid, 0.0))] == pytest.approx(0.6, abs=1e-3)
    assert grid[np.argmin(moving.shape_at(grid, 0.5))] == pytest.approx(0.45, abs=1e-3)
    assert moving.optimum == pytest.approx(0.3, abs=1e-3)
    swap = _inst("two_minima", o1=0.7, o2=0.35, delta_start=-0.06, delta_end=0.1)
    assert grid[np.argmin(swap.shape_at(grid, 0.0))] == pytest.approx(0.35, abs=1e-3)
    assert swap.optimum == pytest.approx(0.7, abs=1e-3)
    plateau = _inst("bound_plateau", side="hi", edge=0.5)
    assert plateau.optimum == pytest.approx(0.8)


def test_instance_sets_are_disjoint_and_cover_every_family():
    train, test = instance_set("train"), instance_set("test")
    assert not {(i.family, i.params) for i in train} & {(i.family, i.params) for i in test}
    assert not {i.seed for i in train} & {i.seed for i in test}
    for fam in FAMILIES:
        assert sum(i.family == fam for i in test) >= 4, fam


def test_pchip_is_shape_preserving():
    xg = np.array([0.0, 0.1, 0.2, 0.3, 0.5])
    yg = np.array([1.0, 1.0, 1.1, 2.0, 4.0])  # flat, then a cliff
    d = pchip(xg, yg)
    x = np.linspace(0, 0.5, 501)
    y = pchip_eval(xg, yg, d, x)
    assert np.all(np.diff(y) >= -1e-12)  # monotone data, monotone interpolant
    assert np.allclose(pchip_eval(xg, yg, d, xg), yg)
    assert np.all(y[x <= 0.1] == pytest.approx(1.0))  # no overshoot on the flat part


def _curves_file(tmp_path, dev=None):
    grid = [round(0.05 * i, 2) for i in range(19)]
    rounds = []
    for r, o in enumerate((0.2, 0.3, 0.4)):
        losses = [1.0 + 3.0 * (x - o) ** 2 for x in grid]
        row = {
            "round": r,
            "step": 10 * (r + 1),
            "mask_ratio": 0.0,
            "baseline_loss": losses[0],
            "grid_losses": losses,
        }
        if dev is not None:
            row["dev_grid_losses"] = [
                v + (0.5 - x) * dev for x, v in zip(grid, losses, strict=True)
            ]
        rounds.append(row)
    path = tmp_path / ("c.json" if dev is None else "d.json")
    path.write_text(json.dumps({"config": {"grid": grid}, "rounds": rounds}))
    return path


def test_real_curves_replay_round_by_round_and_score_on_the_last_or_dev(tmp_path):
    micro = Instance(
        "real", (("source", str(_curves_file(tmp_path))), ("shift", 0.0)), Noise(noise=0.0), seed=1
    )
    assert micro.optimum == pytest.approx(0.4, abs=0.01)  # the last round's curve
    proc = SurrogateProcess(micro, budget=30)
    proc.reset(0)
    proc.train(10)
    assert proc.probe(0.2) < proc.probe(0.4)  # round 1 prefers 0.2
    proc.train(20)
    assert proc.probe(0.4) < proc.probe(0.2)  # the last round prefers 0.4
    shifted = micro.located(shift=0.1)
    assert shifted.optimum == pytest.approx(0.5, abs=0.01)
    dev = Instance(
        "real",
        (("source", str(_curves_file(tmp_path, dev=1.0))), ("shift", 0.0)),
        Noise(noise=0.0),
        seed=1,
    )
    assert load_curves(str(_curves_file(tmp_path, dev=1.0))).dev is not None
    assert dev.optimum > 0.5  # dev curve tilted: its own argmin, not the micro-dev one


def test_the_recorded_curves_load():
    data = load_curves("probe:qa-en-ar-s42")
    assert len(data.micro) == 14 and data.progress[-1] == 1.0  # the repeated last step dropped
    assert 0.0 < data.jitter < 0.2


def test_state_dict_round_trip_continues_the_same_stream():
    inst = _inst(noise=NOISE_MODES["mixed"])
    proc = _process(inst)
    state = proc.state_dict()
    after = [proc.probe(0.3), proc.train(10)[-1], proc.probe(0.5)]
    other = SurrogateProcess(inst, budget=150)
    other.reset(99)
    other.load_state_dict(json.loads(json.dumps(state)))
    assert [other.probe(0.3), other.train(10)[-1], other.probe(0.5)] == after


def test_the_floor_recovers_a_moving_optimum_from_clean_probes():
    inst = _inst(
        "moving", noise=Noise(noise=0.0), base="cliff", o_start=0.35, o_end=0.6, schedule="linear"
    )
    rounds, ratios, losses = [], [], []
    for t in range(10):
        u = (t + 1) / 10
        for x in (0.15, 0.3, 0.45, 0.55, 0.65, 0.75):
            rounds.append(t)
            ratios.append(x)
            losses.append(float(inst.scale * inst.shape_at(x, u)) + 0.1 * t)
    p = family_fit(inst, np.array(rounds), np.array(ratios), np.array(losses), 10)
    assert inst.regret(p) < 0.005
