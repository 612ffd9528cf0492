"""The drift term's time profile and order (grasp_env.pstar.spline_posterior).

The real process's probe curves move fast early and slowly late, and a shifting optimum changes
the curve along a bent path (f(x - m) is not linear in m): the round-aware spline reads the
last round's curve through a drift term whose time profile REML chooses (order 1 by default;
order 2, a change that bends, is offered).
"""

import numpy as np
import pytest

from grasp_env.pstar import DRIFT_ORDERS, DRIFT_RATES, Probes, drift_profile, spline_posterior


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


def test_the_default_model_lets_reml_choose_among_linear_and_saturating_profiles():
    assert DRIFT_ORDERS == (1,) and 0.0 in DRIFT_RATES and max(DRIFT_RATES) > 0


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_an_optimum_that_moves_fast_early_is_read_at_its_end_position(seed):
    probes = _moving(seed, k=3.0)
    default = spline_posterior(probes, 0.1, 0.8)
    bent = spline_posterior(probes, 0.1, 0.8, drift_orders=(2,))
    linear = spline_posterior(probes, 0.1, 0.8, drift_orders=(1,), drift_rates=(0.0,))
    assert default.hyper["drift_rate"] > 0  # REML saw the move was fast early
    assert default.ratio == pytest.approx(0.35, abs=0.02)
    assert bent.ratio == pytest.approx(0.35, abs=0.01)  # order 2 follows the shift closer still
    assert abs(linear.ratio - 0.35) > 0.03  # the model before: one linear direction overshoots


@pytest.mark.parametrize(("true_rate", "chosen"), [(0.0, 0.0), (4.0, 4.0)])
def test_reml_chooses_the_profile_the_curve_moved_along(true_rate, chosen):
    rng = np.random.default_rng(7)
    t = np.repeat(np.arange(12), 6)
    x = rng.uniform(0.1, 0.8, t.size)
    s = drift_profile(t / 11, true_rate)
    y = (x - 0.45) ** 2 + s * 0.6 * (x - 0.45) + 0.1 * t + 0.002 * rng.standard_normal(t.size)
    post = spline_posterior(Probes(t, x, y), 0.1, 0.8, drift_orders=(1,), drift_rates=(0.0, 4.0))
    assert post.hyper["drift_rate"] == chosen


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"drift_rates": (-1.0,)}, "drift_rates"),
        ({"drift_rates": (float("nan"),)}, "drift_rates"),
        ({"drift_rates": ()}, "drift_rates"),
        ({"drift_orders": (0,)}, "drift_orders"),
        ({"drift_orders": (4,)}, "drift_orders"),
        ({"drift_orders": (True,)}, "drift_orders"),
    ],
)
def test_a_bad_drift_profile_or_order_is_refused_with_the_fix(kwargs, field):
    with pytest.raises(ValueError, match=rf"{field}=.*fix: give"):
        spline_posterior(_moving(0, 0.0, rounds=4), 0.1, 0.8, **kwargs)


def test_without_drift_the_profile_and_order_are_not_read():
    post = spline_posterior(_moving(0, 0.0, rounds=4), 0.1, 0.8, drift=False, drift_orders=(4,))
    assert post.hyper["drift_rate"] is None and post.hyper["drift_penalty"] is None


def test_the_curve_at_the_first_round_reads_every_power_of_the_drift():
    # ahead=-1 reads f - h1 + h2 (s = -1): the optimum where the run started, not where it ended
    probes = _moving(0, k=0.0)
    first = spline_posterior(probes, 0.1, 0.8, ahead=-1.0, drift_orders=(2,))
    assert first.ratio == pytest.approx(0.62, abs=0.03)


def test_reml_may_choose_the_order_and_says_which():
    post = spline_posterior(_moving(1, k=3.0), 0.1, 0.8, drift_orders=(1, 2))
    assert post.hyper["drift_order"] in (1, 2)
    assert spline_posterior(_moving(1, k=3.0), 0.1, 0.8).hyper["drift_order"] == 1


def _direct_reml_penalty(probes):
    """The curve penalty minimising REML computed the slow, direct way (no drift, no jitter)."""
    from grasp_env.pstar import _REML_LAMBDAS, _round_dummies, bspline_basis

    x, y, t = probes.ratios, probes.losses, probes.rounds
    basis = bspline_basis(x)
    nb = basis.shape[1]
    design = np.column_stack([basis, _round_dummies(t, True)])
    n, size = design.shape
    d3 = np.diff(np.eye(nb), 3, axis=0)
    pen = np.zeros((size, size))
    pen[:nb, :nb] = d3.T @ d3
    gram = design.T @ design
    gram += 1e-8 * np.trace(gram) / size * np.eye(size)
    moment = design.T @ y
    free = 3 + len(np.unique(t)) - 1

    def crit(lam):
        a = gram + lam * pen
        dev = y @ y - moment @ np.linalg.solve(a, moment)
        logdet = np.linalg.slogdet(a)[1]
        return (n - free) * np.log(dev / (n - free)) + logdet - (nb - 3) * np.log(lam)

    return min(_REML_LAMBDAS, key=crit)


def test_reml_picks_the_penalty_a_direct_computation_picks():
    # an eigh of the whole ill-conditioned system (condition ~1e9) gave its null directions
    # eigenvalues near 1e-6 and chose another penalty on 13 of these 30 sets; the thin SVD none
    for seed in range(30):
        rng = np.random.default_rng(seed)
        t = np.repeat(np.arange(15), 4)
        x = rng.uniform(0.1, 0.8, t.size)
        y = 0.3 * np.abs(x - 0.5) ** 1.5 + 0.05 * t + 0.01 * rng.standard_normal(t.size)
        probes = Probes(t, x, y)
        post = spline_posterior(probes, 0.1, 0.8, drift=False, jitter=(0.0,))
        assert post.penalty == _direct_reml_penalty(probes), seed
