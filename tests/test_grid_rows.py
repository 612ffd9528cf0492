"""grasp_env.runs.grid_rows: the one reading of a live benchmark's grid points."""

import numpy as np
import pytest

from grasp_env.runs.grid_rows import grid_curve


def test_points_come_back_sorted_by_ratio_with_each_named_field():
    row = {
        "points": [
            {"ratio": 0.5, "test_loss": 2.0, "dev_loss": 1.5},
            {"ratio": 0.1, "test_loss": 3.0, "dev_loss": 1.1},
            {"ratio": 0.3, "test_loss": 1.0, "dev_loss": 1.3},
        ]
    }
    ratios, test, dev = grid_curve(row, "test_loss", "dev_loss")
    assert np.array_equal(ratios, [0.1, 0.3, 0.5])
    assert np.array_equal(test, [3.0, 1.0, 2.0]) and np.array_equal(dev, [1.1, 1.3, 1.5])
    (only,) = grid_curve(row)
    assert np.array_equal(only, ratios)


def test_an_empty_row_or_a_missing_field_names_the_fix():
    with pytest.raises(ValueError, match="no points.*fix"):
        grid_curve({"points": []}, "test_loss")
    with pytest.raises(ValueError, match=r"\['f1'\].*it has \['ratio', 'test_loss'\].*fix"):
        grid_curve({"points": [{"ratio": 0.1, "test_loss": 1.0}]}, "f1")
