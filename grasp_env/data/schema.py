"""Row schemas of the two task families and their validation.

Rows are plain dicts in the reference datasets' own schemas, so that the embedded tasks, hub
datasets and local files all flow through one code path:

- QA (MLQA / SQuAD style): ``id, context, question, answers{text: [...], answer_start: [...]}``
- summarisation (XL-Sum style): ``id, title, text, summary``

Validation runs once, when rows are loaded, and names the source, the row and the field, so that
a bad file fails loudly instead of silently training on something else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["TASKS", "DataError", "DuplicateRowsWarning", "validate_row", "validate_rows"]

TASKS: tuple[str, ...] = ("qa", "summarization")
"""Task families: extractive QA (MLQA schema) and summarisation (XL-Sum schema)."""

_FIELDS: dict[str, dict[str, type]] = {
    "qa": {"id": str, "context": str, "question": str, "answers": dict},
    "summarization": {"id": str, "title": str, "text": str, "summary": str},
}


class DataError(ValueError):
    """A data source, file or row that does not fit the expected schema or split sizes."""


def _where(source: str, index: int, row_id: Any = None) -> str:
    rid = f" (id={row_id!r})" if row_id is not None else ""
    return f"{source}, row {index}{rid}"


def _check_answers(answers: Mapping[str, Any], context: str, where: str) -> None:
    texts, starts = answers.get("text"), answers.get("answer_start")
    if not isinstance(texts, list | tuple) or not isinstance(starts, list | tuple):
        raise DataError(
            f"{where}: field 'answers' must hold lists 'text' and 'answer_start', got "
            f"{dict(answers)!r}; fix: write answers as {{'text': [...], 'answer_start': [...]}}"
        )
    if not texts or len(texts) != len(starts):
        raise DataError(
            f"{where}: field 'answers' needs at least one answer and as many 'answer_start' as "
            f"'text' entries, got {len(texts)} texts and {len(starts)} starts"
        )
    for text, start in zip(texts, starts, strict=True):
        if not isinstance(text, str) or not text or isinstance(start, bool):
            raise DataError(
                f"{where}: field 'answers.text' must be non-empty strings, got {text!r}"
            )
        if not isinstance(start, int):
            raise DataError(
                f"{where}: field 'answers.answer_start' must be an int, got {start!r}; "
                "fix: store the character offset of the answer in 'context'"
            )
        found = context[start : start + len(text)] if 0 <= start <= len(context) else ""
        if found != text:
            hint = context.find(text)
            fix = f"the text occurs at {hint}" if hint >= 0 else "the text is not in the context"
            raise DataError(
                f"{where}: field 'answers': text {text!r} is not at answer_start={start} "
                f"(context there reads {found!r}); fix: {fix}"
            )


def validate_row(row: Any, task: str, source: str, index: int) -> None:
    """Raise DataError unless `row` fits the schema of `task`.

    Args:
        row: One row as read from its source.
        task: One of TASKS.
        source: Where the row came from (file path or dataset name), for the message.
        index: Position of the row in its source, for the message.
    """
    if task not in _FIELDS:
        raise DataError(f"task={task!r} is unknown; fix: use one of {TASKS}")
    if not isinstance(row, Mapping):
        raise DataError(f"{_where(source, index)}: expected an object, got {type(row).__name__}")
    where = _where(source, index, row.get("id"))
    for field, kind in _FIELDS[task].items():
        if field not in row:
            raise DataError(
                f"{where}: missing field {field!r}; a {task} row needs {list(_FIELDS[task])}"
            )
        value = row[field]
        if not isinstance(value, kind):
            raise DataError(
                f"{where}: field {field!r} must be {kind.__name__}, got "
                f"{type(value).__name__} ({value!r:.60})"
            )
        if kind is str and field != "id" and not value.strip():
            raise DataError(f"{where}: field {field!r} is empty")
    if task == "qa":
        _check_answers(row["answers"], row["context"], where)


class DuplicateRowsWarning(UserWarning):
    """Rows that repeat another row's content were dropped (the first of each is kept)."""


def validate_rows(rows: Iterable[Any], task: str, source: str) -> list[dict[str, Any]]:
    """Validate every row and return them as a list of plain dicts, each content once.

    A row whose content (every schema field but the id) repeats an earlier row's is dropped
    with a `DuplicateRowsWarning`: otherwise one seeded shuffle could put the same row in the
    train and the test split, and the test score would measure training rows. Two different
    rows under one id are refused (which one is meant cannot be known).

    Raises:
        DataError: on the first bad row, a repeated id with other content, or no rows.
    """
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    ids: dict[Any, int] = {}
    dropped = []
    for i, row in enumerate(rows):
        row = _plain(row) if isinstance(row, Mapping) else row
        validate_row(row, task, source, i)
        content = _content_key(row, task)
        if content in seen:
            dropped.append((i, seen[content]))
            continue
        if row["id"] in ids:
            raise DataError(
                f"{_where(source, i, row['id'])}: the id {row['id']!r} is also row "
                f"{ids[row['id']]}'s, with other content; fix: give every row its own id"
            )
        seen[content], ids[row["id"]] = i, i
        out.append(row)
    if not out:
        raise DataError(f"{source}: no rows; fix: point at a non-empty {task} file or split")
    if dropped:
        import warnings

        shown = ", ".join(f"row {a} = row {b}" for a, b in dropped[:3])
        warnings.warn(
            f"{source}: {len(dropped)} row(s) repeat an earlier row and were dropped ({shown}"
            f"{', ...' if len(dropped) > 3 else ''}); each row is used once",
            DuplicateRowsWarning,
            stacklevel=2,
        )
    return out


def _content_key(row: Mapping[str, Any], task: str) -> str:
    """A row's content without its id, as one comparable string."""
    import json

    return json.dumps(
        {f: row[f] for f in _FIELDS[task] if f != "id"}, sort_keys=True, ensure_ascii=False
    )


def _plain(row: Mapping[str, Any]) -> dict[str, Any]:
    """Copy a row, turning the answers' arrays into lists of Python scalars.

    Parquet files come back with numpy arrays and numpy ints; the schema is about content.
    """
    out = dict(row)
    answers = out.get("answers")
    if isinstance(answers, Mapping):
        out["answers"] = {
            k: [x.item() if hasattr(x, "item") else x for x in v]
            if hasattr(v, "__iter__") and not isinstance(v, str)
            else v
            for k, v in answers.items()
        }
    return out
