"""Reading a live benchmark's grid: one seed's final runs as arrays sorted by ratio.

runners/benchmark.py stores each seed's grid as `methods.grid.per_seed[k].points`, a list of
final-run summaries in the order they finished. Three scripts read it (the final-run curves
the surrogate replays, the fidelity report and the live rule check); this is their one
reading, so a change of the stored layout is mended in one place.
"""

from __future__ import annotations

import numpy as np

__all__ = ["grid_curve"]


def grid_curve(seed_row: dict, *fields: str) -> tuple[np.ndarray, ...]:
    """(ratios, then each named field) of one seed's grid row, sorted by ratio.

    Args:
        seed_row: One entry of a benchmark.json's `methods.grid.per_seed`.
        fields: Per-point fields to return beside the ratio (e.g. "test_loss", "dev_loss").

    Raises:
        ValueError: the row has no points, or a point lacks a named field (the message names
            the field and the fields the point has).
    """
    points = sorted(seed_row.get("points", []), key=lambda q: float(q["ratio"]))
    if not points:
        raise ValueError(
            "grid row has no points; fix: read a benchmark.json whose grid ran (methods.grid)"
        )
    missing = [f for f in fields if f not in points[0]]
    if missing:
        raise ValueError(
            f"grid point lacks field(s) {missing} (it has {sorted(points[0])}); fix: name "
            "fields the benchmark stores, or rerun it with this version"
        )
    ratios = np.array([float(q["ratio"]) for q in points])
    return (ratios, *(np.array([float(q[f]) for q in points]) for f in fields))
