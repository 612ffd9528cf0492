"""scripts/surrogate_fidelity.py: a controller run's end curve against the grid's final runs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location(
        "surrogate_fidelity", ROOT / "scripts" / "surrogate_fidelity.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass resolves annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_the_end_curve_is_scored_on_the_final_runs_of_the_same_prepared_state(tmp_path):
    grid = np.round(np.arange(0.0, 0.95, 0.05), 2)
    end = (grid - 0.4) ** 2  # the controller run's end curve: minimum at 0.4
    early = (grid - 0.1) ** 2  # an early round that prefers 0.1
    rounds = [
        {"step": 10, "grid_losses": early.tolist(), "dev_grid_losses": None},
        {"step": 20, "grid_losses": end.tolist(), "dev_grid_losses": end.tolist()},
    ]
    bundle = {
        "grid": grid.tolist(),
        "runs": [
            {"task": "qa", "target": "ar", "seed": 7, "fingerprint": "f7", "rounds": rounds},
            {"task": "qa", "target": "ar", "seed": 8, "fingerprint": "old", "rounds": rounds},
        ],
    }
    ratios = np.round(np.arange(0.1, 0.85, 0.1), 1)
    final = ratios  # the final runs: best at 0.1, test loss rising with the ratio
    points = [  # the dev loss disagrees: the final runs are scored by their test loss
        {"ratio": float(r), "test_loss": float(v), "dev_loss": float(-v)}
        for r, v in zip(ratios, final, strict=True)
    ]
    bench = {
        "config": {"seeds": [7, 8]},
        "fingerprints": ["f7", "f8"],
        "methods": {"grid": {"per_seed": [{"points": points}, {"points": points}]}},
    }
    (tmp_path / "qa-ar").mkdir()
    (tmp_path / "qa-ar" / "benchmark.json").write_text(json.dumps(bench))
    rows = _module().final_run_rows(bundle, tmp_path)
    assert [r["same_state"] for r in rows] == [True, False]
    row = rows[0]
    assert (row["argmin_end"], row["argmin_final"]) == (pytest.approx(0.4), pytest.approx(0.1))
    assert row["regret_end_argmin"] == pytest.approx((0.4 - 0.1) / 0.7)
    # the mean over rounds puts the minimum between 0.1 and 0.4
    assert 0.0 < row["regret_all_rounds_argmin"] < row["regret_end_argmin"]
    assert row["regret_by_round"] == [0.0, pytest.approx(row["regret_end_argmin"])]
    assert row["final_range"] == pytest.approx(0.7)
    assert _module().final_run_rows(bundle, tmp_path / "missing") == []
    _module().plot_final_runs(rows, tmp_path / "final.png")
    assert (tmp_path / "final.png").stat().st_size > 1000


def test_the_cost_fit_recovers_a_linear_cost_on_top_of_the_end_curve():
    ratios = np.round(np.arange(0.1, 0.85, 0.1), 1)
    end = np.where(ratios > 0.5, 10.0 * (ratios - 0.5) ** 2, 0.0) + 0.01 * np.sin(9 * ratios)
    final = 2.0 + 0.1 * end + 0.3 * ratios
    fit = _module().cost_fit(ratios, end, final)
    assert (fit["b"], fit["c"], fit["r2"]) == (
        pytest.approx(0.1),
        pytest.approx(0.3),
        pytest.approx(1.0),
    )
    assert fit["r2_end_only"] < 0.99
    assert fit["gamma"] == pytest.approx(0.3 / 0.1 * 0.7 / np.ptp(end))
