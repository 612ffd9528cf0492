"""Crash safety of the main job: SIGKILL at exact points, then --resume, equals no crash."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--preset", "tiny", "--controller.train-steps", "20", "--controller.update-interval", "5"]


def _run(*args, cache, fault=None):
    env = {**os.environ, "GRASP_CACHE_DIR": str(cache)}
    env.pop("GRASP_FAULT", None)
    if fault:
        env["GRASP_FAULT"] = fault
    return subprocess.run(
        [sys.executable, str(ROOT / "runners" / "train_agent.py"), *FLAGS, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


def _scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, round(e.value, 6)) for e in acc.Scalars(tag)]


@pytest.fixture(scope="module")
def reference_run(isolated_cache, tiny_backbone_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("resume")
    proc = _run("--out-dir", str(out), "--run-name", "ref", cache=isolated_cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / "ref"


# controller_round:1 - killed after round 0 was logged, before any checkpoint (restart from
# scratch over a non-empty run dir); controller_round:3 - after round 2 was logged but before
# its checkpoint (the worst case for duplicates); final_checkpoint:1 - in the final run right
# after its checkpoint; final_logged:1 - after TensorBoard's eval/* but before metrics.json.
@pytest.mark.parametrize(
    "fault",
    [  # the first and last points are slow-marked (default suite length); all four pass
        pytest.param("controller_round:1", marks=pytest.mark.slow),
        "controller_round:3",
        "final_checkpoint:1",
        pytest.param("final_logged:1", marks=pytest.mark.slow),
    ],
)
def test_sigkill_then_resume_equals_an_uninterrupted_run(reference_run, isolated_cache, fault):
    out = reference_run.parent
    name = "killed-" + fault.replace(":", "-")
    killed = _run("--out-dir", str(out), "--run-name", name, cache=isolated_cache, fault=fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    run = out / name
    assert not (run / "metrics.json").exists()

    resumed = _run("--out-dir", str(out), "--run-name", name, "--resume", cache=isolated_cache)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    ref = json.loads((reference_run / "metrics.json").read_text())
    got = json.loads((run / "metrics.json").read_text())
    assert got["learned_ratio"] == ref["learned_ratio"]
    assert got["test"] == ref["test"] and got["test_loss"] == ref["test_loss"]
    assert got["resumed"] is True and not (run / "checkpoint").exists()

    ref_hist = (reference_run / "history.jsonl").read_text().splitlines()
    got_hist = (run / "history.jsonl").read_text().splitlines()
    assert got_hist == ref_hist  # no lost, duplicated or altered round
    tags = ("controller/committed_ratio", "controller/learned_ratio", "losses/train", "eval/em")
    for tag in tags:
        got_s, ref_s = _scalars(run, tag), _scalars(reference_run, tag)
        assert got_s == ref_s, tag
        assert len({s for s, _ in got_s}) == len(got_s)  # every step once


def test_training_losses_sit_on_their_own_steps(reference_run):
    steps = [s for s, _ in _scalars(reference_run, "losses/train")]
    assert steps == list(range(1, 21))  # --controller.train-steps 20: one point per optimizer step
    rounds = [json.loads(x) for x in (reference_run / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rounds] == [5, 10, 15, 20]
    assert all(len(r["train_losses"]) == 5 for r in rounds)
    assert _scalars(reference_run, "eval/em")[0][0] == 21  # after the controller run's last step


def test_resume_refuses_other_flags_and_missing_runs(reference_run, isolated_cache):
    out = reference_run.parent
    killed = _run(
        "--out-dir",
        str(out),
        "--run-name",
        "k2",
        cache=isolated_cache,
        fault="controller_checkpoint:1",
    )
    assert killed.returncode == -signal.SIGKILL
    other = _run(
        "--out-dir", str(out), "--run-name", "k2", "--resume", "--seed", "7", cache=isolated_cache
    )
    assert other.returncode == 2 and "Traceback" not in other.stderr
    assert "seed: saved 42, now 7" in other.stderr
    missing = _run("--out-dir", str(out), "--run-name", "nope", "--resume", cache=isolated_cache)
    assert missing.returncode == 2 and "no run to resume" in missing.stderr

    # a checkpoint cut short (disk full, copied half-way) is reported, not used
    ckpt = out / "k2" / "checkpoint" / "controller.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    cut = _run("--out-dir", str(out), "--run-name", "k2", "--resume", cache=isolated_cache)
    assert cut.returncode == 2 and "Traceback" not in cut.stderr
    assert "cannot be read" in cut.stderr and "controller.pt" in cut.stderr


def test_a_finished_run_is_not_rerun(reference_run, isolated_cache):
    before = (reference_run / "metrics.json").read_text()
    again = _run(
        "--out-dir",
        str(reference_run.parent),
        "--run-name",
        "ref",
        "--resume",
        cache=isolated_cache,
    )
    assert again.returncode == 0 and "already finished" in again.stdout
    assert (reference_run / "metrics.json").read_text() == before


def test_sigkill_from_outside_at_an_arbitrary_moment(isolated_cache, tiny_backbone_dir, tmp_path):
    """No fault hook: the test itself kills the run once a few rounds are on disk."""
    import time

    longer = ["--controller.train-steps", "200", "--out-dir", str(tmp_path)]
    env = {**os.environ, "GRASP_CACHE_DIR": str(isolated_cache)}
    env.pop("GRASP_FAULT", None)
    cmd = [sys.executable, str(ROOT / "runners" / "train_agent.py"), *FLAGS, *longer]
    proc = subprocess.Popen(
        [*cmd, "--run-name", "ext"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    history = tmp_path / "ext" / "history.jsonl"
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        if history.exists() and len(history.read_text().splitlines()) >= 5:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL

    resumed = subprocess.run(
        [*cmd, "--run-name", "ext", "--resume"], capture_output=True, text=True, env=env
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    whole = subprocess.run([*cmd, "--run-name", "whole"], capture_output=True, text=True, env=env)
    assert whole.returncode == 0, whole.stderr[-3000:]
    got = json.loads((tmp_path / "ext" / "metrics.json").read_text())
    ref = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    assert (got["learned_ratio"], got["test"]) == (ref["learned_ratio"], ref["test"])
    assert (tmp_path / "ext" / "history.jsonl").read_text() == (
        tmp_path / "whole" / "history.jsonl"
    ).read_text()
    steps = [s for s, _ in _scalars(tmp_path / "ext", "controller/committed_ratio")]
    assert steps == [s for s, _ in _scalars(tmp_path / "whole", "controller/committed_ratio")]
    assert len(set(steps)) == len(steps) == 40


# Round-level resume of the baseline agents (issue 14): the agent is rebuilt and replays its
# logged transitions (no LM work), the env comes from its round checkpoint. PPO (on-policy
# rollouts), SAC (replay buffer, entropy tuning), Optuna (TPE trials) and random cover the kinds
# of state an agent keeps; TD3, TQC and A2C share SB3Agent's code with them.
@pytest.mark.parametrize(
    "agent",
    [
        "sac",
        pytest.param("optuna", marks=pytest.mark.slow),
        pytest.param("ppo", marks=pytest.mark.slow),
        pytest.param("random", marks=pytest.mark.slow),
    ],
)
def test_baseline_agents_resume_mid_episode(agent, isolated_cache, tiny_backbone_dir, tmp_path):
    common = ("--agent", agent, "--out-dir", str(tmp_path))
    whole = _run(*common, "--run-name", "whole", cache=isolated_cache)
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = _run(*common, "--run-name", "k", cache=isolated_cache, fault="controller_checkpoint:2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    resumed = _run(*common, "--run-name", "k", "--resume", cache=isolated_cache)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "restarting" not in resumed.stdout  # continued from round 2, not started again

    ref = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    got = json.loads((tmp_path / "k" / "metrics.json").read_text())
    assert got["learned_ratio"] == ref["learned_ratio"]
    assert (got["test"], got["test_loss"]) == (ref["test"], ref["test_loss"])
    ref_hist = (tmp_path / "whole" / "history.jsonl").read_text().splitlines()
    got_hist = (tmp_path / "k" / "history.jsonl").read_text().splitlines()
    assert len(ref_hist) == 4 and got_hist == ref_hist  # every probe the agent made, the same


def test_a_replay_that_diverges_is_refused(isolated_cache, tiny_backbone_dir, tmp_path):
    """A checkpoint whose logged actions the agent does not reproduce stops the resume."""
    import torch

    common = ("--agent", "random", "--out-dir", str(tmp_path), "--run-name", "k")
    killed = _run(*common, cache=isolated_cache, fault="controller_checkpoint:2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    ckpt = tmp_path / "k" / "checkpoint" / "controller.pt"
    state = torch.load(ckpt, weights_only=True)
    state["agent"]["log"][3]["action"] = [0.123]  # as if another machine had drawn it
    torch.save(state, ckpt)
    resumed = _run(*common, "--resume", cache=isolated_cache)
    assert resumed.returncode == 2 and "Traceback" not in resumed.stderr
    assert "at transition 3" in resumed.stderr and "[0.123]" in resumed.stderr
    assert "controller.pt" in resumed.stderr
