"""Task data from three kinds of source: the embedded benchmark, a hub dataset, a local file.

`load_target_splits` and `load_source_splits` are the only entry points the rest of the package
uses; they return validated rows in the reference schemas, whatever the source.

- ``"embedded"``: the CLDR benchmark built offline (`embedded.py`).
- ``"xlsum"`` / ``"mlqa"`` (or their hub ids ``csebuetnlp/xlsum``, ``facebook/mlqa``): loaded with
  `datasets.load_dataset`; needs the hub or a local hub cache.
- a path to ``.json`` (an array of rows, or an object with a ``data`` array), ``.jsonl`` or
  ``.parquet`` in the same schema.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grasp_env.data.embedded import EmbeddedConfig, embedded_source_splits, embedded_target_splits
from grasp_env.data.schema import TASKS, DataError, validate_rows
from grasp_env.data.splits import SplitSizes, TaskSplits, split_rows

__all__ = ["HUB_DATASETS", "HubDataset", "load_rows", "load_source_splits", "load_target_splits"]


@dataclass(frozen=True)
class HubDataset:
    """A reference dataset on the hub: its id, config per language and the splits to pool."""

    hub_id: str
    task: str
    configs: dict[str, str]
    pool_splits: tuple[str, ...]
    """Hub splits concatenated (in this order) before the seeded shuffle and cut."""


HUB_DATASETS: dict[str, HubDataset] = {
    "xlsum": HubDataset(
        "csebuetnlp/xlsum",
        "summarization",
        {"en": "english", "ar": "arabic", "zh": "chinese_simplified"},
        ("train",),
    ),
    # MLQA has no train split; the reference draws everything from test + validation. The Chinese
    # config is "mlqa.zh.zh" (the reference's misspelt name breaks Chinese QA: PAPER.md).
    "mlqa": HubDataset(
        "facebook/mlqa",
        "qa",
        {"en": "mlqa.en.en", "ar": "mlqa.ar.ar", "zh": "mlqa.zh.zh"},
        ("test", "validation"),
    ),
}
"""Reference datasets by short name."""

_BY_HUB_ID = {d.hub_id: d for d in HUB_DATASETS.values()}


def _hub_dataset(source: str) -> HubDataset | None:
    return HUB_DATASETS.get(source) or _BY_HUB_ID.get(source)


def _read_local(path: Path) -> list[Any]:
    try:
        return _read_local_file(path)
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}); "
            "fix: re-encode the file as UTF-8 (e.g. iconv -f cp1256 -t utf-8 for Windows "
            "Arabic) or save it as .parquet"
        ) from None


def _read_local_file(path: Path) -> list[Any]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = []
        with path.open(encoding="utf-8-sig") as fh:  # a byte-order mark is UTF-8 too
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise DataError(
                        f"{path}, line {n}: not valid JSON ({err.msg}); fix: make every line "
                        "one complete JSON object (JSON Lines)"
                    ) from None
        return rows
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as err:
            raise DataError(
                f"{path}: not valid JSON (line {err.lineno}: {err.msg}); fix: repair the file "
                "(an array of rows, or an object with a 'data' array)"
            ) from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise DataError(
                f"{path}: expected a JSON array of rows or an object with a 'data' array, got "
                f"{type(data).__name__}"
            )
        return data
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as err:  # pyarrow raises several types for a broken file
            raise DataError(f"{path}: not a readable parquet file ({err})") from None
    raise DataError(f"{path}: unknown file type {suffix!r}; fix: use .json, .jsonl or .parquet")


def _read_hub(ds: HubDataset, task: str, lang: str) -> list[Any]:
    if ds.task != task:
        raise DataError(f"dataset {ds.hub_id!r} holds {ds.task} rows, not task={task!r}")
    if lang not in ds.configs:
        raise DataError(
            f"dataset {ds.hub_id!r} has no language={lang!r}; fix: use one of {sorted(ds.configs)}"
        )
    import datasets

    rows: list[Any] = []
    for split in ds.pool_splits:
        rows.extend(datasets.load_dataset(ds.hub_id, ds.configs[lang], split=split))
    return rows


def load_rows(source: str, task: str, lang: str) -> list[dict[str, Any]]:
    """All rows of a hub dataset or local file, validated against the schema of `task`."""
    if task not in TASKS:
        raise DataError(f"task={task!r} is unknown; fix: use one of {TASKS}")
    hub = _hub_dataset(source)
    if hub is not None:
        return validate_rows(_read_hub(hub, task, lang), task, f"{hub.hub_id}/{hub.configs[lang]}")
    path = Path(source)
    if not path.is_file():
        raise DataError(
            f"data source {source!r} is neither 'embedded', a hub dataset "
            f"({', '.join(HUB_DATASETS)}), nor an existing file; fix: check the name or path"
        )
    return validate_rows(_read_local(path), task, str(path))


def load_target_splits(
    source: str,
    task: str,
    lang: str,
    seed: int,
    sizes: SplitSizes,
    embedded: EmbeddedConfig | None = None,
) -> TaskSplits:
    """Train / dev / micro-dev / test rows of the target language."""
    if source == "embedded":
        return embedded_target_splits(task, lang, seed, sizes, embedded)
    return split_rows(load_rows(source, task, lang), sizes, seed, task, lang, source)


def load_source_splits(
    source: str,
    task: str,
    lang: str,
    seed: int,
    n_train: int,
    n_dev: int,
    embedded: EmbeddedConfig | None = None,
) -> TaskSplits:
    """Train and dev rows of the source language (micro-dev and test stay empty)."""
    if source == "embedded":
        return embedded_source_splits(task, lang, seed, n_train, n_dev, embedded)
    rows = load_rows(source, task, lang)
    if len(rows) < n_train + n_dev:
        raise DataError(
            f"{source}: {len(rows)} rows, but the source splits need {n_train + n_dev} "
            f"(train={n_train}, dev={n_dev}); fix: supply more rows or lower the sizes"
        )
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    train = [rows[i] for i in order[:n_train]]
    dev = [rows[i] for i in order[n_train : n_train + n_dev]]
    return TaskSplits(task, lang, train, dev, [], [])
