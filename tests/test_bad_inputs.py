"""The bad-input matrix of the main job: one clear line naming field, value and fix; exit 2.

Each case runs `runners/train_agent.py`'s CLI in-process (same `run_cli` path as the shell)
on the tiny preset. Cases that reach the pipeline use small local files in the task schema.
"""

import json
import os
import re
import sys
from pathlib import Path

import pytest
from helpers.runners import load_runner

from grasp_env.runs.cli import run_cli

ROOT = Path(__file__).resolve().parents[1]
train_agent = load_runner("train_agent")


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
    rows = [_qa_row(i) for i in range(200)]
    clash = [*rows, {**_qa_row(7), "id": "r8", "question": "Which city again?"}]
    (d / "clash.jsonl").write_text("".join(json.dumps(r) + "\n" for r in clash))
    negative = [dict(r) for r in rows]
    context = negative[5]["context"]
    negative[5] = {**negative[5], "answers": {"text": ["City5."], "answer_start": [-6]}}
    assert context[-6:] == "City5."  # Python's negative slicing would accept it
    (d / "negative.jsonl").write_text("".join(json.dumps(r) + "\n" for r in negative))
    cp1256 = "".join(json.dumps(_qa_row(i), ensure_ascii=False) + "\n" for i in range(3))
    (d / "cp1256.jsonl").write_bytes(cp1256.encode() + "سؤال".encode("cp1256") + b"\n")
    return d


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    return make_bad_files(tmp_path_factory.mktemp("bad-data"))


# (flags, what the one-line message must contain). Every case: exit 2, no traceback.
# A value outside a flag's choices is refused by tyro while parsing ("invalid choice ...
# Expected one of (...)": the flag, the value and the choices); every other message is this
# package's, with a "fix:".
CASES = {
    "inverted ratio bounds": (
        ["--controller.p-min", "0.9", "--controller.p-max", "0.2"],
        "p_min=0.9, p_max=0.2",
    ),
    "group size below 2": (["--controller.group-size", "1"], "group_size=1"),
    "K below 1": (["--controller.update-interval", "0"], "update_interval=0"),
    "p_init outside bounds": (["--controller.p-init", "0.95"], "p_init=0.95"),
    "zero max step": (["--controller.max-step-delta", "0"], "max_step_delta=0"),
    "budget below K": (["--controller.train-steps", "3"], "train_steps=3"),
    "unknown reward mode": (["--controller.reward-mode", "bogus"], "invalid choice 'bogus'"),
    "unknown p* rule": (["--controller.pstar-rule", "median"], "invalid choice 'median'"),
    "empty micro-dev": (["--micro-dev-rows", "0"], "micro_dev_rows=0"),
    "unknown agent": (["--agent", "dqn"], "invalid choice 'dqn'"),
    "fixed ratio out of range": (["--agent", "fixed", "--fixed-ratio", "1.5"], "--fixed-ratio 1.5"),
    "unknown preset": (["--preset", "huge"], "preset='huge'"),
    "unknown method": (["--method", "magic"], "method='magic'"),
    "unknown task": (["--task", "translation"], "task='translation'"),
    "unknown language": (["--target", "xx"], "'xx'"),
    "unknown merge form": (["--merge.form", "concat"], "invalid choice 'concat'"),
    "missing data file": (["--target-data", "{d}/absent.jsonl"], "absent.jsonl"),
    "unsupported data file": (["--target-data", "{d}/notes.txt"], "notes.txt"),
    "malformed data file": (["--target-data", "{d}/malformed.jsonl"], "malformed.jsonl"),
    "answer span off its context": (["--target-data", "{d}/span.jsonl"], "answer_start"),
    "too few target rows": (["--target-data", "{d}/few.jsonl"], "few.jsonl"),
    "model dir without weights": (["--model", "{d}/empty-model"], "empty-model"),
    "model with pickle weights only": (["--model", "{d}/bin-model"], "safetensors"),
    "non-numeric ratio": (["--controller.p-min", "abc"], "abc"),
    "non-numeric seed": (["--seed", "x1"], "x1"),
    "negative seed": (["--seed", "-1"], "seed=-1"),
    "seed beyond numpy's range": (["--seed", "4294967296"], "seed=4294967296"),
    "negative policy spread": (["--grpo.sigma-init-frac", "-0.1"], "sigma_init_frac=-0.1"),
    "NaN KL weight": (["--grpo.beta", "nan"], "beta=nan"),
    "infinite GRPO step": (["--grpo.learning-rate", "inf"], "learning_rate=inf"),
    "NaN entropy bonus": (["--grpo.entropy-bonus", "nan"], "entropy_bonus=nan"),
    "NaN adapter learning rate": (["--final.learning-rate", "nan"], "learning_rate=nan"),
    "resume and overwrite": (["--resume", "--overwrite"], "--resume and --overwrite"),
    "resume without a run": (["--resume", "--run-name", "never-ran"], "no run to resume"),
    # a flag nothing in the run reads
    "GRPO flag with another agent": (
        ["--agent", "random", "--grpo.beta", "0.2"],
        "--grpo.beta (the agent(s) ['random'] do not read GRPO settings)",
    ),
    "GRPO flag with the default agent": (
        ["--grpo.beta", "0.2"],
        "--grpo.beta (the agent(s) ['thompson'] do not read GRPO settings)",
    ),
    "controller flag without a controller run": (
        ["--agent", "fixed", "--controller.train-steps", "20"],
        "--controller.train-steps (--agent fixed runs no controller episode)",
    ),
    "fixed ratio for another agent": (
        ["--fixed-ratio", "0.5"],
        "--fixed-ratio 0.5 with --agent thompson",
    ),
    "ROUGE convention on QA": (["--eval.rouge", "unstemmed"], "ROUGE scores summaries only"),
    "natural-update flag under the paper's update": (
        ["--method", "paper", "--grpo.max-mu-step", "0.1"],
        "--grpo.max-mu-step (used by --grpo.update natural only)",
    ),
    "final-run cost without the rule that reads it": (
        ["--controller.pstar-rule", "spline", "--controller.final-cost", "0.3"],
        "--controller.final-cost (read by --controller.pstar-rule spline_cost and "
        "spline_recent_cost only)",
    ),
    "negative final-run cost": (
        ["--controller.pstar-rule", "spline_cost", "--controller.final-cost", "-0.1"],
        "final_cost=-0.1",
    ),
    "settle tolerance without settling": (
        ["--controller.settle-tol", "0.05"],
        "--controller.settle-tol (read only with --controller.settle-rounds > 0)",
    ),
    "LoRA target module the model lacks": (["--target-modules", "c_attn"], "--target-modules"),
    # placement
    "unknown device": (["--device", "tpu"], "device='tpu'"),
    "CUDA on a machine without it": (["--device", "cuda"], "no CUDA device"),
    "unknown dtype": (["--dtype", "fp8"], "invalid choice 'fp8'"),
    "unknown strategy": (["--strategy", "zero3"], "invalid choice 'zero3'"),
    "unknown mask scope": (["--merge.mask-scope", "layer"], "invalid choice 'layer'"),
    "unknown final importance": (["--final.importance", "fisher"], "invalid choice 'fisher'"),
    "negative rebuild interval": (["--final.rebuild-every", "-1"], "rebuild_every=-1"),
    # numbers that parse but cannot mean anything (NaN, inf, out of range)
    "NaN ratio bound": (["--controller.p-min", "nan"], "p_min=nan"),
    "infinite max step": (["--controller.max-step-delta", "inf"], "max_step_delta=inf"),
    "NaN policy spread": (["--grpo.sigma-init-frac", "nan"], "sigma_init_frac=nan"),
    "infinite KL weight": (["--grpo.beta", "inf"], "beta=inf"),
    "negative spread floor": (["--grpo.sigma-min", "-0.1"], "sigma_min=-0.1"),
    "zero LoRA rank": (["--target-lora.r", "0"], "r=0"),
    "LoRA dropout of one": (["--source-lora.lora-dropout", "1.0"], "lora_dropout=1.0"),
    "negative final learning rate": (["--final.learning-rate", "-0.001"], "learning_rate=-0.001"),
    "final run of zero steps": (["--final.max-steps", "0"], "max_steps=0"),
    "negative weight decay": (["--target-lora.weight-decay", "-1"], "weight_decay=-1"),
    "scoring batch of zero": (["--eval.eval-batch-size", "0"], "eval_batch_size=0"),
    "no tokens to generate": (["--eval.max-new-tokens", "0"], "max_new_tokens=0"),
    "negative micro-dev": (["--micro-dev-rows", "-3"], "micro_dev_rows=-3"),
    "empty test split": (["--test-rows", "0"], "test_rows=0"),
    "NaN Thompson jitter": (
        ["--agent", "thompson", "--thompson.jitter", "nan"],
        "ThompsonConfig.jitter=(nan,) is invalid",
    ),
    "Thompson flag with the GRPO agent": (
        ["--agent", "grpo", "--thompson.explore", "2"],
        "--thompson.explore",
    ),
    "minimum rounds beyond the budget": (
        ["--controller.settle-rounds", "2", "--controller.min-rounds", "100"],
        "min_rounds=100",
    ),
    # paths and files
    "run name that leaves the output dir": (["--run-name", "../../x"], "not a plain directory"),
    "run name with a slash": (["--run-name", "a/b"], "run_name='a/b'"),
    "output dir that is a file": (["--out-dir", "{d}/notes.txt"], "is a file, not a directory"),
    "output dir under a file": (["--out-dir", "{d}/notes.txt/runs"], "is a file, not a directory"),
    "data file not UTF-8": (["--target-data", "{d}/cp1256.jsonl"], "not UTF-8"),
    "two rows under one id": (["--target-data", "{d}/clash.jsonl"], "the id 'r8' is also row 8's"),
    "answer offset that only matches backwards": (
        ["--target-data", "{d}/negative.jsonl"],
        "answer_start=-6",
    ),
    "over-long run name": (["--run-name", "x" * 300], "300 bytes long"),
    "run name that is a file": (["--out-dir", "{d}", "--run-name", "notes.txt"], "is a file;"),
    "output dir not writable": (["--out-dir", "/sys/grasp-runs"], "cannot write '/sys/grasp-runs'"),
    # protocol, decoding, probing
    "unknown protocol": (["--final.protocol", "one-run"], "invalid choice 'one-run'"),
    "continuation of zero steps": (
        ["--final.protocol", "single-pass", "--final.continue-steps", "0"],
        "continue_steps=0",
    ),
    "continuation without single pass": (
        ["--final.continue-steps", "20"],
        "--final.continue-steps (read by --final.protocol single-pass only)",
    ),
    "decoding batch of zero": (["--eval.decode-batch-size", "0"], "decode_batch_size=0"),
    "unknown decoding order": (["--eval.decode-order", "random"], "invalid choice 'random'"),
    "unknown probe batching": (["--controller.probe-batch", "pairs"], "invalid choice 'pairs'"),
    "group probing for an agent that cannot announce": (
        ["--controller.probe-batch", "group", "--agent", "sac"],
        "--controller.probe-batch group with agent(s) ['sac']",
    ),
    "group probing on a sharded backbone": (
        ["--agent", "grpo", "--controller.probe-batch", "group", "--strategy", "fsdp"],
        "--controller.probe-batch group with --strategy fsdp",
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
    tyro_parse_error = "Expected one of" in err or case in ("non-numeric ratio", "non-numeric seed")
    if not tyro_parse_error:
        assert "fix" in err, (case, err)
    MESSAGES[case] = err


MESSAGES: dict[str, str] = {}
"""Each case's message, as the test saw it (written to docs/BAD_INPUTS.md on request)."""


@pytest.fixture(scope="module", autouse=True)
def report():
    """With GRASP_BAD_INPUTS_REPORT=<file>, write the matrix there once the cases ran.

    scripts/bad_input_report.py runs this file that way: the test module is the one source
    of the cases, and the report shows the messages the tests checked.
    """
    yield
    target = os.environ.get("GRASP_BAD_INPUTS_REPORT")
    if not target:
        return
    lines = [
        "# Bad-input matrix of `runners/train_agent.py`",
        "",
        "Generated by `.venv/bin/python scripts/bad_input_report.py`; every row is a case of",
        "`tests/test_bad_inputs.py`, run through the runner's command line on the tiny preset",
        "(exit code 2, no traceback, the message below). `{d}` is a scratch folder.",
        "",
        "| case | flags | message |",
        "|---|---|---|",
    ]
    for case in sorted(MESSAGES):
        flags = " ".join(CASES[case][0]).replace("|", "\\|")
        message = re.sub(r"/tmp/\S*?/(bad-data\d*|test_bad_input\S*?\d+)", "{d}", MESSAGES[case])
        message = message.replace(str(ROOT) + "/", "").replace("|", "\\|")
        lines.append(f"| {case} | `{flags}` | {message} |")
    lines += ["", *OUTSIDE_THE_TABLE]
    Path(target).write_text("\n".join(lines) + "\n", encoding="utf-8")


OUTSIDE_THE_TABLE = [
    "## Faults tested outside the table",
    "",
    "Cases that need a prepared state, an environment variable or another runner, each a test:",
    "",
    "| case | test |",
    "|---|---|",
    "| an empty `GRASP_CACHE_DIR`; one that names a file | `tests/test_bad_inputs.py::"
    "test_a_cache_dir_that_is_empty_or_a_file_fails_before_any_work` |",
    "| a cache directory that cannot be written | `tests/test_bad_inputs.py::"
    "test_cache_dir_not_writable` |",
    "| a run that failed on bad data, rerun under its name with the corrected input (no "
    "--overwrite); a run with results refused with the way out | `tests/test_bad_inputs.py::"
    "test_a_failed_run_can_be_rerun_under_its_name_with_the_corrected_input` |",
    "| a torn metrics.json redone by `--resume`; a config.json that is a list; a torn config.json"
    " | `tests/test_bad_inputs.py::test_resume_reads_torn_or_foreign_run_files_with_clear_messages`"
    " |",
    "| the analysis tools on another runner's metrics.json, a non-UTF-8 file, no run directory, "
    "an `--out` that is a directory (6 cases) | `tests/test_bad_inputs.py::"
    "test_the_analysis_tools_refuse_the_wrong_input_with_one_line` |",
    "| an unreachable `--ray-address`; one that is not HOST:PORT (before any work) | "
    "`tests/test_bad_inputs.py::test_an_unreachable_ray_cluster_fails_before_any_work` |",
    "| the disk full at the last file | `tests/test_bad_inputs.py::"
    "test_disk_full_at_the_last_file_loses_nothing_and_resumes` |",
    "| adapter cache entries: broken weights, a missing manifest, a manifest that is a list, an "
    "empty manifest, a manifest that leaves a file out | `tests/test_adapters.py::"
    "test_adapter_cache_reuses_and_rebuilds_corrupted_entries` |",
    "| a backbone cache entry with corrupted weights | `tests/test_backbone.py::"
    "test_corrupted_cache_entry_is_reported_and_rebuilt` |",
    "| repeated rows (used once) and a reused id (refused); a UTF-8 byte-order mark (read) | "
    "`tests/test_loaders.py::test_repeated_rows_are_used_once_and_a_reused_id_is_refused`, "
    "`test_a_byte_order_mark_is_read_as_utf8` |",
    "| a torn last line of history.jsonl; a torn TensorBoard events file | "
    "`tests/test_interrupted_writes.py` |",
    "| `--resume` without the run directory's lock; run names `.` and `..` | "
    "`tests/test_edge_rules.py` |",
]
"""What docs/BAD_INPUTS.md lists below the table: the faults other tests hold."""


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


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", "GRASP_CACHE_DIR is set but empty"), ("{file}", "is a file, not a directory")],
)
def test_a_cache_dir_that_is_empty_or_a_file_fails_before_any_work(
    value, expected, tmp_path, monkeypatch, capsys
):
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("GRASP_CACHE_DIR", value.replace("{file}", str(tmp_path / "a-file")))
    code, err = _cli(monkeypatch, capsys, ["--preset", "tiny", "--out-dir", str(tmp_path / "r")])
    assert code == 2 and expected in err and "fix:" in err
    assert not (tmp_path / "r").exists()  # checked before the run directory was made


def test_a_failed_run_can_be_rerun_under_its_name_with_the_corrected_input(
    bad_files, tiny_backbone_dir, tmp_path, monkeypatch, capsys
):
    """A data error found while preparing leaves only the run directory's lock behind."""
    flags = ["--preset", "tiny", "--out-dir", str(tmp_path), "--run-name", "fix-me"]
    flags += ["--controller.train-steps", "10", "--controller.update-interval", "5"]
    code, err = _cli(monkeypatch, capsys, [*flags, "--target-data", f"{bad_files}/few.jsonl"])
    assert code == 2 and "few.jsonl" in err
    assert (tmp_path / "fix-me").is_dir()
    code, err = _cli(monkeypatch, capsys, flags)  # the corrected input, same name
    assert code == 0, err
    assert (tmp_path / "fix-me" / "metrics.json").is_file()
    # a run that stopped with results in it is refused with the exact way out
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    code, err = _cli(monkeypatch, capsys, [*flags[:3], str(tmp_path), "--run-name", "half"])
    assert code == 2 and "unfinished run: pass --resume" in err


def test_resume_reads_torn_or_foreign_run_files_with_clear_messages(
    tiny_backbone_dir, tmp_path, monkeypatch, capsys
):
    flags = ["--preset", "tiny", "--out-dir", str(tmp_path), "--run-name", "r"]
    flags += ["--controller.train-steps", "10", "--controller.update-interval", "5"]
    assert _cli(monkeypatch, capsys, flags)[0] == 0
    run = tmp_path / "r"
    done = json.loads((run / "metrics.json").read_text())
    # a torn metrics.json is no finished run: --resume redoes the final stage
    (run / "metrics.json").write_text((run / "metrics.json").read_text()[:40])
    code, err = _cli(monkeypatch, capsys, [*flags, "--resume"])
    assert code == 0, err
    again = json.loads((run / "metrics.json").read_text())
    assert again["learned_ratio"] == done["learned_ratio"] and again["test"] == done["test"]
    # a config.json that is not a run's config, or torn, names the file and the fix
    config = (run / "config.json").read_text()
    for text, expected in (("[1, 2]", "holds a list"), (config[:30], "is not valid JSON")):
        (run / "config.json").write_text(text)
        (run / "metrics.json").unlink(missing_ok=True)
        code, err = _cli(monkeypatch, capsys, [*flags, "--resume"])
        assert code == 2 and expected in err and "config.json" in err and "fix:" in err, err


def test_the_analysis_tools_refuse_the_wrong_input_with_one_line(tmp_path, monkeypatch, capsys):
    from helpers.runners import load_runner

    analyze, grid_report = load_runner("analyze"), load_runner("grid_report")
    other = tmp_path / "other-run"
    other.mkdir()
    (other / "metrics.json").write_text(json.dumps({"task": "qa", "source": "en", "target": "ar"}))
    latin1 = tmp_path / "latin1-run"
    latin1.mkdir()
    (latin1 / "metrics.json").write_bytes('{"task": "caf\xe9"}'.encode("latin-1"))
    cases = [
        (grid_report, [str(other)], "is not a grid search's metrics (it lacks ['points'])"),
        (grid_report, [str(latin1)], "is not UTF-8 text"),
        (grid_report, [str(tmp_path / "nowhere")], "is not a run directory"),
        (grid_report, [str(other), "--out", str(tmp_path)], "is a directory"),
        (analyze, [str(other)], "holds no TensorBoard event files"),
        (analyze, [str(other), "--out", str(tmp_path)], "is a directory"),
    ]
    for module, argv, expected in cases:
        monkeypatch.setattr(sys, "argv", ["tool.py", *argv])
        with pytest.raises(SystemExit) as exit_info:
            run_cli(module.main, module.Args)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and expected in err and "Traceback" not in err, err


def test_disk_full_at_the_last_file_loses_nothing_and_resumes(
    tiny_backbone_dir, tmp_path, monkeypatch, capsys
):
    """ENOSPC when metrics.json is renamed into place: exit 2, the files written so far and
    the final run's checkpoint stay, and --resume (space freed) finishes the run."""
    import errno
    import os

    flags = [
        "--preset",
        "tiny",
        "--controller.train-steps",
        "10",
        "--controller.update-interval",
        "5",
    ]
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


@pytest.mark.parametrize(
    ("address", "expected"),
    [("127.0.0.1:1", "is unreachable"), ("no-port", "is not HOST:PORT")],
)
def test_an_unreachable_ray_cluster_fails_before_any_work(
    address, expected, tmp_path, monkeypatch, capsys
):
    """The benchmark checks --ray-address before it prepares anything (it once hung on it)."""
    pytest.importorskip("ray")
    from helpers.runners import load_runner

    benchmark = load_runner("benchmark")
    argv = ["benchmark.py", "--preset", "tiny", "--workers", "2", "--ray-address", address]
    monkeypatch.setattr(sys, "argv", [*argv, "--out-dir", str(tmp_path), "--run-name", "b"])
    with pytest.raises(SystemExit) as exit_info:
        run_cli(benchmark.main, benchmark.Args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and expected in err and "fix:" in err, err
    assert not (tmp_path / "b").exists()  # nothing prepared, no run directory made
