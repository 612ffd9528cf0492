"""Every agent runs a few probes on the real tiny preset and yields a ratio in bounds."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents import AGENTS, make_agent
from grasp_env.env import ControllerConfig, GraspLoRAEnv

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def prepared(tiny_backbone_dir):
    from grasp_env.config import ExperimentConfig
    from grasp_env.lm.pipeline import prepare

    return prepare(ExperimentConfig.from_preset("tiny"), progress=False, log=lambda _: None)


# a2c, td3 and tqc share SB3's code paths with ppo and sac (on- and off-policy): slow-marked
# on the LM to keep the default suite short; they run whole episodes on a stand-in below.
_SLOW_AGENTS = {"a2c", "td3", "tqc"}


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW_AGENTS else n for n in sorted(AGENTS)],
)
def test_agent_runs_an_episode_and_learns_a_ratio_in_bounds(prepared, name):
    env = GraspLoRAEnv(
        prepared=prepared, controller=ControllerConfig(train_steps=6, update_interval=2)
    )
    rounds = []
    agent = make_agent(name, env, seed=0, fixed_ratio=0.5).learn(seed=0, callback=rounds.append)
    ratio = agent.result.learned_ratio
    assert 0.1 <= ratio <= 0.8
    if name == "fixed":
        assert ratio == 0.5 and rounds == []
    else:
        assert len(rounds) >= 3 and all(len(r["ratios"]) == 3 for r in rounds[:3])
    action, _ = agent.predict(env.observation_space.sample())
    assert env.action_space.contains(action)


@pytest.mark.parametrize("name", ["ppo", pytest.param("td3", marks=pytest.mark.slow)])
def test_sb3_agent_leaves_the_finished_episode_in_the_env(prepared, name):
    # SB3 auto-resets a finished episode; the recorder turns that reset into a no-op, so the
    # env still holds the episode and no extra round is trained (or timed)
    env = GraspLoRAEnv(
        prepared=prepared, controller=ControllerConfig(train_steps=6, update_interval=2)
    )
    agent = make_agent(name, env, seed=0).learn(seed=0)
    assert len(env.history) == 3 and env.process.steps_done == 6
    assert agent.result.rounds == 3 and agent.result.steps_done == 6
    assert agent.result.termination == "budget spent"
    assert env.learned_ratio() == agent.result.learned_ratio


@pytest.mark.parametrize("name", sorted(_SLOW_AGENTS))
def test_the_slow_marked_agents_run_whole_episodes_on_a_stand_in(name):
    from grasp_env.synthetic import SyntheticProcess

    env = GraspLoRAEnv(
        process=SyntheticProcess(0.5), controller=ControllerConfig(train_steps=6, update_interval=2)
    )
    rounds = []
    agent = make_agent(name, env, seed=0).learn(seed=0, callback=rounds.append)
    assert 0.1 <= agent.result.learned_ratio <= 0.8
    assert len(rounds) == 3 and all(len(r["ratios"]) == 3 for r in rounds)
    assert agent.result.termination == "budget spent"


@pytest.mark.parametrize("name", sorted(set(AGENTS) - {"fixed"}))
def test_an_episode_that_ends_within_reset_gives_a_result(name):
    # a process that takes no step ends the episode inside reset(); no agent may step on
    from grasp_env.synthetic import SyntheticProcess

    class Stalled(SyntheticProcess):
        def train(self, k):
            return []

    env = GraspLoRAEnv(process=Stalled(0.5), controller=ControllerConfig(train_steps=30))
    result = make_agent(name, env, seed=0).learn(seed=0).result
    assert result.termination.startswith("stalled") and result.rounds == 0


def test_unknown_agent_and_bad_fixed_ratio(prepared):
    env = GraspLoRAEnv(
        prepared=prepared, controller=ControllerConfig(train_steps=4, update_interval=2)
    )
    with pytest.raises(ValueError, match="agent='dqn' is unknown"):
        make_agent("dqn", env)
    with pytest.raises(ValueError, match="fixed ratio=0.95 is outside"):
        make_agent("fixed", env, fixed_ratio=0.95)


def test_sb3_agent_logs_the_same_tags_through_the_main_job(
    isolated_cache, tiny_backbone_dir, tmp_path
):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    env = {**os.environ, "GRASP_CACHE_DIR": str(isolated_cache)}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "runners" / "train_agent.py"),
            "--preset",
            "tiny",
            "--agent",
            "td3",
            "--controller.train-steps",
            "10",
            "--controller.update-interval",
            "2",
            "--out-dir",
            str(tmp_path),
            "--run-name",
            "td3",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "td3" / "metrics.json").read_text())
    assert metrics["agent"] == "td3" and 0.1 <= metrics["learned_ratio"] <= 0.8
    assert metrics["rounds"] == 5
    acc = EventAccumulator(str(tmp_path / "td3"))
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    for tag in ("rewards/mean", "controller/committed_ratio", "env/baseline_loss", "eval/em"):
        assert tag in scalars


def test_sb3_agent_save_load_round_trip(prepared, tmp_path):
    import tempfile

    import numpy as np

    from agents.baselines import SB3Agent

    env = GraspLoRAEnv(
        prepared=prepared, controller=ControllerConfig(train_steps=6, update_interval=2)
    )
    before = set(Path(tempfile.gettempdir()).glob("SB3-*"))
    agent = make_agent("ppo", env, seed=0).learn(seed=0)
    assert set(Path(tempfile.gettempdir()).glob("SB3-*")) == before  # no stray log folders
    agent.save(tmp_path / "ppo.zip")
    loaded = SB3Agent.load(tmp_path / "ppo.zip", env, algo="ppo", run_dir=tmp_path)
    obs = np.zeros(7, dtype=np.float32)
    assert np.allclose(
        agent.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )
    # pickles are read only from the run directory that wrote them
    with pytest.raises(ValueError, match="run_dir"):
        SB3Agent.load(tmp_path / "ppo.zip", env, algo="ppo")
    other = tmp_path / "other-run"
    other.mkdir()
    (other / "evil.zip").symlink_to(tmp_path / "ppo.zip")
    with pytest.raises(ValueError, match="outside run_dir"):
        SB3Agent.load(other / "evil.zip", env, algo="ppo", run_dir=other)
