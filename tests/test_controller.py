"""The Thompson-sampling controller (agents.bayes) and its p* rule (pstar.fit_spline_recent)."""

import copy
import json

import numpy as np
import pytest

from agents.bayes import (
    BRACKET_MAX,
    ThompsonConfig,
    ThompsonController,
    golden_points,
    plan_round,
)
from grasp_env.pstar import (
    Probes,
    SplinePosterior,
    fit_quadratic,
    fit_spline,
    fit_spline_recent,
    probes_of,
    shape_kernel,
    spline_posterior,
)
from grasp_env.surrogate import Instance, Noise, make_env

# ---------------------------------------------------------------- pure maths


def test_golden_points_follow_the_golden_ratio_sequence():
    # frac(k * 0.618...) = 0, 0.618, 0.236, 0.854 mapped onto [0, 1]
    assert golden_points(0.0, 0, 4, 0.0, 1.0) == pytest.approx([0.0, 0.618034, 0.236068, 0.854102])
    # onto [0.1, 0.8], starting later in the sequence, with an offset
    assert golden_points(0.5, 1, 1, 0.1, 0.8) == pytest.approx([0.1 + 0.7 * 0.118034])
    # any 10 consecutive points leave no gap wider than 0.2 of the range
    pts = np.sort(golden_points(0.3, 7, 10, 0.0, 1.0) + [0.0, 1.0])
    assert np.diff(pts).max() < 0.2


def test_plan_round_keeps_candidates_apart_and_inside_the_range():
    assert plan_round([0.5, 0.5], [0.5], 0.01, 0.1, 0.8) == pytest.approx([0.5, 0.51, 0.52])
    assert plan_round([0.8, 0.8], [], 0.01, 0.1, 0.8) == pytest.approx([0.8, 0.79])
    assert plan_round([0.95, -1.0], [0.3], 0.01, 0.1, 0.8) == pytest.approx([0.8, 0.1, 0.3])


def test_shape_kernel_is_a_smooth_covariance():
    x = np.linspace(0, 1, 9)
    k = shape_kernel(x)
    assert np.diag(k) == pytest.approx(1 + 1 / 4 + 1 / 9 + 1 / 16)
    assert np.allclose(k, k.T) and np.linalg.eigvalsh(k).min() > -1e-10
    assert k[0, 1] > k[0, 4]  # nearby ratios change together


def _rounds(f_of_round, ratio_sets, offsets):
    """Per round t: (baseline ratio 0.4, L0, candidates, losses) of curve f_of_round(t)."""
    out = []
    for t, (ratios, c) in enumerate(zip(ratio_sets, offsets, strict=True)):
        f = f_of_round(t)
        out.append((0.4, c + f(0.4), list(ratios), [c + f(r) for r in ratios]))
    return out


def _spread(n_rounds, seed=0):
    rng = np.random.default_rng(seed)
    return [tuple(rng.uniform(0.1, 0.8, 3)) for _ in range(n_rounds)]


def test_the_recent_rule_recovers_a_static_parabola_despite_round_offsets():
    rounds = _rounds(lambda t: lambda r: (r - 0.47) ** 2, _spread(12), np.linspace(2, 1, 12))
    fit = fit_spline_recent(probes_of(rounds), 0.1, 0.8)
    assert fit.ratio == pytest.approx(0.47, abs=0.01)


def test_the_recent_rule_tracks_an_optimum_that_moves_while_the_spline_averages_it():
    # the optimum moves linearly from 0.30 (round 0) to 0.60 (round 14); no noise
    def curve(t):
        o = 0.30 + 0.30 * t / 14
        return lambda r: (r - o) ** 2

    rounds = _rounds(curve, _spread(15, seed=1), np.linspace(2, 1, 15))
    probes = probes_of(rounds)
    assert fit_spline_recent(probes, 0.1, 0.8).ratio == pytest.approx(0.60, abs=0.02)
    assert abs(fit_spline(probes, 0.1, 0.8).ratio - 0.60) > 0.08  # the run's average


def test_thompson_draws_concentrate_where_the_posterior_is_sure():
    rng = np.random.default_rng(0)
    rounds = _rounds(lambda t: lambda r: (r - 0.35) ** 2, _spread(10), np.linspace(2, 1, 10))
    rounds = [
        (p, l0 + rng.normal(0, 1e-3), rs, [v + rng.normal(0, 1e-3) for v in ls])
        for p, l0, rs, ls in rounds
    ]
    post = spline_posterior(probes_of(rounds), 0.1, 0.8)
    draws = post.sample_argmins(np.random.default_rng(1), 200)
    assert np.all((draws >= 0.1) & (draws <= 0.8))
    assert abs(np.median(draws) - 0.35) < 0.02 and np.quantile(np.abs(draws - 0.35), 0.9) < 0.06


def test_too_few_ratios_give_no_posterior():
    probes = Probes(np.array([0, 0, 0]), np.array([0.2, 0.4, 0.6]), np.array([1.0, 0.9, 1.1]))
    assert spline_posterior(probes, 0.1, 0.8) is None
    assert fit_spline_recent(probes, 0.1, 0.8).ratio == fit_quadratic(probes, 0.1, 0.8).ratio


# ---------------------------------------------------------------- episodes

_INST = Instance(
    "moving",
    (("base", "cliff"), ("o_start", 0.6), ("o_end", 0.35), ("schedule", "linear")),
    Noise(noise=0.03, jitter=0.03),
    seed=11,
)


def _run(seed=3, rounds=6, callback=None):
    env = make_env(_INST, rounds)
    agent = ThompsonController(env, seed=seed)
    agent.learn(seed=seed, callback=callback)
    return env, agent


def test_an_episode_stays_inside_the_range_and_is_deterministic_for_its_seed():
    env, agent = _run()
    probed = [r for h in env.unwrapped.history for r in h["candidates"]]
    assert len(env.unwrapped.history) == 6 and len(probed) == 18
    assert all(0.1 - 1e-6 <= r <= 0.8 + 1e-6 for r in probed)
    assert agent.result.rounds == 6 and agent.result.termination == "budget spent"
    env2, agent2 = _run()
    assert [h["candidates"] for h in env2.unwrapped.history] == [
        h["candidates"] for h in env.unwrapped.history
    ]
    assert agent2.result == agent.result and agent2.estimate() == agent.estimate()
    env3, _ = _run(seed=4)
    assert [h["candidates"] for h in env3.unwrapped.history] != [
        h["candidates"] for h in env.unwrapped.history
    ]


def test_a_round_checkpoint_resumes_to_the_same_result():
    full_env, full = _run()
    saved = {}

    def checkpoint(record):
        if record["round"] == 3 and not saved:  # after the third round closed
            saved["env"] = copy.deepcopy(full_env2.unwrapped.state_dict())
            saved["agent"] = json.loads(json.dumps(agent2.state_dict()))  # plain data

    full_env2 = make_env(_INST, 6)
    agent2 = ThompsonController(full_env2, seed=3)
    agent2.learn(seed=3, callback=checkpoint)
    assert saved
    env = make_env(_INST, 6)
    env.unwrapped.load_state_dict(saved["env"])
    resumed = ThompsonController(env, seed=3)
    resumed.load_state_dict(saved["agent"])
    resumed.learn(seed=3, resume=True)
    assert [h["candidates"] for h in env.unwrapped.history] == [
        h["candidates"] for h in full_env.unwrapped.history
    ]
    assert resumed.result == full.result
    assert resumed.estimate() == full.estimate()


def test_save_and_load_keep_the_estimate(tmp_path):
    env, agent = _run(rounds=4)
    agent.save(tmp_path / "agent.json")
    loaded = ThompsonController.load(tmp_path / "agent.json", make_env(_INST, 4))
    assert loaded.config == agent.config and loaded.estimate() == agent.estimate()
    action, _ = loaded.predict(None, deterministic=True)
    assert action.shape == (1,) and -1.0 <= float(action[0]) <= 1.0


# ---------------------------------------------------------------- opt-in probe allocations


def _bimodal_posterior(noise=0.05):
    """A posterior with two equally deep basins at 0.2 and 0.7 (grid step 0.1)."""
    grid = np.linspace(0.1, 0.8, 8)
    mean = np.where(np.isclose(grid, 0.2) | np.isclose(grid, 0.7), 0.0, 1.0)
    dense = np.ones(8, bool)
    return SplinePosterior(grid, mean, noise * np.eye(8), dense, 20, 1.0, 0.01, {})


def test_a_challenger_comes_from_the_other_basin_or_is_the_leader_when_settled():
    post = _bimodal_posterior()
    rng = np.random.default_rng(0)
    assert set(np.round(post.sample_argmins(rng, 200), 6)) == {0.2, 0.7}
    for leader in (0.2, 0.7):
        for _ in range(20):
            other = post.sample_challenger(rng, leader)
            assert abs(other - leader) == pytest.approx(0.5)
    settled = _bimodal_posterior(noise=0.0)
    settled = SplinePosterior(
        settled.grid, np.abs(settled.grid - 0.4), settled.factor, settled.dense, 20, 1.0, 0.0, {}
    )
    assert settled.sample_challenger(rng, 0.4) == 0.4


def test_top_two_replaces_leaders_by_challengers_and_one_is_plain_thompson():
    post = _bimodal_posterior()
    env = make_env(_INST, 6)
    plain = ThompsonController(env, ThompsonConfig(bracket=0.0), seed=5)
    plain.rng = np.random.default_rng(9)
    draws = plain._thompson_draws(post, 4)
    assert draws == list(post.sample_argmins(np.random.default_rng(9), 4))  # the same stream
    always = ThompsonController(env, ThompsonConfig(top_two=0.0, bracket=0.0), seed=5)
    for seed in range(10):
        always.rng = np.random.default_rng(seed)
        leader = float(post.sample_argmins(np.random.default_rng(seed), 1)[0])
        assert abs(always._thompson_draws(post, 1)[0] - leader) == pytest.approx(0.5)


def test_bracketing_moves_every_probe_after_the_first_beside_its_argmin():
    post = _bimodal_posterior()  # argmins at 0.2 or 0.7 (sd about 0.25); range [0.1, 0.8]
    beside = ThompsonController(make_env(_INST, 6), ThompsonConfig(bracket=0.5), seed=5)
    reflected = 0
    for rnd in range(4):
        for seed in range(5):
            beside.rng, rng = np.random.default_rng(seed), np.random.default_rng(seed)
            beside.round = rnd
            probes = beside._thompson_draws(post, 3)
            offset = min(0.5 * float(np.std(post.sample_argmins(rng, 32))), BRACKET_MAX)
            argmins = [float(post.sample_argmins(rng, 1)[0]) for _ in range(3)]  # same stream
            assert 0.1 < offset <= BRACKET_MAX
            assert probes[0] == argmins[0]  # the round's first posterior probe is unmoved
            for i in (1, 2):
                step = offset if (rnd + i) % 2 else -offset  # sides alternate
                if not 0.1 <= argmins[i] + step <= 0.8:
                    step, reflected = -step, reflected + 1  # at a bound: the other side
                assert probes[i] == pytest.approx(argmins[i] + step)
    assert reflected > 0  # both branches were exercised


def test_a_certain_minimum_keeps_its_bracketing_probes_at_the_argmin():
    flat = _bimodal_posterior(noise=0.0)  # no posterior spread: every draw is the mean
    mean = np.abs(flat.grid - 0.4)
    sure = SplinePosterior(flat.grid, mean, flat.factor, flat.dense, 20, 1.0, 0.0, {})
    agent = ThompsonController(make_env(_INST, 6), ThompsonConfig(bracket=2.5), seed=0)
    agent.round = 1
    assert agent._thompson_draws(sure, 3) == pytest.approx([0.4, 0.4, 0.4])


def test_a_greedy_probe_goes_to_the_posterior_means_argmin():
    rounds = _rounds(lambda t: lambda r: (r - 0.35) ** 2, _spread(5), np.linspace(2, 1, 5))
    probes = probes_of(rounds)
    env = make_env(_INST, 6, pstar_rule="spline")  # no cost: the plain mean's argmin
    agent = ThompsonController(env, ThompsonConfig(greedy=1), seed=0)
    agent.rounds, agent.ratios = probes.rounds.tolist(), probes.ratios.tolist()
    agent.losses, agent.round = probes.losses.tolist(), 5
    plan = agent._make_plan()
    post = spline_posterior(probes, 0.1, 0.8)
    assert len(plan) == 3
    assert plan[0] == pytest.approx(post.pessimistic_ratio(0.0, dense_only=False))
    assert plan[0] == pytest.approx(0.35, abs=0.02)


def test_the_low_anchor_probes_p_min_until_four_probes_lie_near_it():
    # probes spread over [0.3, 0.8]: none within the support width of p_min = 0.1
    rounds = _rounds(lambda t: lambda r: (r - 0.5) ** 2, _spread(5), np.linspace(2, 1, 5))
    probes = probes_of(rounds)
    keep = probes.ratios > 0.3

    def plan(rule="spline_recent_cost", extra=(), **cfg):
        env = make_env(_INST, 6, pstar_rule=rule)
        agent = ThompsonController(env, ThompsonConfig(**cfg), seed=0)
        agent.rounds = probes.rounds[keep].tolist() + [4] * len(extra)
        agent.ratios = probes.ratios[keep].tolist() + list(extra)
        agent.losses = probes.losses[keep].tolist() + [1.5] * len(extra)
        agent.round = 5
        out = agent._make_plan()
        golden = golden_points(agent.offset, agent.explored - 1, 1, 0.1, 0.8)[0]
        return out, golden

    anchored, golden = plan()
    assert len(anchored) == 3 and anchored[-1] == 0.1  # the exploring probe, moved to p_min
    assert golden != pytest.approx(0.1)
    for other in (
        plan(extra=(0.1, 0.12, 0.15, 0.17)),  # 4 probes within +-0.071 of p_min: eligible
        plan(rule="spline"),  # no final-run cost: p_min is not favoured
        plan(anchor=False),
    ):
        assert other[0][-1] == pytest.approx(other[1])  # the golden point itself
    assert plan(extra=(0.1, 0.12, 0.15))[0][-1] == 0.1  # 3 are not enough


def test_long_runs_spend_their_last_two_exploring_probes_at_p_max_then_p_min():
    def explored(rounds, rule="spline_recent_cost", **cfg):
        env = make_env(_INST, rounds, pstar_rule=rule)
        agent = ThompsonController(env, ThompsonConfig(**cfg), seed=1)
        agent.learn(seed=1)
        history = env.unwrapped.history
        assert len(history) == rounds
        return [h["candidates"][-1] for h in history]  # each round's exploring probe

    last = explored(12)
    assert last[-2:] == [pytest.approx(0.8), pytest.approx(0.1)]
    assert not any(r == pytest.approx(0.8) for r in last[:-2])  # p_max only at the end
    for other in (
        explored(12, end_probes=0),  # off
        explored(12, end_probes=13),  # a budget shorter than end_probes
        explored(12, rule="spline"),  # no final-run cost, no range to pin down
    ):
        assert other[-2] != pytest.approx(0.8)
    assert explored(6)[-2] != pytest.approx(0.8)  # the default threshold is 10 rounds


def test_exploit_rounds_stop_the_exploring_sequence_before_the_budget_ends():
    def explored(cfg):
        env = make_env(_INST, 6)
        agent = ThompsonController(env, cfg, seed=3)
        agent.learn(seed=3)
        assert len(env.unwrapped.history) == 6
        return agent.explored

    # the opening round's 3 points, then 1 per round; the last 2 rounds none
    assert explored(ThompsonConfig()) == 3 + 5
    assert explored(ThompsonConfig(exploit_rounds=2)) == 3 + 3


def test_the_new_thompson_settings_are_checked():
    with pytest.raises(ValueError, match="top_two"):
        ThompsonConfig(top_two=1.5)
    with pytest.raises(ValueError, match="greedy"):
        ThompsonConfig(greedy=-1)
    with pytest.raises(ValueError, match="exploit_rounds"):
        ThompsonConfig(exploit_rounds=-1)
    with pytest.raises(ValueError, match="anchor"):
        ThompsonConfig(anchor=1)
    with pytest.raises(ValueError, match="end_probes"):
        ThompsonConfig(end_probes=-1)
    for factor in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="bracket"):
            ThompsonConfig(bracket=factor)


def test_under_spline_cost_the_draws_aim_at_the_cost_adjusted_minimum():
    flat = Instance("flat_bottom", (("optimum", 0.45),), Noise(noise=0.01), seed=4)
    probed = {}
    for rule in ("spline", "spline_cost"):
        env = make_env(flat, 8, pstar_rule=rule)
        agent = ThompsonController(env, seed=2)
        agent.learn(seed=2)
        late = [r for h in env.unwrapped.history[4:] for r in h["candidates"]]
        probed[rule] = float(np.mean(late))
        if rule == "spline_cost":
            post = agent.posterior()
            shifted = agent._with_final_cost(post)
            span = float(np.ptp(post.mean))  # over the whole [p_min, p_max]
            slope = (post.grid - 0.1) / 0.7
            assert np.allclose(shifted.mean - post.mean, 0.5 * span * slope)
            assert np.array_equal(shifted.factor, post.factor)  # the uncertainty is unchanged
    assert probed["spline_cost"] < probed["spline"] - 0.02  # towards less pruning
