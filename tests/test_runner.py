import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args, cache):
    env = {**os.environ, "GRASP_CACHE_DIR": str(cache)}
    return subprocess.run(
        [sys.executable, str(ROOT / "runners" / "train_agent.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_main_job_runs_on_the_tiny_preset(isolated_cache, tiny_backbone_dir):
    out = _run(
        "--preset",
        "tiny",
        "--task",
        "summarization",
        "--target",
        "zh",
        "--samples",
        "1",
        cache=isolated_cache,
    )
    assert out.returncode == 0, out.stderr
    assert "backbone ready" in out.stdout
    for lang in ("en", "ar", "zh"):
        assert f"=== summarization / {lang}:" in out.stdout
    assert "摘要：" in out.stdout and "الملخص:" in out.stdout


def test_bad_flag_values_exit_2_without_traceback(isolated_cache):
    out = _run("--preset", "huge", cache=isolated_cache)
    assert out.returncode == 2
    assert "preset='huge'" in out.stderr and "Traceback" not in out.stderr
    out = _run("--seed", "abc", cache=isolated_cache)
    assert out.returncode == 2 and "Traceback" not in out.stderr
