import re
from dataclasses import replace

import pytest

from grasp_env.config import DataConfig
from grasp_env.data.cldr import FACT_TYPES, LANGUAGES, load_territories
from grasp_env.data.embedded import (
    EmbeddedConfig,
    build_corpus,
    embedded_source_splits,
    embedded_target_splits,
    partition_territories,
)
from grasp_env.data.schema import DataError, validate_rows

SIZES = DataConfig().split_sizes  # the default preset's target splits: 50/50/16/300

TASKS = ("qa", "summarization")


def _text(row):
    return " ".join(str(v) for k, v in row.items() if k != "id")


def test_cldr_names_every_fact_in_every_language():
    territories = load_territories()
    assert len(territories) > 150
    for t in territories:
        for lang in LANGUAGES:
            assert t.name[lang].strip()
            for fact in FACT_TYPES:
                assert t.fact(fact, lang).strip()
    egypt = next(t for t in territories if t.code == "EG")
    assert egypt.name == {"en": "Egypt", "ar": "مصر", "zh": "埃及"}
    assert egypt.currency["zh"] == "埃及镑"


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("lang", LANGUAGES)
def test_target_splits_have_paper_sizes_and_valid_rows(task, lang):
    splits = embedded_target_splits(task, lang, 1, SIZES)
    assert splits.sizes() == {"train": 50, "dev": 50, "micro_dev": 16, "test": 300}
    for name in ("train", "dev", "micro_dev", "test"):
        validate_rows(getattr(splits, name), task, name)  # answer_start exactness included
    ids = [r["id"] for name in ("train", "dev", "micro_dev", "test") for r in getattr(splits, name)]
    assert len(ids) == len(set(ids))


def _code(row):
    return re.search(r"-\d{5}-([A-Z]{2})", row["id"]).group(1)


def _unambiguous(held, train_side, lang):
    """Held-out names that no training-side name or any fact value contains.

    'Niger' is part of 'Nigeria', 'السويد' of 'السويدية' (Swedish): such names would give false
    alarms in a substring check.
    """
    values = [t.fact(f, lang) for t in load_territories() for f in FACT_TYPES]
    others = [t.name[lang] for t in train_side] + values
    return [t.name[lang] for t in held if not any(t.name[lang] in n for n in others)]


@pytest.mark.parametrize("task", TASKS)
def test_held_out_territories_never_appear_outside_test(task):
    train_side, test_side = partition_territories(EmbeddedConfig())
    held_codes = {t.code for t in test_side}
    splits = embedded_target_splits(task, "ar", 3, SIZES)
    source = embedded_source_splits(task, "en", 3, 2000, 200)
    held_ar = _unambiguous(test_side, train_side, "ar")
    held_en = _unambiguous(test_side, train_side, "en")
    assert len(held_ar) > 50 and len(held_en) > 50
    for row in splits.train + splits.dev + splits.micro_dev:
        assert _code(row) not in held_codes
        assert not [n for n in held_ar if n in _text(row)]
    for row in source.train + source.dev:
        assert _code(row) not in held_codes
        assert not [n for n in held_en if n in _text(row)]
    assert {_code(row) for row in splits.test} <= held_codes


def test_train_draw_depends_on_seed_but_test_does_not():
    a = embedded_target_splits("qa", "zh", 1, SIZES)
    b = embedded_target_splits("qa", "zh", 1, SIZES)
    c = embedded_target_splits("qa", "zh", 2, SIZES)
    assert a == b
    assert a.train != c.train
    assert a.test == c.test


def test_qa_train_dev_micro_dev_subjects_are_disjoint():
    splits = embedded_target_splits("qa", "ar", 5, SIZES)
    subject = lambda r: tuple(r["id"].split("-")[-2:])  # noqa: E731
    train = {subject(r) for r in splits.train}
    held = {subject(r) for r in splits.dev + splits.micro_dev}
    assert len(train) == 50
    assert not train & held


def test_source_split_is_large_and_dev_subjects_unseen():
    source = embedded_source_splits("qa", "en", 0, 2000, 200)
    assert len(source.train) >= 2000 and len(source.dev) >= 200
    subject = lambda r: tuple(r["id"].split("-")[-2:])  # noqa: E731
    assert not {subject(r) for r in source.train} & {subject(r) for r in source.dev}


def test_summary_states_every_fact():
    row = embedded_target_splits("summarization", "en", 0, SIZES).train[0]
    code = row["id"].split("-")[-1]
    t = next(t for t in load_territories() if t.code == code)
    for fact in FACT_TYPES:
        assert t.fact(fact, "en") in row["summary"]
        assert t.fact(fact, "en") in row["text"]


def test_too_large_splits_fail_with_the_field_named():
    with pytest.raises(DataError, match="SplitSizes.train"):
        embedded_target_splits("summarization", "ar", 0, replace(SIZES, train=500))
    with pytest.raises(DataError, match="language='fr'"):
        embedded_target_splits("qa", "fr", 0, SIZES)


def test_corpus_states_facts_in_all_languages_without_task_format():
    docs = build_corpus(0)
    text = "\n".join(docs)
    assert len(text) > 500_000
    for t in load_territories()[:40]:
        for lang in LANGUAGES:
            assert t.name[lang] in text
            for fact in FACT_TYPES:
                assert t.fact(fact, lang) in text
    assert "Answer:" not in text and "Question:" not in text and "Summary:" not in text
    # aligned name lines and code-switched names are present
    assert "Egypt = " in text or "= Egypt" in text
    assert any("In 埃及" in d or "of 埃及" in d or "在Egypt" in d for d in docs) or any(
        "مصر" in d and "Egyptian" in d for d in docs
    )


def test_corpus_is_deterministic():
    assert build_corpus(3)[:50] == build_corpus(3)[:50]
    assert build_corpus(3)[:50] != build_corpus(4)[:50]
