import numpy as np
import pytest

from grasp_env.env import GraspLoRAEnv
from grasp_env.pstar import fit_pstar
from grasp_env.synthetic import SyntheticProcess


def test_fit_recovers_the_vertex_despite_round_offsets():
    # L = c_t + 2 * (rho - 0.6)^2 exactly, with a different offset c_t per round
    rounds = []
    for t, ratios in enumerate([(0.2, 0.5, 0.7), (0.3, 0.6, 0.8), (0.1, 0.4, 0.65)]):
        c = 3.0 - 0.5 * t
        f = lambda r, c=c: c + 2 * (r - 0.6) ** 2  # noqa: E731
        rounds.append((0.4, f(0.4), ratios, [f(r) for r in ratios]))
    fit = fit_pstar(rounds, 0.1, 0.8)
    assert fit.ratio == pytest.approx(0.6, abs=1e-3)
    assert fit.curvature == pytest.approx(2.0) and fit.n_points == 12


def test_fit_picks_the_better_end_when_the_curve_is_monotone():
    rounds = [(0.4, 1.0 - 0.4, (0.2, 0.6), (1.0 - 0.2, 1.0 - 0.6))]  # L = 1 - rho
    # by default p* stays inside the probed range [0.2, 0.6]; extrapolating reaches the bound
    assert fit_pstar(rounds, 0.1, 0.8).ratio == pytest.approx(0.6)
    assert fit_pstar(rounds, 0.1, 0.8, extrapolate=True).ratio == pytest.approx(0.8)


def test_fit_does_not_extrapolate_a_valley_beyond_the_probes():
    # a valley at 0.75 seen only through probes in [0.3, 0.5]
    f = lambda r: 1.0 + (r - 0.75) ** 2  # noqa: E731
    rounds = [(0.4, f(0.4), (0.3, 0.35, 0.5), [f(r) for r in (0.3, 0.35, 0.5)])]
    assert fit_pstar(rounds, 0.1, 0.8).ratio == pytest.approx(0.5)
    assert fit_pstar(rounds, 0.1, 0.8, extrapolate=True).ratio == pytest.approx(0.75, abs=1e-3)


def test_fit_needs_three_distinct_ratios_and_skips_non_finite_losses():
    assert fit_pstar([(0.4, 1.0, (0.4, 0.5), (1.0, 0.9))], 0.1, 0.8) is None
    rounds = [(0.4, 1.0, (0.5, 0.6, 0.7), (0.9, float("nan"), 0.95))]
    assert fit_pstar(rounds, 0.1, 0.8).n_points == 3


def test_env_on_the_synthetic_process_learns_a_known_optimum_with_the_fit_rule():
    env = GraspLoRAEnv(process=SyntheticProcess(0.62), train_steps=200, update_interval=10)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, done, _, _ = env.step(rng.uniform(-1, 1, size=1).astype(np.float32))
    assert len(env.history) == 20
    assert abs(env.learned_ratio("fit") - 0.62) <= 0.05
    assert env.learned_ratio() == env.learned_ratio("fit")  # the default rule


def test_custom_process_needs_a_budget():
    with pytest.raises(ValueError, match="train_steps=None"):
        GraspLoRAEnv(process=SyntheticProcess(0.5))


def test_divergence_terminates_with_the_reason():
    class Diverging(SyntheticProcess):
        def train(self, k):
            out = super().train(k)
            return out[:-1] + [float("nan")] if self.steps_done > 20 else out

    env = GraspLoRAEnv(process=Diverging(0.5), train_steps=100, update_interval=10)
    env.reset(seed=0)
    steps, terminated, info = 0, False, {}
    while not terminated:
        _, _, terminated, _, info = env.step(np.zeros(1, dtype=np.float32))
        steps += 1
    assert info["termination"].startswith("diverged") and steps == 6  # rounds 0 and 1, 3 probes
    with pytest.raises(RuntimeError, match="after the episode ended"):
        env.step(np.zeros(1, dtype=np.float32))
