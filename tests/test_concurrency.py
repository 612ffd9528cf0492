"""Processes sharing a cache or an output directory (issue 14): locks, never a torn entry."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _start(args, cache):
    env = {**os.environ, "GRASP_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def test_two_processes_on_a_cold_cache_build_everything_once(tmp_path):
    cache, record = tmp_path / "cache", tmp_path / "trained.txt"
    helper = str(ROOT / "tests" / "helpers" / "race_prepare.py")
    procs = [_start([helper, str(record)], cache) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for proc, (_out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    builds = sum(out.count("built tiny backbone") for out, _ in outs)
    assert builds == 1  # one process built the backbone, the other waited and loaded it
    trained = record.read_text().splitlines()
    assert len(trained) == 2, trained  # the source and the target adapter, once each
    merged = [json.loads(out.strip().splitlines()[-1])["merged"] for out, _ in outs]
    assert merged[0] == merged[1]  # both read the same complete entries
    entries = list((cache / "adapters").iterdir())
    assert all(not e.name.startswith(".") or e.name.endswith(".lock") for e in entries)


def test_a_run_directory_has_one_writer(tmp_path):
    from grasp_env.runs.dirs import RunDirError, make_run_dir

    code = (
        "import sys, time; from grasp_env.runs.dirs import make_run_dir; "
        f"make_run_dir({str(tmp_path)!r}, 'shared'); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirError, match="being written by another running process"):
            make_run_dir(tmp_path, "shared", overwrite=True)
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    assert make_run_dir(tmp_path, "shared", overwrite=True) == tmp_path / "shared"  # freed
