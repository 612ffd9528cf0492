"""Split sizes and the reference split construction: one seeded shuffle cut into disjoint parts."""

from __future__ import annotations

import random
from dataclasses import dataclass, fields
from typing import Any

from grasp_env.data.schema import DataError

__all__ = ["SPLIT_NAMES", "SplitSizes", "TaskSplits", "split_rows"]

SPLIT_NAMES: tuple[str, ...] = ("train", "dev", "micro_dev", "test")


@dataclass(frozen=True)
class SplitSizes:
    """Rows per split, as the loaders take them (the settings: `grasp_env.config.DataConfig`)."""

    train: int
    dev: int
    micro_dev: int
    test: int

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DataError(
                    f"SplitSizes.{f.name}={value!r} is invalid; fix: use a positive integer"
                )

    @property
    def total(self) -> int:
        """Rows needed for all four splits together."""
        return self.train + self.dev + self.micro_dev + self.test


@dataclass(frozen=True)
class TaskSplits:
    """The four disjoint splits of one task in one language, rows in their source schema."""

    task: str
    lang: str
    train: list[dict[str, Any]]
    dev: list[dict[str, Any]]
    micro_dev: list[dict[str, Any]]
    test: list[dict[str, Any]]

    def sizes(self) -> dict[str, int]:
        """Number of rows per split."""
        return {name: len(getattr(self, name)) for name in SPLIT_NAMES}


def split_rows(
    rows: list[dict[str, Any]], sizes: SplitSizes, seed: int, task: str, lang: str, source: str
) -> TaskSplits:
    """Shuffle `rows` once with `seed` and cut train / dev / test / micro-dev in that order.

    Micro-dev is cut last, so a run that probes on fewer or more micro-dev rows
    (--micro-dev-rows) keeps the same train, dev and test rows.

    Raises:
        DataError: when there are fewer rows than the four splits need together.
    """
    if len(rows) < sizes.total:
        raise DataError(
            f"{source}: {len(rows)} rows, but the splits need {sizes.total} "
            f"(train={sizes.train}, dev={sizes.dev}, micro_dev={sizes.micro_dev}, "
            f"test={sizes.test}); fix: supply more rows or lower the split sizes"
        )
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    cuts, start = {}, 0
    for name in ("train", "dev", "test", "micro_dev"):
        n = getattr(sizes, name)
        cuts[name] = [rows[i] for i in order[start : start + n]]
        start += n
    return TaskSplits(task=task, lang=lang, **cuts)
