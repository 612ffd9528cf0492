"""GraspLoRASurrogate-v1: a registered Gymnasium env with the live env's contract."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import grasp_env
from agents import make_agent
from grasp_env.config import ControllerConfig
from grasp_env.env import GraspLoRAEnv
from grasp_env.surrogate import instance_set
from grasp_env.surrogate_env import GraspLoRASurrogateEnv

SMALL = ControllerConfig(train_steps=40, update_interval=10)


def test_it_passes_gymnasiums_and_sb3s_checkers_with_warnings_as_errors():
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make(grasp_env.SURROGATE_ENV_ID, controller=SMALL, instances="smoke")
        gym_check(env.unwrapped, skip_render_check=True)
        sb3_check(GraspLoRASurrogateEnv(controller=SMALL, instances="smoke"), warn=True)


def test_make_vec_steps_several_instances_at_once():
    envs = gym.make_vec(
        grasp_env.SURROGATE_ENV_ID,
        num_envs=2,
        vectorization_mode="sync",
        controller=SMALL,
        instances="smoke",
    )
    obs, infos = envs.reset(seed=[0, 1])
    assert obs.shape[0] == 2
    assert list(infos["instance"]) == [s.name for s in instance_set("smoke")[:2]]
    obs, rewards, term, trunc, infos = envs.step(np.full((2, 1), 0.4, dtype=np.float32))
    assert rewards.shape == (2,) and np.isfinite(rewards).all()
    envs.close()


def test_reset_picks_the_named_indexed_or_next_instance():
    env = GraspLoRASurrogateEnv(controller=SMALL, instances="smoke")
    names = [i.name for i in env.instances]
    assert env.reset()[1]["instance"] == names[0]
    assert env.reset()[1]["instance"] == names[1]  # round-robin without options
    assert env.reset(seed=5)[1]["instance"] == names[5 % len(names)]
    assert env.reset(options={"instance": 3})[1]["instance"] == names[3]
    assert env.reset(options={"instance": names[7]})[1]["instance"] == names[7]
    with pytest.raises(ValueError, match="options\\['instance'\\]=99"):
        env.reset(options={"instance": 99})
    with pytest.raises(ValueError, match="names no instance"):
        env.reset(options={"instance": "nope"})


def test_the_last_step_reports_regret_in_the_unit_interval():
    env = GraspLoRASurrogateEnv(controller=SMALL, instances="smoke")
    env.reset(seed=0)
    done, info, steps = False, {}, 0
    while not done:
        _, _, term, trunc, info = env.step(np.array([0.35], dtype=np.float32))
        assert "regret" not in info or term or trunc
        done, steps = term or trunc, steps + 1
    assert 0.0 <= info["regret"] <= 1.0
    assert info["regret"] == pytest.approx(env.instance.regret(env.learned_ratio()))


def test_an_agent_moves_between_the_surrogate_and_the_live_env_unchanged():
    from grasp_env.synthetic import SyntheticProcess

    live = GraspLoRAEnv(process=SyntheticProcess(0.5), controller=SMALL)
    surrogate = gym.make(grasp_env.SURROGATE_ENV_ID, controller=SMALL, instances="smoke")
    ratios = []
    for env in (live, surrogate):
        agent = make_agent("thompson", env, seed=0)
        agent.learn(seed=0)
        ratios.append(agent.result.learned_ratio)
    assert all(0.1 <= r <= 0.8 for r in ratios)
