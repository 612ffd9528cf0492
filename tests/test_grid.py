import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _grid(*args, cache, out):
    env = {**os.environ, "GRASP_CACHE_DIR": str(cache)}
    cmd = [
        sys.executable,
        str(ROOT / "runners" / "grid_search.py"),
        "--preset",
        "tiny",
        "--out-dir",
        str(out),
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def test_grid_search_runs_every_point_and_baselines(isolated_cache, tiny_backbone_dir, tmp_path):
    out = _grid(
        "--ratios",
        "0.2",
        "0.7",
        "--baselines",
        "target_only",
        "target_only_pruned",
        "merged_no_prune",
        "--run-name",
        "g",
        cache=isolated_cache,
        out=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    metrics = json.loads((tmp_path / "g" / "metrics.json").read_text())
    assert [p["ratio"] for p in metrics["points"]] == [0.2, 0.7]
    assert metrics["selected_ratio"] in (0.2, 0.7)
    best = min(metrics["points"], key=lambda p: p["dev_loss"])
    assert metrics["selected_ratio"] == best["ratio"] and metrics["test"] == best["test"]
    assert set(metrics["test"]) == {"em", "f1"}
    assert [r["ratio"] for r in metrics["baselines"]["target_only_pruned"]] == [0.2, 0.7]
    assert len(metrics["timings"]["per_run_s"]) == 2 and metrics["timings"]["total_s"] > 0
    # the run directory is never overwritten by accident
    again = _grid("--ratios", "0.2", "--run-name", "g", cache=isolated_cache, out=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert json.loads((tmp_path / "g" / "metrics.json").read_text()) == metrics


def test_grid_search_rejects_bad_ratios(isolated_cache, tmp_path):
    out = _grid("--ratios", "1.5", cache=isolated_cache, out=tmp_path)
    assert out.returncode == 2 and "--ratios contains 1.5" in out.stderr
    assert "Traceback" not in out.stderr


def _fake_run(tmp_path, seed, ems):
    points = [
        {
            "ratio": r,
            "test": {"em": em, "f1": em},
            "test_loss": 2 - em / 100,
            "dev_loss": 1.0,
            "seconds": 1.0,
        }
        for r, em in zip((0.1, 0.5), ems, strict=True)
    ]
    run = {
        "task": "qa",
        "source": "en",
        "target": "ar",
        "seed": seed,
        "preset": "default",
        "points": points,
        "baselines": {"target_only": [{**points[0], "ratio": 0.0}]},
    }
    d = tmp_path / f"s{seed}"
    d.mkdir()
    (d / "metrics.json").write_text(json.dumps(run))
    return d


def test_grid_report_tabulates_by_seed_and_draws_a_png(tmp_path):
    from helpers.runners import load_runner

    grid_report = load_runner("grid_report")

    dirs = (_fake_run(tmp_path, 1, (10.0, 20.0)), _fake_run(tmp_path, 2, (14.0, 30.0)))
    out = tmp_path / "g.png"
    assert grid_report.main(grid_report.Args(run_dirs=dirs, out=out)) == 0
    assert out.stat().st_size > 1000
    text = grid_report.table(grid_report._load(dirs), "em")
    assert "| merged | 0.50 | 25.00 +- 7.07 |" in text  # mean and sample std of 20 and 30
    assert "| target_only | 0.00 | 12.00 +- 2.83 |" in text
    pairs = grid_report.paired(grid_report._load(dirs), "em")
    assert (
        "| merged 0.50 (best) - merged 0.10 (worst) | +10.00, +16.00 | 13.00 +- 4.24 | yes |"
        in pairs
    )


def test_benchmark_runs_grid_and_agents_on_the_tiny_preset(
    isolated_cache, tiny_backbone_dir, tmp_path
):
    env = {**os.environ, "GRASP_CACHE_DIR": str(isolated_cache)}
    cmd = [
        sys.executable,
        str(ROOT / "runners" / "benchmark.py"),
        "--preset",
        "tiny",
        "--agents",
        "grpo",
        "random",
        "--seeds",
        "0",
        "--ratios",
        "0.2",
        "0.6",
        "--out-dir",
        str(tmp_path),
        "--run-name",
        "b",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    bench = json.loads((tmp_path / "b" / "benchmark.json").read_text())
    assert set(bench["methods"]) == {"grid", "grpo", "random", "grid-best-test"}
    grid = bench["methods"]["grid"]
    assert grid["ratios"][0] in (0.2, 0.6)
    points = grid["per_seed"][0]["points"]
    assert [p["ratio"] for p in points] == [0.2, 0.6]
    # choosing needs every point's training but only the chosen point's test scoring
    chosen = next(p for p in points if p["ratio"] == grid["ratios"][0])
    assert grid["seconds_select"][0] == pytest.approx(
        sum(p["train_s"] for p in points) + chosen["eval_s"]
    )
    assert grid["seconds_select"][0] < grid["seconds"][0]
    for method in bench["methods"].values():
        assert 0.1 <= method["ratios"][0] <= 0.8 and method["speedup_vs_grid"] > 0
        assert method["speedup_vs_grid_select"] < method["speedup_vs_grid"]
    assert (tmp_path / "b" / "benchmark.png").stat().st_size > 1000
    assert "| grpo |" in out.stdout

    # --grid-from reuses the grid (same per-seed record) for another controller setting
    def agents_only(seed: str, name: str) -> list[str]:
        return [
            *cmd[:4],  # python benchmark.py --preset tiny
            *["--agents", "grpo", "--controller.train-steps", "20", "--seeds", seed],
            *["--ratios", "0.2", "0.6", "--out-dir", str(tmp_path), "--run-name", name],
            *["--grid-from", str(tmp_path / "b" / "benchmark.json")],
        ]

    out2 = subprocess.run(agents_only("0", "c"), capture_output=True, text=True, env=env)
    assert out2.returncode == 0, out2.stderr[-3000:]
    reused = json.loads((tmp_path / "c" / "benchmark.json").read_text())
    assert reused["methods"]["grid"]["per_seed"] == grid["per_seed"]
    assert reused["config"]["controller"]["train_steps"] == 20
    out3 = subprocess.run(agents_only("1", "d"), capture_output=True, text=True, env=env)
    assert out3.returncode == 2 and "its seeds=[0] differs" in out3.stderr
    other_points = [*agents_only("0", "e"), "--final.rebuild-every", "5"]
    out4 = subprocess.run(other_points, capture_output=True, text=True, env=env)
    assert out4.returncode == 2 and "its final.rebuild_every=10 differs" in out4.stderr
    other_adapters = [*agents_only("0", "e2"), "--target-lora.max-steps", "12"]
    out5 = subprocess.run(other_adapters, capture_output=True, text=True, env=env)
    assert out5.returncode == 2 and "its target_lora.max_steps=10 differs" in out5.stderr

    # a grid prepared from other weights (another install) or without fingerprints is refused
    assert len(bench["fingerprints"]) == 1 and len(bench["fingerprints"][0]) == 16
    assert reused["fingerprints"] == bench["fingerprints"]
    for name, prints, expected in (
        ("other", ["0123456789abcdef"], "seed 0 prepared other adapters or data"),
        ("none", None, "recorded the fingerprints"),
    ):
        altered = {**bench, "fingerprints": prints}
        path = tmp_path / f"grid-{name}.json"
        path.write_text(json.dumps(altered))
        flags = [*agents_only("0", f"f-{name}")[:-1], str(path)]
        refused = subprocess.run(flags, capture_output=True, text=True, env=env)
        assert refused.returncode == 2 and expected in refused.stderr, refused.stderr[-2000:]
        assert "Traceback" not in refused.stderr
        assert not (tmp_path / f"f-{name}" / "benchmark.json").exists()
