"""The single-pass protocol: the controller run continues at p* (weights, optimizer, mask, rows)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def prepared(tiny_backbone_dir):
    from grasp_env.config import ExperimentConfig
    from grasp_env.lm.pipeline import prepare

    return prepare(ExperimentConfig.from_preset("tiny"), progress=False, log=lambda _: None)


def test_the_continuation_is_the_controller_run_at_pstar(prepared):
    import torch

    from grasp_env.env import ControllerConfig, GraspLoRAEnv
    from grasp_env.lm.host import lora_state
    from grasp_env.lm.pipeline import final_run, start_model

    controller = ControllerConfig(train_steps=10, update_interval=5)
    env = GraspLoRAEnv(prepared=prepared, controller=controller)
    env.reset(seed=0)
    for a in (-0.5, 0.0, 0.5):
        env.step(np.array([a], dtype=np.float32))
    process = env.unwrapped.process
    cont = process.continuation(0.5, max_steps=5)
    # everything the controller run's training state is, carried: weights, AdamW, mask and
    # stash, row-stream position
    assert cont.position == process._order.position == 10 and cont.max_steps == 5
    steps = {int(v["step"]) for v in cont.optimizer["state"].values()}
    assert steps == {10}
    assert cont.prune["keep"] is not None and set(cont.prune["stash"]) == set(prepared.merged_state)
    env.close()
    state = cont.weights
    merged = prepared.merged_state
    assert set(state) == set(merged)
    assert any(not torch.equal(state[k], merged[k]) for k in state)  # trained, not the merge
    for tensor in state.values():  # committed at 0.5: floor(0.5 n) zeros per tensor
        assert int((tensor == 0).sum()) >= tensor.numel() // 2

    model = start_model(prepared, "merged", state=state)
    got = lora_state(model)
    assert all(torch.equal(got[k], state[k]) for k in state)

    run = final_run(prepared, 0.5, "merged", start=cont)
    assert run.fit.steps == 5 and np.isfinite(run.test_loss)
    with pytest.raises(ValueError, match="only the merged arm"):
        start_model(prepared, "target_only", state=state)


def test_benchmark_single_pass_records_its_protocol_and_steps(
    isolated_cache, tiny_backbone_dir, tmp_path
):
    env = {**os.environ, "GRASP_CACHE_DIR": str(isolated_cache)}
    cmd = [sys.executable, str(ROOT / "runners" / "benchmark.py"), "--preset", "tiny"]
    cmd += [
        "--agents",
        "grpo",
        "--seeds",
        "42",
        "--ratios",
        "0.2",
        "0.6",
        "--controller.train-steps",
        "6",
    ]
    cmd += ["--controller.update-interval", "3", "--out-dir", str(tmp_path), "--run-name", "sp"]
    single = [*cmd, "--final.protocol", "single-pass"]
    out = subprocess.run(single, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    run = json.loads((tmp_path / "sp" / "benchmark.json").read_text())["methods"]["grpo"]
    record = run["per_seed"][0]
    # the tiny final run takes 10 steps; the controller did 6: the continuation trains 4 at
    # least one dev interval (eval_every 5) -> 5
    assert record["protocol"] == "single-pass" and record["final_steps"] == 5
    bad = subprocess.run(
        [*cmd, "--final.protocol", "one-run"], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2 and "one-run" in bad.stderr and "single-pass" in bad.stderr


def test_main_job_single_pass_resumes_to_the_same_result(
    isolated_cache, tiny_backbone_dir, tmp_path
):
    """Killed in its continuation, a single-pass run resumes from start.pt and final.pt."""
    env = {**os.environ, "GRASP_CACHE_DIR": str(isolated_cache)}
    env.pop("GRASP_FAULT", None)
    cmd = [sys.executable, str(ROOT / "runners" / "train_agent.py"), "--preset", "tiny"]
    cmd += [
        "--controller.train-steps",
        "6",
        "--controller.update-interval",
        "3",
        "--final.protocol",
        "single-pass",
    ]
    cmd += ["--final.continue-steps", "10"]  # two dev evaluations: a checkpoint after the first
    cmd += ["--out-dir", str(tmp_path), "--run-name"]
    whole = subprocess.run([*cmd, "whole"], capture_output=True, text=True, env=env)
    assert whole.returncode == 0, whole.stderr[-3000:]
    faulty = {**env, "GRASP_FAULT": "final_checkpoint:1"}
    killed = subprocess.run([*cmd, "k"], capture_output=True, text=True, env=faulty)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (tmp_path / "k" / "checkpoint" / "start.pt").is_file()
    resumed = subprocess.run([*cmd, "k", "--resume"], capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    ref = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    got = json.loads((tmp_path / "k" / "metrics.json").read_text())
    assert ref["protocol"] == "single-pass" and ref["final_steps"] == 10
    keys = ("learned_ratio", "test", "test_loss", "dev_loss", "final_steps")
    assert {k: got[k] for k in keys} == {k: ref[k] for k in keys}
