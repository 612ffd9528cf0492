"""The embedded multilingual benchmark: QA and summarisation rows and a pretraining corpus.

Everything is generated deterministically from CLDR facts (see `cldr.py`) so that tests and the
default demo run offline. Design, following ../shared/EMBEDDED_BENCHMARK.md:

- Knowledge, not extraction: a tiny backbone cannot copy a span out of its context, so the
  pretraining corpus states every fact of every territory in all three languages and the tasks
  probe that knowledge. QA rows still carry a context that contains the answer (MLQA schema).
- Cross-lingual ties in pretraining: aligned profiles in 2-3 languages back to back, aligned
  name lines ("Egypt = مصر = 埃及"), code-switched territory names (30% of fact sentences) and
  code-switched relation words (the untried lever of the prototype).
- Held-out territories: the target test split asks only about territories that no target
  train, dev or micro-dev row, nor any English source row, mentions as its subject.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from grasp_env.data.cldr import FACT_TYPES, LANGUAGES, Territory, load_territories
from grasp_env.data.schema import DataError, validate_rows
from grasp_env.data.splits import SplitSizes, TaskSplits
from grasp_env.data.templates import (
    FACT_SENTENCES,
    NAME_LINE_LABELS,
    QUESTIONS,
    RELATION_WORDS,
    SUMMARY_SENTENCES,
    TITLES,
)

__all__ = [
    "EmbeddedConfig",
    "build_corpus",
    "embedded_source_splits",
    "embedded_target_splits",
    "fact_sentence",
    "partition_territories",
]

_JOIN = {"en": " ", "ar": " ", "zh": ""}
"""Sentence separator per language (Chinese runs sentences together)."""


@dataclass(frozen=True)
class EmbeddedConfig:
    """How the embedded benchmark is generated."""

    partition_seed: int = 0
    """Seed of the held-out territory draw; fixed across run seeds so that test sets pair up."""
    n_test_territories: int = 100
    """Territories reserved for the target test split (3 QA rows or 3 articles each)."""
    code_switch_rate: float = 0.3
    """Share of corpus fact sentences whose territory name is written in another language."""
    relation_switch_rate: float = 0.15
    """Share of corpus fact sentences followed by the relation word in another language."""
    profile_repeats: int = 5
    """Single-language profiles per territory and language in the pretraining corpus."""
    aligned_docs: int = 4
    """Aligned multi-language profiles per territory in the pretraining corpus."""
    mixed_docs: int = 3000
    """Mixed documents (several territories, several languages) in the pretraining corpus."""

    def __post_init__(self) -> None:
        for name in ("code_switch_rate", "relation_switch_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise DataError(f"EmbeddedConfig.{name}={value} is outside [0, 1]")
        if self.n_test_territories < 1:
            raise DataError(
                f"EmbeddedConfig.n_test_territories={self.n_test_territories}; fix: use >= 1"
            )


def partition_territories(cfg: EmbeddedConfig) -> tuple[list[Territory], list[Territory]]:
    """Split the territories into (train side, held-out test side) with `cfg.partition_seed`."""
    territories = list(load_territories())
    if cfg.n_test_territories >= len(territories):
        raise DataError(
            f"EmbeddedConfig.n_test_territories={cfg.n_test_territories} leaves no training "
            f"territory ({len(territories)} exist); fix: lower it"
        )
    random.Random(cfg.partition_seed).shuffle(territories)
    n = cfg.n_test_territories
    return sorted(territories[n:], key=_code), sorted(territories[:n], key=_code)


def _code(t: Territory) -> str:
    return t.code


def fact_sentence(
    t: Territory, fact: str, lang: str, rng: random.Random, name_lang: str | None = None
) -> tuple[str, int]:
    """One statement of `fact` about `t` in `lang`, and the character offset of the value in it.

    Args:
        t: The territory.
        fact: One of FACT_TYPES.
        lang: Language of the sentence and of the value.
        rng: Source of the paraphrase choice.
        name_lang: Language of the territory's name (code-switching); defaults to `lang`.
    """
    template = rng.choice(FACT_SENTENCES[lang][fact])
    name = t.name[name_lang or lang]
    value = t.fact(fact, lang)
    head, tail = template.split("{v}")
    prefix = head.format(t=name)
    return prefix + value + tail.format(t=name), len(prefix)


# ---------------------------------------------------------------------------- task rows


def _article(
    t: Territory, lang: str, rng: random.Random, others: list[Territory], n_distractors: int
) -> tuple[str, dict[str, int]]:
    """Sentences about `t` (every fact) mixed with distractor facts about other territories.

    Returns the article and, per fact type, the offset of `t`'s value in it.
    """
    parts: list[tuple[str, int, str | None]] = []
    for fact in FACT_TYPES:
        sentence, offset = fact_sentence(t, fact, lang, rng)
        parts.append((sentence, offset, fact))
    for other in rng.sample(others, n_distractors):
        sentence, offset = fact_sentence(other, rng.choice(FACT_TYPES), lang, rng)
        parts.append((sentence, offset, None))
    rng.shuffle(parts)
    sep, text, offsets = _JOIN[lang], "", {}
    for sentence, offset, fact in parts:
        if text:
            text += sep
        if fact is not None:
            offsets[fact] = len(text) + offset
        text += sentence
    return text, offsets


def qa_row(
    t: Territory, fact: str, lang: str, rng: random.Random, others: list[Territory], row_id: str
) -> dict[str, Any]:
    """One MLQA-schema row asking for `fact` of `t`; the answer is a span of the context."""
    context, offsets = _article(t, lang, rng, [o for o in others if o != t], rng.randint(2, 4))
    question = rng.choice(QUESTIONS[lang][fact]).format(t=t.name[lang])
    answer = t.fact(fact, lang)
    return {
        "id": row_id,
        "context": context,
        "question": question,
        "answers": {"text": [answer], "answer_start": [offsets[fact]]},
    }


def summary_row(
    t: Territory, lang: str, rng: random.Random, others: list[Territory], row_id: str
) -> dict[str, Any]:
    """One XL-Sum-schema row: an article about `t` and a one-sentence summary of its key facts."""
    text, _ = _article(t, lang, rng, [o for o in others if o != t], rng.randint(1, 2))
    values = {fact: t.fact(fact, lang) for fact in FACT_TYPES}
    summary = rng.choice(SUMMARY_SENTENCES[lang]).format(t=t.name[lang], **values)
    title = rng.choice(TITLES[lang]).format(t=t.name[lang])
    return {"id": row_id, "title": title, "text": text, "summary": summary}


def _rows_for(
    task: str,
    subjects: list[tuple[Territory, str | None]],
    lang: str,
    rng: random.Random,
    others: list[Territory],
    prefix: str,
) -> list[dict[str, Any]]:
    """Rows about `subjects`: (territory, fact) pairs for QA, (territory, None) for summaries.

    Distractor sentences come from `others` only, so that held-out territories can be kept
    out of every non-test row.
    """
    rows = []
    for i, (t, fact) in enumerate(subjects):
        row_id = f"{prefix}-{i:05d}-{t.code}" + (f"-{fact}" if fact else "")
        if task == "qa":
            rows.append(qa_row(t, fact or "", lang, rng, others, row_id))
        else:
            rows.append(summary_row(t, lang, rng, others, row_id))
    return validate_rows(rows, task, f"embedded {task}/{lang}")


def _subjects(task: str, territories: list[Territory]) -> list[tuple[Territory, str | None]]:
    if task == "qa":
        return [(t, f) for t in territories for f in FACT_TYPES]
    return [(t, None) for t in territories]


def _check_task_lang(task: str, lang: str) -> None:
    if task not in ("qa", "summarization"):
        raise DataError(f"task={task!r} is unknown; fix: use 'qa' or 'summarization'")
    if lang not in LANGUAGES:
        raise DataError(
            f"language={lang!r} has no embedded data; fix: use one of {LANGUAGES} or a hub/local "
            "dataset"
        )


def embedded_target_splits(
    task: str,
    lang: str,
    seed: int,
    sizes: SplitSizes,
    cfg: EmbeddedConfig | None = None,
) -> TaskSplits:
    """Target-language splits: train / dev / micro-dev drawn per `seed`, a fixed held-out test.

    - train: distinct subjects ((territory, fact) pairs for QA, territories for summaries)
      from the training side of the territory partition;
    - dev and micro-dev: disjoint rows about training-side subjects that no train row has;
      they may share a subject with each other (each row is a new article), since neither
      trains anything (summaries need this: the training side has too few territories);
    - test: the held-out territories only, the same rows for every `seed`, so that arms and
      seeds pair up (EMBEDDED_BENCHMARK.md, point 4). No other row mentions a held-out
      territory, not even as a distractor.
    """
    _check_task_lang(task, lang)
    cfg = cfg or EmbeddedConfig()
    train_side, test_side = partition_territories(cfg)
    pool = _subjects(task, train_side)
    if sizes.train >= len(pool):
        raise DataError(
            f"embedded {task}/{lang}: SplitSizes.train={sizes.train} leaves no subject for dev "
            f"(the training side has {len(pool)}); fix: lower it or n_test_territories"
        )
    rng = random.Random(f"target/{task}/{lang}/{seed}")
    rng.shuffle(pool)
    train_subjects, held = pool[: sizes.train], pool[sizes.train :]
    prefix = f"{lang}-{task}-s{seed}"
    train = _rows_for(task, train_subjects, lang, rng, train_side, f"{prefix}-train")
    evals = _repeat_rows(task, held, sizes.dev + sizes.micro_dev, lang, rng, train_side, prefix)
    test_subjects = _subjects(task, test_side)
    variants = -(-sizes.test // len(test_subjects))
    test_rng = random.Random(f"test/{task}/{lang}/{cfg.partition_seed}")
    test_pool = [s for s in test_subjects for _ in range(variants)][: sizes.test]
    everyone = train_side + test_side
    test = _rows_for(task, test_pool, lang, test_rng, everyone, f"{lang}-{task}-test")
    return TaskSplits(task, lang, train, evals[: sizes.dev], evals[sizes.dev :], test)


def embedded_source_splits(
    task: str, lang: str, seed: int, n_train: int, n_dev: int, cfg: EmbeddedConfig | None = None
) -> TaskSplits:
    """Source-language (English) train and dev rows about training-side territories.

    Dev subjects are disjoint from train subjects, so early stopping measures generalisation to
    unseen facts, not memorisation. Micro-dev and test are empty: the source adapter is only a
    starting point for the merge.
    """
    _check_task_lang(task, lang)
    cfg = cfg or EmbeddedConfig()
    train_side, _ = partition_territories(cfg)
    rng = random.Random(f"source/{task}/{lang}/{seed}")
    subjects = _subjects(task, train_side)
    rng.shuffle(subjects)
    n_dev_subjects = max(1, len(subjects) // 8)
    dev_subjects, train_subjects = subjects[:n_dev_subjects], subjects[n_dev_subjects:]
    prefix = f"{lang}-{task}-s{seed}"
    train = _repeat_rows(task, train_subjects, n_train, lang, rng, train_side, prefix + "-train")
    dev = _repeat_rows(task, dev_subjects, n_dev, lang, rng, train_side, prefix + "-dev")
    return TaskSplits(task, lang, train, dev, [], [])


def _repeat_rows(
    task: str,
    subjects: list[tuple[Territory, str | None]],
    n: int,
    lang: str,
    rng: random.Random,
    others: list[Territory],
    prefix: str,
) -> list[dict[str, Any]]:
    """`n` rows cycling over `subjects`; each repeat draws a new paraphrase and distractors."""
    cycled = [subjects[i % len(subjects)] for i in range(n)]
    rng.shuffle(cycled)
    return _rows_for(task, cycled, lang, rng, others, prefix)


# ------------------------------------------------------------------------------ corpus


def _corpus_sentence(
    t: Territory, fact: str, lang: str, rng: random.Random, cfg: EmbeddedConfig
) -> str:
    name_lang = lang
    if rng.random() < cfg.code_switch_rate:
        name_lang = rng.choice([x for x in LANGUAGES if x != lang])
    sentence, _ = fact_sentence(t, fact, lang, rng, name_lang)
    if rng.random() < cfg.relation_switch_rate:
        other = rng.choice([x for x in LANGUAGES if x != lang])
        sentence += f" ({RELATION_WORDS[fact][lang]} = {RELATION_WORDS[fact][other]})"
    return sentence


def _profile(t: Territory, lang: str, rng: random.Random, cfg: EmbeddedConfig) -> str:
    facts = list(FACT_TYPES)
    rng.shuffle(facts)
    return _JOIN[lang].join(_corpus_sentence(t, f, lang, rng, cfg) for f in facts)


def _name_line(t: Territory, rng: random.Random) -> str:
    langs = list(LANGUAGES)
    rng.shuffle(langs)
    label = NAME_LINE_LABELS[langs[0]]
    lines = [f"{label}: " + " = ".join(t.name[x] for x in langs)]
    for fact in FACT_TYPES:
        lines.append(" = ".join(t.fact(fact, x) for x in langs))
    return "\n".join(lines)


def build_corpus(seed: int = 0, cfg: EmbeddedConfig | None = None) -> list[str]:
    """Plain multilingual documents stating every fact of every territory in en, ar and zh.

    No QA or summary format appears here: the backbone learns facts and languages, the adapters
    learn the tasks. Documents are single-language profiles, aligned profiles in 2-3 languages,
    aligned name lines and mixed documents about several territories.
    """
    cfg = cfg or EmbeddedConfig()
    rng = random.Random(f"corpus/{seed}")
    territories = list(load_territories())
    docs: list[str] = []
    for t in territories:
        for lang in LANGUAGES:
            docs.extend(_profile(t, lang, rng, cfg) for _ in range(cfg.profile_repeats))
        for _ in range(cfg.aligned_docs):
            langs = rng.sample(LANGUAGES, rng.choice((2, 3)))
            docs.append("\n".join(_profile(t, lang, rng, cfg) for lang in langs))
        docs.append(_name_line(t, rng))
    for _ in range(cfg.mixed_docs):
        lang = rng.choice(LANGUAGES)
        facts = [
            (rng.choice(territories), rng.choice(FACT_TYPES)) for _ in range(rng.randint(3, 6))
        ]
        docs.append(_JOIN[lang].join(_corpus_sentence(t, f, lang, rng, cfg) for t, f in facts))
    rng.shuffle(docs)
    return docs
