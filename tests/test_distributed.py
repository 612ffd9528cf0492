"""Two CPU processes over gloo (torchrun): the collectives and the main job.

`accelerate launch` starts a single process on a CPU-only machine; `torchrun --nproc_per_node
2` starts two, and accelerate's process state joins them (grasp_env.lm.dist).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]


def _torchrun(args, cache, timeout=600):
    env = {**os.environ, "GRASP_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*TORCHRUN, *args], capture_output=True, text=True, env=env, timeout=timeout
    )


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_sharded_evaluation_and_decoding_equal_one_process(
    strategy, isolated_cache, tiny_backbone_dir, tmp_path
):
    from safetensors.torch import save_file

    from grasp_env.config import ExperimentConfig
    from grasp_env.lm.batches import EncodedSplit, evaluate_loss, generate
    from grasp_env.lm.pipeline import prepare, start_model

    prep = prepare(ExperimentConfig.from_preset("tiny"), progress=False, log=lambda _: None)
    state = tmp_path / "merged.safetensors"
    save_file({k: v.contiguous() for k, v in prep.merged_state.items()}, state)
    helper = str(ROOT / "tests" / "helpers" / "dist_eval.py")
    proc = _torchrun([helper, str(state), strategy], isolated_cache, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads(proc.stdout.strip().splitlines()[-1])
    model = start_model(prep, "merged")
    dev = prep.encoded["dev"]
    odd = EncodedSplit(dev.rows[:9], dev.encodings[:9], dev.task, dev.lang)
    one_loss = evaluate_loss(model, odd, prep.pad_id, batch_size=2)
    one_preds = generate(
        model, prep.tokenizer, prep.splits.test[:9], "qa", "ar", prep.cfg.data.max_length, 6, 2
    )
    assert two["processes"] == 2
    assert two["sharded"] == (strategy == "fsdp")
    assert two["held"] == pytest.approx(0.5 if strategy == "fsdp" else 1.0, abs=0.01)
    assert two["dev_loss"] == pytest.approx(one_loss, rel=1e-5)  # sums, not means, are reduced
    assert two["preds"] == one_preds  # gathered in the original row order


def _main_job_on_two_processes(out, name, cache, *extra):
    """The tiny main job under torchrun; checks it wrote one run directory once; its metrics."""
    flags = [
        "--preset",
        "tiny",
        "--controller.train-steps",
        "20",
        "--controller.update-interval",
        "5",
        *extra,
    ]
    script = str(ROOT / "runners" / "train_agent.py")
    proc = _torchrun([script, *flags, "--out-dir", str(out), "--run-name", name], cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [name]  # one run directory, the main's
    history = (out / name / "history.jsonl").read_text().splitlines()
    assert len(history) == 4  # written once, not once per process
    metrics = json.loads((out / name / "metrics.json").read_text())
    assert metrics["processes"] == 2 and 0.1 <= metrics["learned_ratio"] <= 0.8
    assert metrics["rounds"] == 4
    return proc, metrics


def test_the_main_job_on_two_processes(isolated_cache, tiny_backbone_dir, tmp_path):
    from peft import PeftModel

    from grasp_env.lm.backbone import load_backbone

    out = tmp_path / "runs"
    _, metrics = _main_job_on_two_processes(out, "dp", isolated_cache)
    assert metrics["strategy"] == "ddp"
    base, _ = load_backbone(tiny_backbone_dir)
    PeftModel.from_pretrained(base, out / "dp" / "adapter")  # the adapter loads


def test_the_main_job_with_the_backbone_sharded(isolated_cache, tiny_backbone_dir, tmp_path):
    """--strategy fsdp: the run completes, writes once, its adapter and merged export load."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from grasp_env.lm.backbone import load_backbone

    out = tmp_path / "runs"
    extra = ("--strategy", "fsdp", "--export-merged")
    proc, metrics = _main_job_on_two_processes(out, "fsdp", isolated_cache, *extra)
    assert "backbone sharded over 2 processes (FSDP2)" in proc.stdout
    assert metrics["strategy"] == "fsdp"
    base, tokenizer = load_backbone(tiny_backbone_dir)
    model = PeftModel.from_pretrained(base, out / "fsdp" / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(out / "fsdp" / "merged").eval()
    ids = tokenizer(["hello world", "a b c"], return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = model(**ids).logits
        got = merged(**ids).logits
    assert torch.allclose(got, expected, atol=1e-4)
