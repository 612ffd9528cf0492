"""The bad-input matrix of the main job: one clear line naming field, value and fix; exit 2.

Each case runs `runners/train_agent.py`'s CLI in-process (same `run_cli` path as the shell)
on the tiny preset. Cases that reach the pipeline use small local files in the task schema.
"""

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "runners"))

import train_agent  # noqa: E402

from grasp_env.runs.cli import run_cli  # noqa: E402


def _cli(monkeypatch, capsys, args: list[str]) -> tuple[int, str]:
    """Exit code and the error message, one line (progress bars and tyro's box removed)."""
    monkeypatch.setattr(sys, "argv", ["train_agent.py", *args])
    with pytest.raises(SystemExit) as exit_info:
        run_cli(train_agent.main, train_agent.Args)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err[-2000:]
    ours = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("error: ")]
    if ours:  # run_cli's own line
        return exit_info.value.code, ours[-1]
    # tyro's parse errors come in a box wrapped at 80 columns: unwrap it into one line
    text = re.sub(r"[\u2500-\u257f]", " ", err)
    return exit_info.value.code, " ".join(text.split())


def _qa_row(i: int, answer_at: int | None = None) -> dict:
    context = f"Row {i}: the capital of Place{i} is City{i}."
    start = context.index(f"City{i}") if answer_at is None else answer_at
    return {
        "id": f"r{i}",
        "context": context,
        "question": f"What is the capital of Place{i}?",
        "answers": {"text": [f"City{i}"], "answer_start": [start]},
    }


def make_bad_files(d: Path) -> Path:
    """The broken files and model directories the matrix points at."""
    (d / "malformed.jsonl").write_text(json.dumps(_qa_row(0)) + "\n{not json\n")
    (d / "span.jsonl").write_text(
        "".join(json.dumps(_qa_row(i, answer_at=0 if i == 3 else None)) + "\n" for i in range(200))
    )
    (d / "few.jsonl").write_text("".join(json.dumps(_qa_row(i)) + "\n" for i in range(60)))
    (d / "notes.txt").write_text("hello")
    (d / "empty-model").mkdir(exist_ok=True)
    bin_only = d / "bin-model"
    bin_only.mkdir(exist_ok=True)
    (bin_only / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (bin_only / "pytorch_model.bin").write_bytes(b"\x00" * 16)
    cp1256 = "".join(json.dumps(_qa_row(i), ensure_ascii=False) + "\n" for i in range(3))
    (d / "cp1256.jsonl").write_bytes(cp1256.encode() + "سؤال".encode("cp1256") + b"\n")
    return d


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    return make_bad_files(tmp_path_factory.mktemp("bad-data"))


# (flags, what the one-line message must contain). Every case: exit 2, no traceback.
CASES = {
    "inverted ratio bounds": (["--p-min", "0.9", "--p-max", "0.2"], "p_min=0.9, p_max=0.2"),
    "group size below 2": (["--group-size", "1"], "group_size=1"),
    "K below 1": (["--update-interval", "0"], "update_interval=0"),
    "p_init outside bounds": (["--p-init", "0.95"], "p_init=0.95"),
    "zero max step": (["--max-step-delta", "0"], "max_step_delta=0"),
    "budget below K": (["--train-steps", "3"], "train_steps=3"),
    "unknown reward mode": (["--reward-mode", "bogus"], "reward_mode='bogus'"),
    "unknown p* rule": (["--pstar-rule", "median"], "pstar_rule='median'"),
    "empty micro-dev": (["--micro-dev-size", "0"], "micro_dev_size=0"),
    "micro-dev beyond split": (["--micro-dev-size", "17"], "--micro-dev-size 17"),
    "unknown agent": (["--agent", "dqn"], "--agent 'dqn' is unknown"),
    "fixed ratio out of range": (["--agent", "fixed", "--fixed-ratio", "1.5"], "--fixed-ratio 1.5"),
    "GRPO group mismatch": (["--grpo.num-generations", "4"], "--grpo.num-generations 4"),
    "unknown preset": (["--preset", "huge"], "preset='huge'"),
    "unknown task": (["--task", "translation"], "task='translation'"),
    "unknown language": (["--target", "xx"], "'xx'"),
    "unknown merge form": (["--merge-form", "concat"], "merge_form='concat'"),
    "missing data file": (["--target-data", "{d}/absent.jsonl"], "absent.jsonl"),
    "unsupported data file": (["--target-data", "{d}/notes.txt"], "notes.txt"),
    "malformed data file": (["--target-data", "{d}/malformed.jsonl"], "malformed.jsonl"),
    "answer span off its context": (["--target-data", "{d}/span.jsonl"], "answer_start"),
    "too few target rows": (["--target-data", "{d}/few.jsonl"], "few.jsonl"),
    "model dir without weights": (["--model", "{d}/empty-model"], "empty-model"),
    "model with pickle weights only": (["--model", "{d}/bin-model"], "safetensors"),
    "non-numeric ratio": (["--p-min", "abc"], "abc"),
    "non-numeric seed": (["--seed", "x1"], "x1"),
    "negative seed": (["--seed", "-1"], "seed=-1"),
    "negative policy spread": (["--grpo.sigma-init", "-0.1"], "sigma_init=-0.1"),
    "resume and overwrite": (["--resume", "--overwrite"], "--resume and --overwrite"),
    "resume without a run": (["--resume", "--run-name", "never-ran"], "no run to resume"),
    # issue 13's settings
    "unknown device": (["--device", "tpu"], "device='tpu'"),
    "CUDA on a machine without it": (["--device", "cuda"], "no CUDA device"),
    "unknown dtype": (["--dtype", "fp8"], "dtype='fp8'"),
    "unknown strategy": (["--strategy", "zero3"], "strategy='zero3'"),
    "unknown adapter trainer": (["--adapter-trainer", "keras"], "adapter_trainer='keras'"),
    "unknown mask scope": (["--mask-scope", "layer"], "mask_scope='layer'"),
    "unknown final importance": (["--final-importance", "fisher"], "final_importance='fisher'"),
    "negative rebuild interval": (["--final-rebuild-every", "-1"], "final_rebuild_every=-1"),
    # issue 14: paths and files
    "run name that leaves the output dir": (["--run-name", "../../x"], "not a plain directory"),
    "run name with a slash": (["--run-name", "a/b"], "run_name='a/b'"),
    "output dir that is a file": (["--out-dir", "{d}/notes.txt"], "is a file, not a directory"),
    "output dir under a file": (["--out-dir", "{d}/notes.txt/runs"], "is a file, not a directory"),
    "data file not UTF-8": (["--target-data", "{d}/cp1256.jsonl"], "not UTF-8"),
    "output dir not writable": (["--out-dir", "/sys/grasp-runs"], "cannot write '/sys/grasp-runs'"),
    # issue 15's settings
    "unknown protocol": (["--protocol", "one-run"], "--protocol 'one-run' is unknown"),
    "continuation of zero steps": (
        ["--protocol", "single-pass", "--continue-steps", "0"],
        "--continue-steps 0",
    ),
    "continuation without single pass": (["--continue-steps", "20"], "--protocol two-run"),
    "decoding batch of zero": (["--decode-batch-size", "0"], "decode_batch_size=0"),
    "unknown decoding order": (["--decode-order", "random"], "decode_order='random'"),
    "unknown probe batching": (["--probe-batch", "pairs"], "probe_batch='pairs'"),
    "group probing for an agent that cannot announce": (
        ["--probe-batch", "group", "--agent", "sac"],
        "--probe-batch group with agent(s) ['sac']",
    ),
    "group probing on a sharded backbone": (
        ["--probe-batch", "group", "--strategy", "fsdp"],
        "--probe-batch group with --strategy fsdp",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_exits_2_with_one_clear_message(
    case, bad_files, tiny_backbone_dir, tmp_path, monkeypatch, capsys
):
    flags, expected = CASES[case]
    if case == "CUDA on a machine without it":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    flags = [f.replace("{d}", str(bad_files)) for f in flags]
    code, err = _cli(monkeypatch, capsys, ["--preset", "tiny", "--out-dir", str(tmp_path), *flags])
    assert code == 2, (case, err)
    assert expected in err, (case, err)
    if case not in ("non-numeric ratio", "non-numeric seed"):  # tyro's own type errors
        assert "fix" in err, (case, err)
    MESSAGES[case] = err


MESSAGES: dict[str, str] = {}


def test_existing_run_dir_is_never_overwritten(tiny_backbone_dir, tmp_path, monkeypatch, capsys):
    run = tmp_path / "mine"
    run.mkdir()
    (run / "notes.md").write_text("precious")
    code, err = _cli(
        monkeypatch,
        capsys,
        ["--preset", "tiny", "--out-dir", str(tmp_path), "--run-name", "mine"],
    )
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert (run / "notes.md").read_text() == "precious" and len(list(run.iterdir())) == 1


def test_cache_dir_not_writable(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRASP_CACHE_DIR", "/sys/grasp-cache")
    code, err = _cli(monkeypatch, capsys, ["--preset", "tiny", "--out-dir", str(tmp_path)])
    assert code == 2 and "cannot write '/sys/grasp-cache'" in err and "fix:" in err


def test_disk_full_at_the_last_file_loses_nothing_and_resumes(
    tiny_backbone_dir, tmp_path, monkeypatch, capsys
):
    """ENOSPC when metrics.json is renamed into place: exit 2, the files written so far and
    the final run's checkpoint stay, and --resume (space freed) finishes the run."""
    import errno
    import os

    flags = ["--preset", "tiny", "--train-steps", "10", "--update-interval", "5"]
    flags += ["--out-dir", str(tmp_path), "--run-name", "full"]
    real_replace = os.replace

    def full_disk(src, dst, *args, **kwargs):
        if str(dst).endswith("metrics.json"):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full_disk)
    code, err = _cli(monkeypatch, capsys, flags)
    assert code == 2 and "metrics.json" in err and "No space left" in err and "fix:" in err
    run = tmp_path / "full"
    assert (run / "config.json").is_file() and (run / "adapter" / "adapter_config.json").is_file()
    assert not (run / "metrics.json").exists()
    assert not [p for p in run.iterdir() if p.name.startswith(".metrics.json")]  # no torn file
    assert (run / "checkpoint").is_dir()  # the run can resume
    monkeypatch.setattr(os, "replace", real_replace)
    code, err = _cli(monkeypatch, capsys, [*flags, "--resume"])
    assert code == 0, err
    assert json.loads((run / "metrics.json").read_text())["resumed"] is True
