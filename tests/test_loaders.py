import json

import pytest

from grasp_env.data import DataError, SplitSizes, load_rows, load_source_splits, load_target_splits
from grasp_env.data.loaders import HUB_DATASETS

QA_ROW = {
    "id": "q1",
    "context": "Le Caire est une ville d'Égypte.",
    "question": "Quelle ville ?",
    "answers": {"text": ["Le Caire"], "answer_start": [0]},
}
SUM_ROW = {"id": "s1", "title": "t", "text": "a long article", "summary": "short"}


def _qa_rows(n):
    rows = []
    for i in range(n):
        ctx = f"Fact number {i} says the value is V{i}."
        rows.append(
            {
                "id": f"r{i}",
                "context": ctx,
                "question": f"What is fact {i}?",
                "answers": {"text": [f"V{i}"], "answer_start": [ctx.index(f"V{i}")]},
            }
        )
    return rows


def _write(path, rows, kind):
    if kind == "json":
        path.write_text(json.dumps(rows, ensure_ascii=False))
    elif kind == "jsonl":
        path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("kind", ["json", "jsonl", "parquet"])
def test_local_files_round_trip_and_split(tmp_path, kind):
    path = _write(tmp_path / f"qa.{kind}", _qa_rows(40), kind)
    rows = load_rows(str(path), "qa", "en")
    assert rows[3]["answers"] == {"text": ["V3"], "answer_start": [rows[3]["context"].index("V3")]}
    sizes = SplitSizes(train=10, dev=5, micro_dev=4, test=8)
    splits = load_target_splits(str(path), "qa", "en", seed=7, sizes=sizes)
    assert splits.sizes() == {"train": 10, "dev": 5, "micro_dev": 4, "test": 8}
    ids = [
        r["id"] for part in (splits.train, splits.dev, splits.micro_dev, splits.test) for r in part
    ]
    assert len(set(ids)) == 27
    again = load_target_splits(str(path), "qa", "en", seed=7, sizes=sizes)
    other = load_target_splits(str(path), "qa", "en", seed=8, sizes=sizes)
    assert again == splits and other.train != splits.train


def test_json_object_with_data_array(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"data": [SUM_ROW]}))
    assert load_rows(str(path), "summarization", "ar") == [SUM_ROW]


def test_source_splits_from_file(tmp_path):
    path = _write(tmp_path / "src.jsonl", _qa_rows(30), "jsonl")
    splits = load_source_splits(str(path), "qa", "en", seed=0, n_train=20, n_dev=5)
    assert (len(splits.train), len(splits.dev)) == (20, 5)
    with pytest.raises(DataError, match="need 35"):
        load_source_splits(str(path), "qa", "en", seed=0, n_train=30, n_dev=5)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            {k: v for k, v in QA_ROW.items() if k != "question"},
            r"row 0 \(id='q1'\): missing field 'question'",
        ),
        ({**QA_ROW, "context": 3}, r"field 'context' must be str, got int"),
        (
            {**QA_ROW, "answers": {"text": ["Caire"], "answer_start": [0]}},
            r"'Caire' is not at answer_start=0.*occurs at 3",
        ),
        ({**QA_ROW, "answers": {"text": ["Paris"], "answer_start": [0]}}, r"not in the context"),
        ({**QA_ROW, "answers": {"text": ["Le Caire"], "answer_start": ["0"]}}, r"must be an int"),
        ({**QA_ROW, "answers": {"text": [], "answer_start": []}}, r"at least one answer"),
        ({**QA_ROW, "question": "  "}, r"field 'question' is empty"),
        ("not a row", r"expected an object"),
    ],
)
def test_bad_qa_rows_name_file_row_and_field(tmp_path, row, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(row))
    with pytest.raises(DataError, match=message) as err:
        load_rows(str(path), "qa", "ar")
    assert str(path) in str(err.value)


def test_bad_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="no rows"):
        load_rows(str(empty), "qa", "en")
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(QA_ROW) + "\n{oops\n")
    with pytest.raises(DataError, match="line 2: not valid JSON"):
        load_rows(str(broken), "qa", "en")
    wrong = tmp_path / "rows.csv"
    wrong.write_text("a,b")
    with pytest.raises(DataError, match="unknown file type '.csv'"):
        load_rows(str(wrong), "qa", "en")
    with pytest.raises(DataError, match="neither 'embedded', a hub dataset"):
        load_rows(str(tmp_path / "missing.json"), "qa", "en")
    with pytest.raises(DataError, match="task='translation' is unknown"):
        load_rows(str(empty), "translation", "en")


def test_too_few_rows_for_the_splits(tmp_path):
    path = _write(tmp_path / "qa.json", _qa_rows(20), "json")
    with pytest.raises(DataError, match=r"20 rows, but the splits need 416"):
        load_target_splits(str(path), "qa", "en", seed=0, sizes=SplitSizes(50, 50, 16, 300))


def test_hub_loaders_call_datasets_with_the_reference_names(monkeypatch, tmp_path):
    import datasets

    calls = []

    def fake_load_dataset(name, config, split):
        calls.append((name, config, split))
        tag = f"{split}-"
        if name == "facebook/mlqa":
            rows = [
                {**r, "id": tag + r["id"], "question": tag + r["question"]} for r in _qa_rows(5)
            ]
        else:
            rows = [{**SUM_ROW, "id": f"{tag}{i}", "text": f"article {i}"} for i in range(3)]
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert len(load_rows("mlqa", "qa", "zh")) == 10  # test + validation pooled
    assert calls == [
        ("facebook/mlqa", "mlqa.zh.zh", "test"),
        ("facebook/mlqa", "mlqa.zh.zh", "validation"),
    ]
    calls.clear()
    assert len(load_rows("csebuetnlp/xlsum", "summarization", "ar")) == 3
    assert calls == [("csebuetnlp/xlsum", "arabic", "train")]
    with pytest.raises(DataError, match="holds summarization rows, not task='qa'"):
        load_rows("xlsum", "qa", "ar")
    with pytest.raises(DataError, match="no language='fr'"):
        load_rows("mlqa", "qa", "fr")
    assert HUB_DATASETS["xlsum"].configs["zh"] == "chinese_simplified"


def test_repeated_rows_are_used_once_and_a_reused_id_is_refused(tmp_path):
    from grasp_env.data.schema import DuplicateRowsWarning

    rows = _qa_rows(30)
    repeated = rows + [dict(rows[3], id="copy-of-r3"), dict(rows[7])]
    path = _write(tmp_path / "rep.jsonl", repeated, "jsonl")
    with pytest.warns(DuplicateRowsWarning, match="2 row\\(s\\) repeat an earlier row"):
        loaded = load_rows(str(path), "qa", "en")
    assert len(loaded) == 30 and [r["id"] for r in loaded] == [r["id"] for r in rows]
    clash = rows + [dict(rows[4], id="r5", question="Another question?")]  # an id taken
    path = _write(tmp_path / "clash.jsonl", clash, "jsonl")
    with pytest.raises(DataError, match="the id 'r5' is also row 5's"):
        load_rows(str(path), "qa", "en")


def test_an_answer_offset_is_checked_without_negative_indexing(tmp_path):
    row = {
        **QA_ROW,
        "context": "Le Caire est une ville. Le Caire",
        "answers": {"text": ["Le Caire"], "answer_start": [-8]},
    }  # context[-8:] reads 'Le Caire'
    path = _write(tmp_path / "neg.json", [row], "json")
    with pytest.raises(DataError, match="answer_start=-8.*the text occurs at 0"):
        load_rows(str(path), "qa", "fr")


def test_a_byte_order_mark_is_read_as_utf8(tmp_path):
    for kind in ("json", "jsonl"):
        path = _write(tmp_path / f"bom.{kind}", _qa_rows(3), kind)
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
        assert [r["id"] for r in load_rows(str(path), "qa", "en")] == ["r0", "r1", "r2"]
