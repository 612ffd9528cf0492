import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args, cache):
    env = {**os.environ, "GRASP_CACHE_DIR": str(cache)}
    return subprocess.run(
        [sys.executable, str(ROOT / "runners" / "train_agent.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


@pytest.fixture(scope="module")
def two_runs(isolated_cache, tiny_backbone_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    results = []
    for name in ("a", "b"):
        proc = _run(
            "--preset",
            "tiny",
            "--controller.train-steps",
            "20",
            "--controller.update-interval",
            "5",
            "--out-dir",
            str(out),
            "--run-name",
            name,
            "--export-merged",
            "--agent",  # the GRPO controller writes the most state (mu, sigma, its tags)
            "grpo",
            cache=isolated_cache,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        results.append(out / name)
    return results


def test_the_pruned_adapter_and_the_merged_export(two_runs, tiny_backbone_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from grasp_env.lm.backbone import load_backbone

    run = two_runs[0]
    metrics = json.loads((run / "metrics.json").read_text())
    adapter = metrics["adapter"]
    assert adapter["entries"] > 0 and adapter["zeros_stored_densely"] is True
    assert adapter["sparsity"] >= metrics["learned_ratio"] - 0.02  # pruned at p*
    assert adapter["bytes_on_disk"] > 4 * adapter["entries"]
    base, tok = load_backbone(tiny_backbone_dir)
    on_backbone = PeftModel.from_pretrained(base, run / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(run / "merged").eval()
    ids = tok("Egypt uses the Egyptian Pound.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(
            merged(ids).logits, on_backbone(ids).logits, rtol=1e-4, atol=1e-4
        )


def test_dry_run_describes_the_paper_preset_without_downloading(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "runners" / "train_agent.py"),
            "--preset",
            "paper",
            "--dry-run",
            "--device",
            "cuda",
            "--out-dir",
            str(tmp_path / "runs"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    plan = json.loads(proc.stdout)
    assert plan["backbone"]["parameters"] == 8_030_261_248
    assert plan["backbone"]["architecture_from"] == "built-in table"
    assert plan["placement"] == {"device": "cuda", "dtype": "bfloat16"}
    # r=8 on q_proj (4096x4096) and v_proj (4096 -> 1024) in 32 layers
    assert plan["lora"]["entries"] == 32 * 8 * ((4096 + 4096) + (4096 + 1024))
    assert plan["data"]["target_splits"] == {"train": 50, "dev": 50, "micro_dev": 16, "test": 100}
    assert 16.0 < plan["memory_per_device_gb"]["backbone_weights"] < 16.1
    assert not (tmp_path / "runs").exists()  # nothing written


def test_main_job_writes_the_run_directory(two_runs):
    run = two_runs[0]
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("agent", "task", "source", "target", "seed", "learned_ratio", "test", "timings"):
        assert key in metrics
    assert set(metrics["timings"]) >= {"controller_s", "final_s", "total_s"}
    assert 0.1 <= metrics["learned_ratio"] <= 0.8 and metrics["rounds"] == 4
    assert metrics["processes"] == 1 and metrics["strategy"] == "single"
    assert metrics["placement"] == {"device": "cpu", "dtype": "float32"}
    assert 0.05 < metrics["peak_memory"]["host_rss_gb"] < 24  # measured, KiB read as such
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["round"] for h in history] == [0, 1, 2, 3]
    for h in history:
        assert {
            "step",
            "ratios",
            "rewards",
            "baseline_loss",
            "mu",
            "sigma",
            "committed_ratio",
        } <= set(h)
    config = json.loads((run / "config.json").read_text())
    assert config["controller"]["train_steps"] == 20


def test_tensorboard_has_the_documented_tags(two_runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(two_runs[0]))
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    for tag in (
        "rewards/mean",
        "rewards/std",
        "rewards/max",
        "rewards/frac_reward_zero_std",
        "controller/mu",
        "controller/sigma",
        "controller/committed_ratio",
        "env/baseline_loss",
        "losses/train",
        "eval/em",
        "eval/test_loss",
    ):
        assert tag in scalars, tag
    assert "controller/candidate_ratios" in acc.Tags()["histograms"]
    assert len(acc.Scalars("controller/mu")) == 4


def test_same_seed_same_learned_ratio(two_runs):
    a, b = (json.loads((r / "metrics.json").read_text()) for r in two_runs)
    assert a["learned_ratio"] == b["learned_ratio"]
    assert a["test"] == b["test"]


def test_saved_adapter_reloads_and_reproduces_the_test_metric(two_runs, tiny_backbone_dir):
    from peft import PeftModel

    from grasp_env.config import ExperimentConfig
    from grasp_env.data import load_target_splits
    from grasp_env.lm.backbone import load_backbone
    from grasp_env.lm.batches import encode_rows, evaluate_loss, generate
    from grasp_env.metrics import qa_metrics

    metrics = json.loads((two_runs[0] / "metrics.json").read_text())
    cfg = ExperimentConfig.from_preset("tiny")
    base, tok = load_backbone(tiny_backbone_dir)
    model = PeftModel.from_pretrained(base, two_runs[0] / "adapter").eval()
    data = cfg.data
    splits = load_target_splits("embedded", "qa", "ar", 42, data.split_sizes, data.embedded)
    test = encode_rows(tok, splits.test, "qa", "ar", data.max_length)
    assert evaluate_loss(model, test, tok.pad_token_id) == pytest.approx(
        metrics["test_loss"], rel=1e-5
    )
    preds = generate(model, tok, splits.test, "qa", "ar", data.max_length, cfg.eval.max_new_tokens)
    assert qa_metrics(preds, [r["answers"]["text"] for r in splits.test], "ar") == metrics["test"]


def test_bad_flag_values_exit_2_without_traceback(isolated_cache, tmp_path):
    for args, expected in (
        (["--preset", "huge"], "preset='huge'"),
        (["--agent", "dqn"], "dqn"),
        (["--controller.p-min", "0.9", "--controller.p-max", "0.2"], "p_min=0.9, p_max=0.2"),
        (["--seed", "abc"], ""),
    ):
        out = _run(*args, "--out-dir", str(tmp_path), cache=isolated_cache)
        assert out.returncode == 2, (args, out.stderr[-500:])
        assert expected in out.stderr and "Traceback" not in out.stderr


def test_analyze_reads_event_files_and_draws(two_runs, tmp_path):
    out = tmp_path / "a.png"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "runners" / "analyze.py"),
            *map(str, two_runs),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.stat().st_size > 5000
    assert "| a | 4 |" in proc.stdout and "| b | 4 |" in proc.stdout
    bad = subprocess.run(
        [sys.executable, str(ROOT / "runners" / "analyze.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "no TensorBoard event files" in bad.stderr


def test_gpu_report_tabulates_runs(two_runs):
    """scripts/gpu_report.py (the GPU check's summary) reads real run directories."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_report.py"), str(two_runs[0].parent)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert [line.split("|")[1].strip() for line in lines[1:]] == ["a", "b"]
    ratio = json.loads((two_runs[0] / "metrics.json").read_text())["learned_ratio"]
    assert f"| {ratio:.4f} |" in lines[1] and "cpu, float32" in lines[1]
    bad = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_report.py")], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "usage" in bad.stdout


@pytest.mark.parametrize("runner", ["grid_search.py", "benchmark.py"])
def test_multi_run_runners_refuse_a_launcher(runner, tmp_path):
    """Under torchrun every process would write the same files: a clear refusal instead."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "runners" / runner), "--out-dir", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        env={**os.environ, "WORLD_SIZE": "2"},
        timeout=120,
    )
    assert proc.returncode == 2
    assert "WORLD_SIZE=2" in proc.stderr and "fix:" in proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("flags", "agent"),
    [([], "thompson"), (["--method", "paper"], "grpo"), (["--agent", "random"], "random")],
)
def test_the_default_agent_follows_the_method(flags, agent, monkeypatch, capsys, tmp_path):
    """No --agent: Thompson under the default method, the paper's GRPO under --method paper."""
    from helpers.runners import load_runner

    from grasp_env.runs.cli import run_cli

    train_agent = load_runner("train_agent")
    argv = ["train_agent.py", "--preset", "tiny", "--dry-run", "--out-dir", str(tmp_path), *flags]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(train_agent.main, train_agent.Args)
    assert exit_info.value.code == 0
    assert json.loads(capsys.readouterr().out)["agent"] == agent
