"""The controller run's edge rules, each checked with a margin no tolerance can hide.

Every test here was checked against the bug it targets: the bug planted in the code, the test
failing, the bug removed (scripts/planted_bugs.py plants each one and runs its test).
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agents.grpo_math import GaussianPolicy, natural_update
from grasp_env.config import ControllerConfig
from grasp_env.env import GraspLoRAEnv, commit_ratio
from grasp_env.synthetic import SyntheticProcess

ROOT = Path(__file__).resolve().parents[1]


class Flat(SyntheticProcess):
    """A noise-free stand-in whose loss is fixed per ratio: rewards are exact."""

    def __init__(self, losses):
        super().__init__(0.5, noise=0.0)
        self.table = losses

    def expected_loss(self, ratio):
        return float(self.table(ratio))


def _env(process, **controller):
    return GraspLoRAEnv(process=process, controller=ControllerConfig(**controller))


def _step(env, ratio):
    return env.step(env.config.action_of(ratio))


# ------------------------------------------------------------------------- the commit rule


def test_a_commit_moves_at_most_max_step_delta_both_ways():
    cfg = ControllerConfig(max_step_delta=0.1)
    assert commit_ratio(0.4, [0.8], [1.0], cfg)[0] == pytest.approx(0.5)  # up: +0.1, not 0.8
    assert commit_ratio(0.6, [0.1], [1.0], cfg)[0] == pytest.approx(0.5)  # down: -0.1, not 0.1
    assert commit_ratio(0.45, [0.4], [1.0], cfg)[0] == pytest.approx(0.4)  # within: all the way


def test_the_committed_mask_is_built_at_the_clipped_ratio_and_the_reference_at_the_candidate():
    # the candidate 0.8 beats L0; the commit moves 0.4 -> 0.5 (clipped): the mask follows 0.5
    for mask, expected in (("committed", 0.5), ("candidate", 0.8)):
        env = _env(Flat(lambda r: 1.0 - r), train_steps=30, group_size=2, commit_mask=mask)
        env.reset(seed=0)
        _step(env, 0.8)
        _step(env, 0.2)
        round_ = env.history[0]
        assert round_["committed_ratio"] == pytest.approx(0.5)
        assert round_["achieved_sparsity"] == pytest.approx(expected)


def test_a_budget_that_is_not_a_multiple_of_k_is_never_overshot():
    env = _env(SyntheticProcess(0.5), train_steps=25, update_interval=10)
    env.reset(seed=0)
    done = False
    while not done:
        *_, done, _, info = _step(env, 0.5)
    assert env.process.steps_done == 25 and len(env.history) == 3  # 10 + 10 + 5
    assert info["termination"] == "budget spent"


def test_the_relative_reward_divides_by_the_baseline_loss():
    env = _env(Flat(lambda r: 2.0 + r), train_steps=20, reward_mode="relative")
    _, info = env.reset(seed=0)
    l0 = info["baseline_loss"]  # unpruned: the loss at ratio 0 = 2.0 (+ the trend)
    _, reward, *_ = _step(env, 0.5)
    assert reward == pytest.approx((l0 - (l0 + 0.5)) / l0)  # -0.5 / L0, not / L(candidate)
    assert reward != pytest.approx(-0.5 / (l0 + 0.5), abs=1e-3)


# ---------------------------------------------------------------------------- p* fallbacks


def test_the_fitted_rules_fall_back_when_they_have_too_few_ratios():
    from grasp_env.pstar import Probes, fit_quadratic, fit_spline

    two = Probes(np.array([0, 0, 0]), np.array([0.2, 0.5, 0.5]), np.array([1.0, 0.5, 0.5]))
    assert fit_spline(two, 0.1, 0.8) is None and fit_quadratic(two, 0.1, 0.8) is None
    three = Probes(np.zeros(3, int), np.array([0.2, 0.4, 0.6]), np.array([1.0, 0.2, 1.0]))
    spline, quad = fit_spline(three, 0.1, 0.8), fit_quadratic(three, 0.1, 0.8)
    assert spline is not None and spline.ratio == pytest.approx(quad.ratio)  # the quadratic
    assert spline.ratio == pytest.approx(0.4, abs=1e-3)
    # in the env: with fewer than three distinct ratios p* is the committed ratio
    env = _env(Flat(lambda r: 1.0 + (r - 0.6) ** 2), train_steps=10, group_size=2)
    env.reset(seed=0)
    _step(env, 0.6)
    _step(env, 0.6)  # ratios seen: 0 (L0, unpruned) and 0.6: two
    assert env.learned_ratio("spline") == env.learned_ratio("last_committed") == env.committed


# ------------------------------------------------------------------------------ the policy


def test_the_natural_update_clips_the_mean_step_both_ways():
    policy = GaussianPolicy(0.45, 0.1)
    up = natural_update(policy, np.array([0.35, 0.55]), np.array([-50.0, 50.0]), 0.45)
    down = natural_update(policy, np.array([0.35, 0.55]), np.array([50.0, -50.0]), 0.45)
    assert up.mu == pytest.approx(0.45 + 0.20) and down.mu == pytest.approx(0.45 - 0.20)


def test_the_controller_keeps_sigma_under_half_the_range_of_its_own_bounds():
    from agents.grpo import GRPOController
    from grasp_env.config import GRPOConfig

    env = _env(SyntheticProcess(0.5), train_steps=30, p_min=0.2, p_max=0.4)
    agent = GRPOController(env, GRPOConfig(sigma_learning_rate=50.0), seed=0)
    sigmas = []
    agent.learn(seed=0, callback=lambda r: sigmas.append(r["sigma"]))
    assert max(sigmas) == pytest.approx((0.4 - 0.2) / 2)  # the ceiling of this range, reached
    assert all(s <= 0.1 + 1e-12 for s in sigmas)


def test_the_kl_pull_follows_the_ratio_committed_before_each_round():
    from agents.grpo import GRPOController

    env = _env(Flat(lambda r: 1.0 - r), train_steps=50)  # every commit moves up
    agent = GRPOController(env, seed=0)
    seen = []
    update = agent.update

    def spy(samples, rewards, committed):
        seen.append(committed)
        return update(samples, rewards, committed)

    agent.update = spy
    agent.learn(seed=0)
    commits = [0.4] + [h["committed_ratio"] for h in env.history[:-1]]
    assert seen == pytest.approx(commits) and len(set(np.round(seen, 6))) >= 3


# -------------------------------------------------------------------------------- metrics


def test_token_f1_counts_a_multiset():
    from grasp_env.metrics import qa_metrics

    # "cat cat" vs "cat": one token in common of two predicted: P 1/2, R 1, F1 2/3
    assert qa_metrics(["cat cat"], [["cat"]], "en")["f1"] == pytest.approx(100 * 2 / 3)
    assert qa_metrics(["cat dog"], [["dog cat cat"]], "en")["f1"] == pytest.approx(100 * 0.8)
    # a repeated token shared twice counts twice: overlap 2 (a set would say 1 and give 40)
    assert qa_metrics(["cat cat"], [["cat cat dog"]], "en")["f1"] == pytest.approx(100 * 0.8)


# --------------------------------------------------------------------------- run directories


@pytest.mark.parametrize("name", [".", "..", "a/b", "", "~x"])
def test_run_names_that_are_not_plain_names_are_refused(name):
    from grasp_env.runs.dirs import RunDirError, check_run_name

    with pytest.raises(RunDirError, match="not a plain directory name"):
        check_run_name(name)


def test_resume_takes_the_run_directory_lock(tmp_path):
    run = tmp_path / "held"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"preset": "tiny"}))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from filelock import FileLock; "
            f"lock = FileLock({str(run / '.lock')!r}); lock.acquire(); print('held', flush=True); "
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        from grasp_env.runs.dirs import RunDirError, resume_run_dir

        with pytest.raises(RunDirError, match="being written by another running process"):
            resume_run_dir(tmp_path, "held", {"preset": "tiny"})
    finally:
        holder.kill()


def test_fanned_out_results_come_back_in_the_order_of_the_items():
    """Two Ray workers, the first item by far the slowest: the results are in item order."""
    code = (
        "import math\n"
        "from grasp_env.config import FanOutConfig\n"
        "from grasp_env.runs.fanout import run_all\n"
        "out = run_all(math.factorial, [120000, 3, 4, 5, 6], FanOutConfig(workers=2, threads=1))\n"
        "print(out[0] > 10**100, out[1:])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "True [6, 24, 120, 720]"
