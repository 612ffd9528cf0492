"""scripts/drift_profile_check.py: the live movement's projection and its least-squares rate."""

import numpy as np
import pytest

from grasp_env.pstar import drift_profile


@pytest.fixture(scope="module")
def check(load_script):
    return load_script("drift_profile_check")


def test_the_movement_runs_from_one_to_zero_along_the_runs_change(check):
    grid = np.linspace(0.1, 0.8, 15)
    u = np.arange(11) / 10
    ahead = -drift_profile(u, 3.0)  # share of the move still ahead: 1 ... 0
    start, end = (grid - 0.6) ** 2, (grid - 0.3) ** 2
    curves = ahead[:, None] * start + (1 - ahead)[:, None] * end + 5.0 * u[:, None]
    s = check.movement(curves)
    assert s[0] == pytest.approx(1.0) and s[-1] == pytest.approx(0.0, abs=1e-12)
    assert np.allclose(s, ahead)  # a per-round offset does not move it (curves are centred)


@pytest.mark.parametrize("rate", [0.0, 1.5, 4.0])
def test_the_least_squares_rate_recovers_the_profile_the_curve_moved_along(check, rate):
    s = -drift_profile(np.arange(15) / 14, rate)
    k, sse, sse_linear = check.best_rate(s)
    assert k == rate and sse == pytest.approx(0.0, abs=1e-20)
    assert (sse_linear > 0.01) == (rate > 0)


def test_the_figure_is_written(check, tmp_path):
    out = tmp_path / "img" / "drift.png"
    check.plot_movement([("summarization ar s1", np.array([1.0, 0.5, 0.0]))], out)
    assert out.stat().st_size > 1000
