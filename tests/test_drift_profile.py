"""The drift term's time profile and order (grasp_env.pstar.spline_posterior).

The real process's probe curves move fast early and slowly late, and a shifting optimum changes
the curve along a bent path (f(x - m) is not linear in m): the round-aware spline reads the
last round's curve through a drift term whose profile REML chooses and whose order is 2.
"""

import numpy as np
import pytest

from grasp_env.pstar import DRIFT_ORDER, DRIFT_RATES, Probes, drift_profile, spline_posterior


def _moving(seed, k, rounds=15, per=5, o_start=0.62, o_end=0.35, noise=0.02):
    """Probes of a parabola whose optimum moves from o_start to o_end along profile k."""
    rng = np.random.default_rng(seed)
    r, x, y = [], [], []
    for t in range(rounds):
        m = o_start + (o_end - o_start) * (1 + drift_profile(t / (rounds - 1), k))
        for ratio in rng.uniform(0.1, 0.8, per):
            r.append(t)
            x.append(ratio)
            y.append(((ratio - m) / 0.3) ** 2 + 0.5 * t + noise * rng.standard_normal())
    return Probes(np.array(r), np.array(x), np.array(y))


@pytest.mark.parametrize("rate", [0.0, 1.5, 4.0])
def test_the_profile_runs_from_the_first_round_to_the_last(rate):
    u = np.linspace(0, 1, 11)
    s = drift_profile(u, rate)
    assert s[0] == pytest.approx(-1.0) and s[-1] == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.diff(s) > 0)
    moved_by_a_quarter = 1 + float(drift_profile(0.25, rate))
    if rate == 0:
        assert moved_by_a_quarter == pytest.approx(0.25)
    else:  # a saturating move covers more than its share of the run early
        assert moved_by_a_quarter == pytest.approx(np.expm1(-rate / 4) / np.expm1(-rate))
        assert moved_by_a_quarter > 0.4


def test_the_default_model_bends_and_lets_reml_choose_among_profiles():
    assert DRIFT_ORDER == 2 and 0.0 in DRIFT_RATES and max(DRIFT_RATES) > 0


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_an_optimum_that_moves_fast_early_is_read_at_its_end_position(seed):
    probes = _moving(seed, k=3.0)
    new = spline_posterior(probes, 0.1, 0.8)
    linear = spline_posterior(probes, 0.1, 0.8, drift_order=1, drift_rates=(0.0,))
    assert new.ratio == pytest.approx(0.35, abs=0.01)
    assert abs(linear.ratio - 0.35) > 0.03  # the model before: one linear direction overshoots


@pytest.mark.parametrize(("true_rate", "chosen"), [(0.0, 0.0), (4.0, 4.0)])
def test_reml_chooses_the_profile_the_curve_moved_along(true_rate, chosen):
    rng = np.random.default_rng(7)
    t = np.repeat(np.arange(12), 6)
    x = rng.uniform(0.1, 0.8, t.size)
    s = drift_profile(t / 11, true_rate)
    y = (x - 0.45) ** 2 + s * 0.6 * (x - 0.45) + 0.1 * t + 0.002 * rng.standard_normal(t.size)
    post = spline_posterior(Probes(t, x, y), 0.1, 0.8, drift_order=1, drift_rates=(0.0, 4.0))
    assert post.hyper["drift_rate"] == chosen


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"drift_rates": (-1.0,)}, "drift_rates"),
        ({"drift_rates": (float("nan"),)}, "drift_rates"),
        ({"drift_rates": ()}, "drift_rates"),
        ({"drift_order": 0}, "drift_order"),
        ({"drift_order": 4}, "drift_order"),
        ({"drift_order": True}, "drift_order"),
    ],
)
def test_a_bad_drift_profile_or_order_is_refused_with_the_fix(kwargs, field):
    with pytest.raises(ValueError, match=rf"{field}=.*fix: give"):
        spline_posterior(_moving(0, 0.0, rounds=4), 0.1, 0.8, **kwargs)


def test_without_drift_the_profile_and_order_are_not_read():
    post = spline_posterior(_moving(0, 0.0, rounds=4), 0.1, 0.8, drift=False, drift_order=4)
    assert post.hyper["drift_rate"] is None and post.hyper["drift_penalty"] is None


def test_the_curve_at_the_first_round_reads_every_power_of_the_drift():
    # ahead=-1 reads f - h1 + h2 (s = -1): the optimum where the run started, not where it ended
    probes = _moving(0, k=0.0)
    first = spline_posterior(probes, 0.1, 0.8, ahead=-1.0)
    assert first.ratio == pytest.approx(0.62, abs=0.03)
