"""The amortised controller (`agents.amortised`): the shipped policy on the surrogate gym.

Fast and offline: the policy file ships with the repository (agents/policies/amortised_ppo.pt).
"""

from __future__ import annotations

from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest

import grasp_env
from agents import AGENT_NAMES, make_agent
from agents.amortised import (
    FEATURES,
    POLICY_PATH,
    AmortisedAgent,
    HistoryFeatures,
    load_policy,
    make_train_env,
)
from grasp_env.config import ExperimentConfig
from grasp_env.surrogate import instance_set


def _env(instance_index: int = 0, rounds: int = 6) -> gym.Env:
    cfg = ExperimentConfig()
    ctrl = replace(cfg.controller, train_steps=rounds * cfg.controller.update_interval)
    inst = instance_set("smoke")[instance_index]
    return gym.make(grasp_env.SURROGATE_ENV_ID, config=cfg, controller=ctrl, instances=[inst])


def test_the_shipped_policy_loads_with_its_metadata():
    assert POLICY_PATH.is_file() and POLICY_PATH.stat().st_size < 1_000_000
    policy, meta = load_policy()
    assert meta["features"] == FEATURES and meta["train_instances"] == "train-final"
    assert policy.observation_space.shape == (FEATURES,)
    assert "amortised" in AGENT_NAMES


def test_one_surrogate_episode_in_bounds_and_deterministic_for_a_seed():
    def run(seed):
        env = _env(rounds=6)
        agent = make_agent("amortised", env, seed=seed).learn(seed=seed)
        inner = env.unwrapped
        cands = [c for h in inner.history for c in h["candidates"]]
        return agent, cands, inner

    agent, cands, inner = run(3)
    cfg = inner.config
    assert agent.result.termination == "budget spent" and agent.result.rounds == 6
    assert len(cands) == 18 and all(cfg.p_min <= c <= cfg.p_max for c in cands)
    assert cfg.p_min <= agent.result.learned_ratio <= cfg.p_max
    assert agent.result.learned_ratio == inner.learned_ratio()  # the package's p* rule
    again, cands_again, _ = run(3)
    assert cands_again == cands
    assert again.result.learned_ratio_by_rule == agent.result.learned_ratio_by_rule
    _, other, _ = run(4)
    assert other != cands
    action, _ = agent.predict(inner.observation_space.sample())
    assert inner.action_space.contains(action)
    mean, _ = agent.predict(None, deterministic=True)
    assert inner.action_space.contains(mean)


def test_a_resume_replays_the_logged_episode_exactly():
    # features come from the transitions alone, so replaying the log proposes the same actions
    # (a mismatch would raise CheckpointError)
    env = _env(instance_index=5, rounds=4)
    first = make_agent("amortised", env, seed=1).learn(seed=1)
    log = first.state_dict()
    replayed = AmortisedAgent(env, seed=1)
    replayed.load_state_dict(log)
    replayed.learn(seed=1, resume=True)
    assert replayed.recorder.log == first.recorder.log
    assert replayed.result == first.result


def test_training_env_features_match_the_agent_features_and_pay_regret_at_the_end():
    env = make_train_env("smoke", rounds=(3,), seed=0)
    obs, _ = env.reset(seed=0, options={"instance": 2})
    assert obs.shape == (FEATURES,) and env.observation_space.contains(obs)
    mirror = HistoryFeatures()
    inner = env.unwrapped
    mirror.reset(env, inner._get_obs(), {})
    rng = np.random.default_rng(0)
    rewards, done = [], False
    while not done:
        action = rng.uniform(-1, 1, size=1).astype(np.float32)
        l0 = inner.l0  # the round's baseline: the probe's reward is l0 - its loss
        obs, reward, terminated, truncated, info = env.step(action)
        mirror.step(inner._get_obs(), l0 - info["candidate_loss"], info, action)
        np.testing.assert_array_equal(obs, mirror.vector())
        assert env.observation_space.contains(obs)
        rewards.append(reward)
        done = terminated or truncated
    assert len(rewards) == 9 and all(r == 0.0 for r in rewards[:-1])
    assert rewards[-1] == pytest.approx(-min(30.0, 100.0 * info["regret"]))
    assert rewards[-1] <= 0.0
