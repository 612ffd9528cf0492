"""Rule 'spline_cost' (grasp_env.pstar.fit_spline_cost): the pooled curve plus the final cost."""

import numpy as np
import pytest

from agents import make_agent
from grasp_env.pstar import FINAL_COST, Probes, fit_spline_cost, spline_posterior
from grasp_env.surrogate import FINAL_COST as SURROGATE_COST
from grasp_env.surrogate import Instance, Noise, make_env


def _probes(curve, rounds=6, seed=0, noise=0.002):
    rng = np.random.default_rng(seed)
    x = np.tile(np.linspace(0.1, 0.8, 10), rounds)
    t = np.repeat(np.arange(rounds), 10)
    return Probes(t, x, np.array([curve(v) for v in x]) + 0.05 * t + rng.normal(0, noise, x.size))


def _flat_then_cliff(x):
    return 1.0 + 8.0 * max(0.0, x - 0.55) ** 2


def test_without_cost_it_is_the_pooled_curves_argmin_and_the_cost_moves_it_down():
    probes = _probes(lambda x: (x - 0.5) ** 2)
    pooled = spline_posterior(probes, 0.1, 0.8, drift=False)
    assert fit_spline_cost(probes, 0.1, 0.8, 0.0).ratio == pytest.approx(
        float(pooled.grid[np.argmin(pooled.mean)])
    )
    with_cost = fit_spline_cost(probes, 0.1, 0.8, 0.5).ratio
    # (x - 0.5)^2 + 0.5 * 0.16 * (x - 0.1) / 0.7 is least at 0.5 - 0.04 / 0.7 = 0.443
    assert with_cost == pytest.approx(0.5 - 0.04 / 0.7, abs=0.02)


def test_on_a_flat_stretch_the_cost_picks_its_low_end():
    probes = _probes(_flat_then_cliff, seed=1)
    assert fit_spline_cost(probes, 0.1, 0.8).ratio < 0.15
    assert fit_spline_cost(probes, 0.1, 0.8, 0.0).ratio > 0.2


def test_bad_cost_is_refused_and_one_constant_serves_rule_and_surrogate():
    with pytest.raises(ValueError, match="cost=nan.*fix"):
        fit_spline_cost(_probes(_flat_then_cliff), 0.1, 0.8, float("nan"))
    assert FINAL_COST == SURROGATE_COST == 0.5


@pytest.mark.parametrize("rule", ["spline_cost", "spline_recent_cost"])
def test_the_env_reads_the_rule_with_its_configured_cost(rule):
    inst = Instance("symmetric", (("optimum", 0.5),), Noise(noise=0.01), final_cost=0.5)
    ratios = {}
    for cost in (0.0, 1.0):
        env = make_env(inst, rounds=6, pstar_rule=rule, final_cost=cost)
        make_agent("random", env, seed=0).learn(seed=0)
        result = env.episode_result()
        assert result.learned_ratio == result.learned_ratio_by_rule[rule]
        ratios[cost] = result.learned_ratio
    assert ratios[1.0] < ratios[0.0]


def test_the_cost_unit_is_the_curves_range_over_the_whole_grid_not_where_probed_densely():
    """Probes crowded at the minimum must not shrink the cost (the surrogate's and live unit)."""
    rng = np.random.default_rng(3)
    spread = [0.1, 0.25, 0.4, 0.65, 0.8]  # 0.15 apart: 3 probes within +-0.071 of each
    x = np.concatenate([np.tile(spread, 3), rng.uniform(0.45, 0.55, 30)])
    t = np.concatenate([np.repeat(np.arange(3), 5), np.repeat(np.arange(3), 10)])
    probes = Probes(t, x, (x - 0.5) ** 2 + rng.normal(0, 1e-4, x.size))
    post = spline_posterior(probes, 0.1, 0.8, drift=False)
    assert not post.dense[0]  # the low edge is sparsely probed: the former unit missed it
    # the whole range is 0.16 (at 0.1): the cost's slope 0.5 * 0.16 / 0.7 moves the minimum
    # of (x - 0.5)^2 to 0.5 - 0.04 / 0.7 = 0.443; the dense stretch's range alone (about
    # 0.005) would leave it near 0.5
    assert fit_spline_cost(probes, 0.1, 0.8).ratio == pytest.approx(0.443, abs=0.02)


def test_spline_recent_cost_reads_the_last_rounds_curve_where_the_optimum_moves():
    """An optimum moving from 0.7 to 0.4: the last round's curve + cost, not the average's."""
    rounds, x = 8, np.tile(np.linspace(0.1, 0.8, 15), 8)
    t = np.repeat(np.arange(rounds), 15)
    centre = 0.7 - 0.3 * t / (rounds - 1)
    rng = np.random.default_rng(5)
    probes = Probes(t, x, (x - centre) ** 2 + rng.normal(0, 1e-4, x.size))
    # the last round's curve (x - 0.4)^2 spans 0.16 over [0.1, 0.8]: with the cost its
    # minimum is 0.4 - 0.04 / 0.7 = 0.343
    recent = fit_spline_cost(probes, 0.1, 0.8, drift=True).ratio
    assert recent == pytest.approx(0.4 - 0.04 / 0.7, abs=0.03)
    assert fit_spline_cost(probes, 0.1, 0.8).ratio > recent + 0.05  # pooled: the average


def test_curve_plus_cost_is_one_definition_for_a_curve_a_stack_and_a_given_span():
    from grasp_env.pstar import plus_final_cost

    grid = np.linspace(0.1, 0.8, 8)
    curve = (grid - 0.4) ** 2
    slope = (grid - 0.1) / 0.7
    one = plus_final_cost(curve, grid, 0.5, 0.1, 0.8)
    assert np.allclose(one, curve + 0.5 * np.ptp(curve) * slope)
    stack = plus_final_cost(np.stack([curve, 3 * curve]), grid, 0.5, 0.1, 0.8)
    assert np.allclose(stack[1], 3 * curve + 0.5 * 3 * np.ptp(curve) * slope)  # each row's own
    given = plus_final_cost(curve, grid, 0.5, 0.1, 0.8, span=2.0)
    assert np.allclose(given, curve + slope)
    assert float(plus_final_cost(1.0, 0.8, 0.5, 0.1, 0.8, span=2.0)) == 2.0  # a point: its span
