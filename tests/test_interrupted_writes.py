"""Interrupted writes (issue 14): a kill or a full disk mid-write never leaves a torn file.

Every kind of file the runs write is checked the same way: an older version is in place (or
none), the write of a new one is interrupted, and then the target is the older version byte
for byte (or still absent), whatever the killed writer left is hidden litter that no reader
opens, and the next writer (a rerun, a --resume) cleans it up and reads or writes fine.
Interruptions: SIGKILL at exact points (GRASP_FAULT, in a subprocess: `half-<name>` with half
of a file's bytes written, `write-<name>` with the new version complete but not renamed in,
`swap-<name>` between the two renames of a directory swap, `history-append` inside a
history.jsonl line), and write errors part-way through a file (RLIMIT_FSIZE makes write() fail
with EFBIG, as a full disk does with ENOSPC; ENOSPC itself is injected in-process).
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import grasp_env.atomic as dirs
from grasp_env.atomic import OLD_MARK, TMP_MARK, atomic_write_text, remove_litter
from grasp_env.runs.dirs import RoundLogger, write_json

ROOT = Path(__file__).resolve().parents[1]
HELPER = ROOT / "tests" / "helpers" / "interrupt_write.py"
KILLED = -signal.SIGKILL
RUN_FLAGS = [
    "--preset",
    "tiny",
    "--controller.train-steps",
    "20",
    "--controller.update-interval",
    "5",
]


def _env(fault: str | None = None, **extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    env.pop("GRASP_FAULT", None)
    env.pop("GRASP_FAULT_ONCE", None)
    if fault:
        env["GRASP_FAULT"] = fault
    return env


def _helper(kind: str, target: Path, version: int, *extra: str, fault: str | None = None):
    """Run one write of tests/helpers/interrupt_write.py (killed when `fault` says so)."""
    return subprocess.run(
        [sys.executable, str(HELPER), kind, str(target), str(version), *extra],
        capture_output=True,
        text=True,
        env=_env(fault),
        timeout=300,
    )


def _runner(script: str, *args: str, fault: str | None = None):
    return subprocess.run(
        [sys.executable, str(ROOT / "runners" / script), *args],
        capture_output=True,
        text=True,
        env=_env(fault),
        timeout=600,
    )


def _snapshot(path: Path) -> bytes | dict[str, bytes] | None:
    """A file's bytes, a directory's {relative path: bytes}, or None when absent."""
    if not path.exists():
        return None
    if path.is_file():
        return path.read_bytes()
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def _litter(directory: Path) -> list[str]:
    """Names of killed writers' temporaries in `directory`."""
    return sorted(
        p.name
        for p in directory.iterdir()
        if p.name.startswith(".") and (TMP_MARK in p.name or OLD_MARK in p.name)
    )


def _ok(proc) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]


def _killed(proc) -> None:
    assert proc.returncode == KILLED, (
        f"the fault point was not reached (rc {proc.returncode}): {proc.stderr[-3000:]}"
    )


# ------------------------------------------------------------------------- single files


@pytest.mark.parametrize("fault", ["half-f.txt:1", "write-f.txt:1"])
@pytest.mark.parametrize("previous", [True, False])
def test_a_killed_file_write_leaves_the_previous_version_or_none(tmp_path, fault, previous):
    target = tmp_path / "f.txt"
    if previous:
        _ok(_helper("text", target, 1))
    before = _snapshot(target)
    _killed(_helper("text", target, 2, fault=fault))

    assert _snapshot(target) == before
    [tmp] = _litter(tmp_path)  # the killed writer's temporary: hidden, never read
    new = b"version 2\n" * 200
    written = (tmp_path / tmp).read_bytes()
    assert written == (new[: len(new) // 2] if fault.startswith("half") else new)
    assert remove_litter(tmp_path) == [tmp_path / tmp] and not _litter(tmp_path)
    _ok(_helper("text", target, 2))  # the rerun writes it whole
    assert target.read_bytes() == new


def test_a_write_error_mid_file_leaves_the_previous_version(tmp_path):
    target = tmp_path / "f.txt"
    _ok(_helper("text", target, 1))
    before = target.read_bytes()
    starved = _helper("text", target, 2, "--fsize", "1000")  # fails after 1000 of 2000 bytes
    assert starved.returncode == 1 and "File too large" in starved.stderr
    assert str(target) in starved.stderr  # the error names the file, not our temporary
    assert target.read_bytes() == before and not _litter(tmp_path)


def test_disk_full_names_the_file_and_keeps_what_was_written(tmp_path, monkeypatch):
    from grasp_env.runs.cli import filesystem_error

    target = tmp_path / "metrics.json"
    write_json(target, {"version": 1})
    before = target.read_bytes()

    def full(path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a delayed write reports it

    monkeypatch.setattr(dirs, "_fsync", full)
    with pytest.raises(OSError) as info:
        write_json(target, {"version": 2, "pad": "x" * 10_000})
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert target.read_bytes() == before and not _litter(tmp_path)
    message = filesystem_error(info.value)
    assert str(target) in message and "free space" in message


def test_atomic_files_get_the_usual_permissions(tmp_path):
    """mkstemp's 0600 would make a run's JSON unreadable to the group that reads the runs."""
    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    write_json(tmp_path / "atomic.json", {})
    atomic_write_text(tmp_path / "atomic.txt", "")
    for name in ("atomic.json", "atomic.txt"):
        assert (tmp_path / name).stat().st_mode == plain.stat().st_mode


# -------------------------------------------------------------------------- directories

# write-d: new directory complete, not swapped in; swap-d with RENAME_EXCHANGE: swapped, old
# not yet deleted; swap-d without it: old moved aside, new not yet moved in (no directory).
DIR_CASES = [
    ("write-d:1", (), "old"),
    ("swap-d:1", (), "new if exchanged"),
    ("swap-d:1", ("--no-exchange",), None),
]


def _exchange_works(directory: Path) -> bool:
    """Whether this system and filesystem swap directories in one step (renameat2)."""
    a, b = directory / "xa", directory / "xb"
    a.mkdir()
    b.mkdir()
    try:
        return dirs._exchange(a, b)
    finally:
        a.rmdir()
        b.rmdir()


@pytest.mark.parametrize(("fault", "extra", "left"), DIR_CASES)
def test_a_killed_directory_write_leaves_the_old_or_new_whole_never_a_mix(
    tmp_path, fault, extra, left
):
    target = tmp_path / "d"
    _ok(_helper("dir", target, 1))
    old = _snapshot(target)
    _killed(_helper("dir", target, 2, *extra, fault=fault))
    new = {f"part{i}.txt": b"version 2\n" * 2000 for i in range(3)}

    if left == "new if exchanged":
        left = "new" if _exchange_works(tmp_path) else None
    assert _snapshot(target) == {"old": old, "new": new, None: None}[left]
    assert _litter(tmp_path)  # what the kill cut short, under hidden names
    _ok(_helper("dir", target, 3, *extra))  # a rerun swaps its version in over whatever is left
    assert _snapshot(target) == {f"part{i}.txt": b"version 3\n" * 2000 for i in range(3)}
    remove_litter(tmp_path)
    assert not _litter(tmp_path) and _snapshot(target)["part0.txt"] == b"version 3\n" * 2000


def test_a_killed_first_directory_write_leaves_no_directory(tmp_path):
    target = tmp_path / "d"
    _killed(_helper("dir", target, 1, fault="write-d:1"))
    assert not target.exists() and _litter(tmp_path)


def test_a_write_error_mid_directory_leaves_the_previous_one(tmp_path):
    target = tmp_path / "d"
    _ok(_helper("dir", target, 1))
    old = _snapshot(target)
    starved = _helper("dir", target, 2, "--fsize", "10000")  # a 20000-byte file fails
    assert starved.returncode == 1 and "File too large" in starved.stderr
    assert _snapshot(target) == old and not _litter(tmp_path)


# ------------------------------------------------------------- adapters, merged models


@pytest.fixture(scope="module")
def lora_model(tiny_backbone_dir):
    """A LoRA model on the tiny backbone: the 'previous version' the subprocesses replace."""
    import torch

    from grasp_env.lm.backbone import load_backbone
    from grasp_env.lm.host import LoraShape, attach_lora
    from grasp_env.lm.pruning import lora_parameters

    base, tok = load_backbone(tiny_backbone_dir)
    model = attach_lora(base, LoraShape(2, 8, 0.0, ("q_proj",)), 0)
    with torch.no_grad():
        for p in lora_parameters(model).values():
            p.fill_(0.05)
    return model, tok


def test_a_killed_or_starved_adapter_save_leaves_the_previous_adapter(
    tmp_path, lora_model, tiny_backbone_dir
):
    from peft import PeftModel
    from safetensors.torch import load_file

    from grasp_env.lm.backbone import load_backbone
    from grasp_env.lm.export import save_adapter

    target = tmp_path / "adapter"
    save_adapter(lora_model[0], target)
    old = _snapshot(target)
    backbone = ("--backbone", str(tiny_backbone_dir))
    _killed(_helper("adapter", target, 2, *backbone, fault="write-adapter:1"))
    assert _snapshot(target) == old
    starved = _helper("adapter", target, 2, *backbone, "--fsize", "1000")  # weights: 2 kB
    assert starved.returncode == 1, starved.stderr[-2000:]
    assert _snapshot(target) == old and len(_litter(tmp_path)) == 1  # only the killed one's

    # the previous adapter still loads, with its own weights
    assert all(
        float(v.abs().max()) == pytest.approx(0.05)
        for v in load_file(target / "adapter_model.safetensors").values()
    )
    PeftModel.from_pretrained(load_backbone(tiny_backbone_dir)[0], target)


def test_a_killed_merged_export_leaves_the_previous_export(tmp_path, lora_model, tiny_backbone_dir):
    from transformers import AutoModelForCausalLM

    from grasp_env.lm.export import export_merged

    target = tmp_path / "merged"
    export_merged(lora_model[0], target, lora_model[1])
    old = _snapshot(target)
    backbone = ("--backbone", str(tiny_backbone_dir))
    _killed(_helper("merged", target, 2, *backbone, fault="write-merged:1"))
    assert _snapshot(target) == old
    AutoModelForCausalLM.from_pretrained(target)
    # a new export replaces the directory whole: no file of the old one (its tokenizer) stays
    export_merged(lora_model[0], target, None)
    files = set(_snapshot(target))
    assert files < set(old) and "tokenizer.json" in set(old) - files
    AutoModelForCausalLM.from_pretrained(target)


# ---------------------------------------------------------------------------- the cache


def _module(path: Path):
    """Import a script (a runner, a helper) by path: neither folder is a package."""
    name = f"_interrupted_{path.stem}"
    if name not in sys.modules:  # dataclasses look their module up there
        spec = importlib.util.spec_from_file_location(name, path)
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def _mini_backbone_config():
    return _module(HELPER)._mini_backbone_config()


def test_a_killed_backbone_build_leaves_no_entry_and_is_rebuilt(tmp_path, monkeypatch):
    from grasp_env.lm.backbone import ensure_tiny_backbone, tiny_backbone_path, verify_manifest

    monkeypatch.setenv("GRASP_CACHE_DIR", str(tmp_path / "cache"))
    cfg = _mini_backbone_config()
    entry = tiny_backbone_path(cfg)
    killed = subprocess.run(
        [sys.executable, str(HELPER), "backbone", "-", "1"],
        capture_output=True,
        text=True,
        env=_env(f"write-{entry.name}:1"),
        timeout=300,
    )
    _killed(killed)
    assert f"ENTRY {entry}" in killed.stdout
    assert not entry.exists() and _litter(entry.parent)  # a complete build, never trusted
    messages = []
    assert ensure_tiny_backbone(cfg, progress=False, log=messages.append) == entry
    assert "built tiny backbone" in messages[0] and verify_manifest(entry) is None
    assert not _litter(entry.parent)  # the builder removed what the killed one left


def test_a_killed_adapter_cache_write_leaves_no_entry_and_is_retrained(
    lora_model, tiny_backbone_dir, isolated_cache
):
    from grasp_env.lm.backbone import verify_manifest
    from grasp_env.lm.cache import adapter_key, cached_adapter

    name = "interrupted-entry"
    parts = {"name": name, "v": 1}  # as the helper keys it
    entry = isolated_cache / "adapters" / f"{name}-{adapter_key(parts)}"
    backbone = ("--backbone", str(tiny_backbone_dir))
    killed = _helper("cached", Path(name), 2, *backbone, fault=f"write-{entry.name}:1")
    _killed(killed)
    assert f"ENTRY {entry}" in killed.stdout
    assert not entry.exists() and _litter(entry.parent)

    trained = []
    state, _ = cached_adapter(parts, lambda: (trained.append(1) or lora_model[0], {}))
    assert trained == [1] and verify_manifest(entry) is None and state
    assert not _litter(entry.parent)
    cached_adapter(parts, lambda: (trained.append(1) or lora_model[0], {}))
    assert trained == [1]  # the rebuilt entry is used from now on


# ------------------------------------------------------------------ append-only logs


def _record(round_: int) -> dict:
    return {"round": round_, "step": 5 * round_, "note": "埃及 ✓"}


def test_a_torn_last_history_line_is_dropped_on_resume(tmp_path):
    """Cut at every byte of the last line, including inside multi-byte UTF-8 characters."""
    run = tmp_path / "run"
    kept = [json.dumps(_record(r), ensure_ascii=False).encode() + b"\n" for r in (1, 2)]
    last = json.dumps(_record(3), ensure_ascii=False).encode() + b"\n"
    for cut in range(1, len(last) - 1):
        run.mkdir()
        (run / "history.jsonl").write_bytes(b"".join(kept) + last[:cut])
        logger = RoundLogger(run, {}, resume_rounds=2)
        logger.writer.close()
        got = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
        assert got == [_record(1), _record(2)], cut
        with pytest.raises(ValueError, match="2 complete rounds but the checkpoint has 3"):
            (run / "history.jsonl").write_bytes(b"".join(kept) + last[:cut])
            RoundLogger(run, {}, resume_rounds=3)
        for p in run.iterdir():
            p.unlink()
        run.rmdir()


def _events(directory: Path) -> list[Path]:
    return sorted(directory.glob("events.out.tfevents.*"))


def test_a_torn_tensorboard_events_file_still_reads(tmp_path):
    """TensorBoard's events files are append-only by design; a kill can tear their last record.

    Each record carries its length and CRCs: the reader stops at a torn record, and goes on
    with the next events file (a resumed run's writer, with purge_step). Cut at every byte.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    read_scalars = _module(ROOT / "runners" / "analyze.py").read_scalars
    whole = tmp_path / "whole"
    writer = SummaryWriter(log_dir=str(whole))
    for step in range(1, 6):
        writer.add_scalar("rewards/mean", float(step), step)
    writer.close()
    [events] = _events(whole)
    data = events.read_bytes()
    full = [(s, float(s)) for s in range(1, 6)]
    seen = set()
    for cut in range(1, len(data)):
        run = tmp_path / f"cut{cut}"
        run.mkdir()
        # the killed run's file: named older than the resumed writer's, as a real one is (the
        # reader goes through a directory's events files in name order, time first)
        (run / "events.out.tfevents.0000000001.killed.1.0").write_bytes(data[:cut])
        alone = read_scalars(run).get("rewards/mean", [])
        assert alone == full[: len(alone)], cut  # complete records only, in order
        seen.add(len(alone))
        resumed = SummaryWriter(log_dir=str(run), purge_step=len(alone) + 1)
        resumed.add_scalar("rewards/mean", 99.0, len(alone) + 1)
        resumed.close()
        acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
        acc.Reload()
        got = [(e.step, e.value) for e in acc.Scalars("rewards/mean")]
        assert got == [*alone, (len(alone) + 1, 99.0)], cut
    assert seen == set(range(5))  # every record was torn somewhere (cut short of the end)


# ------------------------------------------------------------------------------ plots

PNG_END = b"IEND\xaeB`\x82"


def _grid_run(directory: Path, seed: int, shift: float) -> Path:
    points = [
        {"ratio": r, "test": {"em": 10 * r + shift}, "test_loss": 2 - r + shift}
        for r in (0.2, 0.4, 0.6)
    ]
    run = directory / f"grid-s{seed}"
    run.mkdir(parents=True, exist_ok=True)
    metrics = {"task": "qa", "source": "en", "target": "ar", "seed": seed, "preset": "tiny"}
    write_json(run / "metrics.json", {**metrics, "points": points})
    return run


def test_a_killed_grid_report_leaves_the_previous_plot(tmp_path):
    runs = [str(_grid_run(tmp_path, s, 0.0)) for s in (1, 2)]
    out = tmp_path / "plots" / "grid.png"
    _ok(_runner("grid_report.py", *runs, "--out", str(out)))
    old = out.read_bytes()
    assert old.startswith(b"\x89PNG") and old.endswith(PNG_END)
    runs = [str(_grid_run(tmp_path, s, 1.0)) for s in (1, 2)]  # other numbers: another plot
    _killed(_runner("grid_report.py", *runs, "--out", str(out), fault="write-grid.png:1"))
    assert out.read_bytes() == old and _litter(out.parent)
    _ok(_runner("grid_report.py", *runs, "--out", str(out)))
    new = out.read_bytes()
    assert new != old and new.startswith(b"\x89PNG") and new.endswith(PNG_END)


def test_a_killed_analysis_figure_leaves_no_file(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path / "run"
    writer = SummaryWriter(log_dir=str(run))
    for step in (5, 10):
        writer.add_scalar("controller/mu", 0.1 * step, step)
    writer.close()
    out = tmp_path / "analysis.png"
    _killed(_runner("analyze.py", str(run), "--out", str(out), fault="write-analysis.png:1"))
    assert not out.exists() and _litter(tmp_path)
    _ok(_runner("analyze.py", str(run), "--out", str(out)))
    assert out.read_bytes().endswith(PNG_END)


# --------------------------------------------------------------------- the main job


def test_the_main_job_killed_in_each_write_resumes_to_a_whole_run(
    isolated_cache, tiny_backbone_dir, tmp_path
):
    """One run killed in turn inside each kind of file it writes, resumed after each kill.

    history.jsonl mid-line (round 2), adapter/ (complete but not swapped in) and metrics.json
    (half written): each kill must leave the run resumable, and the last resume a complete
    run with no torn or stray file. One chain of four tiny runs keeps this affordable (each
    is mostly imports and loading the cached adapters).
    """
    from safetensors.torch import load_file

    run_args = [*RUN_FLAGS, "--out-dir", str(tmp_path), "--run-name", "r"]
    run = tmp_path / "r"
    _killed(_runner("train_agent.py", *run_args, fault="history-append:2"))
    history = (run / "history.jsonl").read_bytes()
    assert history.count(b"\n") == 1 and not history.endswith(b"\n")  # round 2 torn

    for fault, absent in (
        ("write-adapter:1", ("adapter", "metrics.json")),
        ("half-metrics.json:1", ("metrics.json",)),
    ):
        _killed(_runner("train_agent.py", *run_args, "--resume", fault=fault))
        assert not any((run / name).exists() for name in absent), fault
        assert _litter(run), fault  # the cut-short file, under a hidden name

    _ok(_runner("train_agent.py", *run_args, "--resume"))
    assert not _litter(run)
    rounds = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rounds] == [5, 10, 15, 20]
    metrics = json.loads((run / "metrics.json").read_text())
    controller = json.loads((run / "controller.json").read_text())
    assert metrics["learned_ratio"] == controller["learned_ratio"] and metrics["resumed"]
    # the default agent's (Thompson's) state: its probes, its round and its sampling stream
    assert {"ratios", "losses", "round", "rng", "config"} <= set(
        json.loads((run / "agent.json").read_text())
    )
    assert load_file(run / "adapter" / "adapter_model.safetensors")
    assert json.loads((run / "adapter" / "adapter_config.json").read_text())["r"] > 0


def test_a_failed_agent_save_leaves_the_previous_archive(tmp_path, monkeypatch):
    """A disk full while an agent saves its archive: the previous archive stays whole."""
    from agents.baselines import RandomAgent

    def full(path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    agent = RandomAgent.__new__(RandomAgent)  # save needs only the name
    archive = tmp_path / "agent.json"
    archive.write_text('{"agent": "old"}')
    monkeypatch.setattr(dirs, "_fsync", full)
    with pytest.raises(OSError, match="No space left") as info:
        agent.save(archive)
    assert info.value.filename == str(archive)
    assert archive.read_text() == '{"agent": "old"}' and not _litter(tmp_path)
