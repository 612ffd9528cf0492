"""scripts/live_rule_check.py: every rule's ratio scored on the same seed's final-run grid."""

import json

import pytest


@pytest.fixture(scope="module")
def live_rule_check(load_script):
    return load_script("live_rule_check")


def _bench():
    points = [{"ratio": r, "test_loss": 1.0 + r} for r in (0.4, 0.1, 0.2, 0.3)]
    return {
        "config": {"seeds": [7]},
        "methods": {
            "grid": {"per_seed": [{"ratio": 0.1, "test_loss": 1.1, "points": points}]},
            "thompson": {
                "per_seed": [
                    {
                        "ratio": 0.25,
                        "test_loss": 1.26,
                        "learned_ratio_by_rule": {"spline": 0.25, "spline_cost": 0.15},
                    }
                ]
            },
        },
    }


def test_each_rule_is_read_off_the_grid_of_final_runs(tmp_path, capsys, live_rule_check):
    (row,) = live_rule_check.rows_of(_bench(), "thompson")
    assert row["rules"]["spline_cost"] == (0.15, pytest.approx(1.15))
    assert row["final_interpolated"] == pytest.approx(1.25)
    (tmp_path / "qa-ar").mkdir()
    (tmp_path / "qa-ar" / "benchmark.json").write_text(json.dumps(_bench()))
    live_rule_check.main([str(tmp_path), "--agent", "thompson"])
    out = capsys.readouterr().out
    assert "- spline_cost: -0.1000" in out
    with pytest.raises(SystemExit, match="fix"):
        live_rule_check.main([str(tmp_path), "--agent", "grpo"])
