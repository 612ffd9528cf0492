import numpy as np
import pytest

from grasp_env.env import PSTAR_RULES, ControllerConfig, GraspLoRAEnv
from grasp_env.pstar import (
    CENTRE_SDS,
    RECENT_SUPPORT_WIDTH,
    Probes,
    SplinePosterior,
    bspline_basis,
    fit_quadratic,
    fit_spline,
    fit_spline_recent,
    probes_of,
    spline_posterior,
)
from grasp_env.synthetic import Curve, SyntheticProcess


def _rounds(f, ratio_sets, offsets, baseline=0.4):
    """Per round: (baseline ratio, L0, candidates, losses) with a per-round offset."""
    return [
        (baseline, c + f(baseline), ratios, [c + f(r) for r in ratios])
        for ratios, c in zip(ratio_sets, offsets, strict=True)
    ]


def test_quadratic_recovers_the_vertex_despite_round_offsets():
    f = lambda r: 2 * (r - 0.6) ** 2  # noqa: E731
    rounds = _rounds(f, [(0.2, 0.5, 0.7), (0.3, 0.6, 0.8), (0.1, 0.4, 0.65)], [3.0, 2.5, 2.0])
    fit = fit_quadratic(probes_of(rounds), 0.1, 0.8)
    assert fit.ratio == pytest.approx(0.6, abs=1e-3) and fit.n_points == 12


def test_quadratic_stays_in_the_probed_range_unless_asked_to_extrapolate():
    f = lambda r: (r - 0.75) ** 2  # noqa: E731
    probes = probes_of(_rounds(f, [(0.3, 0.35, 0.5)], [1.0]))
    assert fit_quadratic(probes, 0.1, 0.8).ratio == pytest.approx(0.5)
    assert fit_quadratic(probes, 0.1, 0.8, extrapolate=True).ratio == pytest.approx(0.75, abs=1e-3)


def test_probes_skip_non_finite_losses_and_fits_need_distinct_ratios():
    probes = probes_of([(0.4, 1.0, (0.5, 0.6, 0.7), (0.9, float("nan"), 0.95))])
    assert len(probes) == 3 and probes.distinct == 3
    assert fit_quadratic(probes_of([(0.4, 1.0, (0.4, 0.5), (1.0, 0.9))]), 0.1, 0.8) is None


def test_bspline_basis_is_a_partition_of_unity():
    x = np.linspace(0, 1, 101)
    basis = bspline_basis(x)
    np.testing.assert_allclose(basis.sum(axis=1), 1.0, atol=1e-12)
    assert (basis >= 0).all() and basis.shape == (101, 17)


def _dense_rounds(f, n_rounds=12, seed=0):
    rng = np.random.default_rng(seed)
    sets = [tuple(rng.uniform(0.1, 0.8, 3)) for _ in range(n_rounds)]
    return _rounds(f, sets, list(np.linspace(2.0, 1.0, n_rounds)))


def test_spline_equals_the_quadratic_on_an_exact_parabola():
    # the third-difference penalty leaves quadratics unpenalised: no smoothing bias
    probes = probes_of(_dense_rounds(lambda r: (r - 0.47) ** 2))
    fit = fit_spline(probes, 0.1, 0.8)
    assert fit.grid[np.argmin(fit.curve)] == pytest.approx(0.47, abs=0.002)
    # p* itself is searched where >= 4 probes lie within +-0.05 (three do at 0.47 here)
    assert fit.ratio == pytest.approx(0.47, abs=0.01)


def test_spline_follows_an_asymmetric_valley_that_biases_the_quadratic():
    # flat below the optimum, steep above it (the QA en->ar grid's shape), no noise
    curve = Curve("flat_left", 0.6)
    probes = probes_of(_dense_rounds(lambda r: 0.3 * float(curve(r)), n_rounds=15))
    spline = fit_spline(probes, 0.1, 0.8).ratio
    quadratic = fit_quadratic(probes, 0.1, 0.8).ratio
    assert curve.regret(spline) < 0.005
    assert abs(quadratic - 0.6) > 0.05 and curve.regret(quadratic) > 3 * curve.regret(spline)


def test_spline_searches_only_where_the_run_probed_densely():
    # a lone probe at 0.78 with a low loss must not become p*: 4 probes within +-0.05 needed
    f = lambda r: (r - 0.4) ** 2  # noqa: E731
    rounds = _dense_rounds(f, seed=1)
    rounds = [(p, l0, [min(r, 0.6) for r in rs], ls) for p, l0, rs, ls in rounds]
    probes = probes_of(rounds)
    lone = Probes(
        np.append(probes.rounds, 0),
        np.append(probes.ratios, 0.78),
        np.append(probes.losses, probes.losses.min() - 1.0),
    )
    assert fit_spline(lone, 0.1, 0.8).ratio < 0.65


def test_spline_recent_searches_within_one_knot_spacing():
    # bracketed probes 0.07 either side of a minimum at 0.6: none lies within +-0.05 of it
    rng = np.random.default_rng(3)
    ratios = np.array([0.15, 0.3, 0.45, 0.75] + [0.53, 0.67] * 4)
    rounds = np.array([0, 0, 0, 0] + [1, 1, 2, 2, 3, 3, 4, 4])
    losses = (ratios - 0.6) ** 2 + 0.1 * rounds[::-1] / 4 + 1e-4 * rng.standard_normal(12)
    probes = Probes(rounds, ratios, losses)
    assert RECENT_SUPPORT_WIDTH == pytest.approx(1 / 14)
    wide = spline_posterior(probes, 0.1, 0.8)
    narrow = spline_posterior(probes, 0.1, 0.8, support_width=0.05)
    at = int(np.argmin(np.abs(wide.grid - 0.6)))
    assert wide.dense[at] and not narrow.dense[at]
    assert fit_spline_recent(probes, 0.1, 0.8).ratio == pytest.approx(0.6, abs=0.01)
    assert abs(fit_spline_recent(probes, 0.1, 0.8, support_width=0.05).ratio - 0.6) >= 0.0175


@pytest.mark.parametrize("width", [0.0, -0.05, float("nan")])
def test_a_search_region_without_width_is_refused_with_the_fix(width):
    probes = probes_of(_dense_rounds(lambda r: (r - 0.4) ** 2, n_rounds=3))
    with pytest.raises(ValueError, match=r"support_width=.*fix: give a positive half-width"):
        fit_spline_recent(probes, 0.1, 0.8, support_width=width)


def _posterior(mean, dense=None, noise=0.5, centre=CENTRE_SDS):
    grid = np.linspace(0.1, 0.8, len(mean))
    dense = np.ones(len(mean), bool) if dense is None else np.asarray(dense, bool)
    factor = noise * np.eye(len(mean))
    return SplinePosterior(grid, np.asarray(mean, float), factor, dense, 30, 1.0, 0.1, {}, centre)


def test_p_star_is_the_weighted_centre_of_the_near_minimal_stretch():
    # a flat bottom that slopes gently to the right and steeply to the left
    mean = [5.0, 4.0, 3.0, 0.6, 0.1, 0.0, 0.05, 0.2, 2.0, 4.0]
    post = _posterior(mean)
    width = CENTRE_SDS * post.shape_sd[5]
    assert width == pytest.approx(0.5 * np.sqrt(9 / 10))  # one sd: 0.474
    weight = 1 - np.array([0.1, 0.0, 0.05, 0.2]) / width  # 0.6 and 2.0 lie above the threshold
    expected = float(np.dot(post.grid[4:8], weight) / weight.sum())
    assert post.ratio == pytest.approx(expected)
    assert post.ratio > post.grid[5]  # pulled towards the flatter side, off the argmin
    assert post.centred_ratio(0.0) == post.grid[5] == _posterior(mean, centre=0.0).ratio


def test_the_stretch_is_contiguous_and_stays_where_the_run_probed_densely():
    mean = [0.02, 0.01, 3.0, 0.03, 0.0, 0.04, 0.02, 3.0, 3.0, 3.0]
    post = _posterior(mean)
    assert post.grid[3] < post.ratio < post.grid[6]  # the dip at index 0-1 lies beyond a rise
    sparse = _posterior(mean, dense=[1, 1, 1, 1, 1, 0, 0, 1, 1, 1])
    assert sparse.ratio == pytest.approx(
        np.dot(sparse.grid[3:5], [1 - 0.03 / (0.5 * np.sqrt(0.9)), 1]) / (2 - 0.03 / 0.474342),
        rel=1e-4,
    )


@pytest.mark.parametrize("centre", [-0.5, float("nan"), float("inf")])
def test_a_negative_or_non_finite_centre_is_refused_with_the_fix(centre):
    probes = probes_of(_dense_rounds(lambda r: (r - 0.4) ** 2, n_rounds=3))
    with pytest.raises(ValueError, match=r"centre=.*fix: give a finite centre >= 0"):
        fit_spline_recent(probes, 0.1, 0.8, centre=centre)


def test_env_learns_a_known_optimum_and_the_default_rule_adds_the_final_runs_cost():
    env = GraspLoRAEnv(
        process=SyntheticProcess(0.62),
        controller=ControllerConfig(train_steps=200, update_interval=10),
    )
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, done, _, _ = env.step(rng.uniform(-1, 1, size=1).astype(np.float32))
    assert len(env.history) == 20
    assert env.config.pstar_rule == "spline_recent_cost"
    assert abs(env.learned_ratio("spline") - 0.62) <= 0.05  # the probed curve's minimum
    assert abs(env.learned_ratio("spline_recent_cost") - 0.62) > 0.02  # moved by the cost
    assert env.learned_ratio() < env.learned_ratio("spline_recent")  # towards less pruning
    result = env.episode_result()
    assert result.learned_ratio == env.learned_ratio("spline_recent_cost")
    assert result.rounds == 20
    assert set(result.learned_ratio_by_rule) == set(PSTAR_RULES)  # every rule, every episode
    assert {"spline", "spline_recent_cost", "best_reward"} <= set(PSTAR_RULES)


def test_custom_process_needs_a_budget():
    with pytest.raises(ValueError, match="train_steps=None"):
        GraspLoRAEnv(process=SyntheticProcess(0.5))


def test_divergence_terminates_with_the_reason():
    class Diverging(SyntheticProcess):
        def train(self, k):
            out = super().train(k)
            return out[:-1] + [float("nan")] if self.steps_done > 20 else out

    env = GraspLoRAEnv(
        process=Diverging(0.5), controller=ControllerConfig(train_steps=100, update_interval=10)
    )
    env.reset(seed=0)
    steps, terminated, info = 0, False, {}
    while not terminated:
        _, _, terminated, _, info = env.step(np.zeros(1, dtype=np.float32))
        steps += 1
    assert info["termination"].startswith("diverged") and steps == 6  # rounds 0 and 1, 3 probes
    with pytest.raises(RuntimeError, match="after the episode ended"):
        env.step(np.zeros(1, dtype=np.float32))


def test_a_process_that_takes_no_step_ends_the_episode():
    class Stalled(SyntheticProcess):
        def train(self, k):
            return []  # never advances steps_done

    env = GraspLoRAEnv(
        process=Stalled(0.5), controller=ControllerConfig(train_steps=100, update_interval=10)
    )
    _, info = env.reset(seed=0)
    assert info["termination"].startswith("stalled")
    with pytest.raises(RuntimeError, match="after the episode ended"):
        env.step(np.zeros(1, dtype=np.float32))
