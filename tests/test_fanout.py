"""Independent runs over Ray workers (issue 14): same numbers as in-process, retries on kill."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grasp_env.config import FanOutConfig

ROOT = Path(__file__).resolve().parents[1]


def test_fanout_settings():
    assert FanOutConfig().in_process and not FanOutConfig(workers=2).in_process
    assert not FanOutConfig(ray_address="auto").in_process
    assert FanOutConfig(workers=2, threads=3).threads_per_run == 3
    assert FanOutConfig(workers=64).threads_per_run == 1
    with pytest.raises(ValueError, match="workers=0"):
        FanOutConfig(workers=0)
    with pytest.raises(ValueError, match="threads=0"):
        FanOutConfig(threads=0)


def test_one_worker_does_not_import_ray():
    code = (
        "import sys; from grasp_env.runs.fanout import run_all; "
        "from grasp_env.config import FanOutConfig; "
        "assert run_all(abs, [1, -2], FanOutConfig()) == [1, 2]; "
        "assert 'ray' not in sys.modules; print('ok')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "ok", proc.stderr


def _runner(script: str, args: list[str], env: dict[str, str], written: Path) -> dict:
    """Run runners/<script> with `args`; the JSON file it wrote at `written`."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "runners" / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(written.read_text())


def _grid(out, name, cache, *extra):
    env = {**os.environ, "GRASP_CACHE_DIR": str(cache)}
    args = ["--preset", "tiny", "--ratios", "0.2", "0.6", "--out-dir", str(out), "--run-name"]
    return _runner("grid_search.py", [*args, name, *extra], env, out / name / "metrics.json")


@pytest.mark.slow  # the benchmark test below compares grid points on 1 and 2 workers too
def test_grid_gives_the_same_numbers_on_one_and_two_workers(
    isolated_cache, tiny_backbone_dir, tmp_path
):
    # equal threads per run: another thread count sums floats in another order
    one = _grid(tmp_path, "one", isolated_cache, "--threads", "1")
    two = _grid(tmp_path, "two", isolated_cache, "--workers", "2", "--threads", "1")
    assert two["workers"] == {"workers": 2, "threads_per_run": 1}
    keys = ("ratio", "dev_loss", "test_loss", "test")
    assert [{k: p[k] for k in keys} for p in two["points"]] == [
        {k: p[k] for k in keys} for p in one["points"]
    ]
    assert two["selected_ratio"] == one["selected_ratio"]


@pytest.mark.slow  # the benchmark test below kills a worker and checks its retry's numbers
def test_a_killed_worker_is_retried(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "helpers" / "ray_kill.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert json.loads(result[-1].removeprefix("RESULT ")) == [2, 4, 6]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.killed", "2.killed", "3.killed"]


def _benchmark(out, name, cache, *extra, fault_once=None):
    env = {**os.environ, "GRASP_CACHE_DIR": str(cache)}
    env.pop("GRASP_FAULT", None)
    if fault_once:  # the first worker to reach the point dies; its retry runs through
        env.update(GRASP_FAULT="benchmark_agent:1", GRASP_FAULT_ONCE=str(fault_once))
    args = ["--preset", "tiny", "--agents", "grpo", "random", "--seeds", "0", "1"]
    args += ["--ratios", "0.2", "0.6", "--out-dir", str(out), "--run-name", name, "--threads", "1"]
    return _runner("benchmark.py", [*args, *extra], env, out / name / "benchmark.json")


def _numbers(bench: dict) -> dict:
    """Everything a benchmark measures but time and memory."""
    out = {}
    for method, res in bench["methods"].items():
        for i, run in enumerate(res["per_seed"]):
            keep = ("ratio", "test", "test_loss", "learned_ratio_by_rule", "rounds")
            out[method, i] = {k: run.get(k) for k in keep}
            out[method, i]["points"] = [
                {k: p[k] for k in ("ratio", "dev_loss", "test", "test_loss")}
                for p in run.get("points", [])
            ]
    return out


def test_benchmark_on_two_workers_with_a_killed_worker_gives_the_same_numbers(
    isolated_cache, tiny_backbone_dir, tmp_path
):
    one = _benchmark(tmp_path, "one", isolated_cache)
    mark = tmp_path / "killed-once"
    two = _benchmark(tmp_path, "two", isolated_cache, "--workers", "2", fault_once=mark)
    assert mark.exists()  # a worker did die between an agent's controller and final run
    assert one["workers"] == {"workers": 1}
    assert two["workers"] == {"workers": 2, "threads_per_run": 1}
    assert _numbers(two) == _numbers(one)
    assert len(two["methods"]["grid"]["per_seed"]) == 2
