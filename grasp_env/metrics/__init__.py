"""Task metrics, each computed the way the benchmark it comes from defines it.

- EM and token F1: MLQA's official evaluation (`mlqa_evaluation_v1.py`, facebookresearch/MLQA),
  which is SQuAD v1.1's with per-language article rules and Chinese mixed segmentation. Written
  from the script's behaviour (see `normalize_answer`) and checked against it (issue 12).
- ROUGE-L: `rouge-score`'s scorer with a language-aware tokenizer (`grasp_env.metrics.rouge`):
  by default XL-Sum's multilingual convention, or the project's earlier unstemmed one.
- BLEU-4 and chrF: sacrebleu, whose signatures `metric_conventions` reports.
- BERTScore: the `bert-score` package with a local encoder directory; the layer comes from
  bert-score's own table (`model2layers`) for the model the directory holds.

Empty input lists, mismatched lengths and rows without a gold answer raise `ValueError` naming
the problem; nothing returns a silent 0.
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from grasp_env.metrics.errors import MetricUnavailable
from grasp_env.metrics.rouge import (
    DEFAULT_ROUGE,
    ROUGE_CONVENTIONS,
    describe_rouge,
    rouge_tokenizer,
)

__all__ = [
    "DEFAULT_ROUGE",
    "MLQA_LANGUAGES",
    "ROUGE_CONVENTIONS",
    "MetricUnavailable",
    "bertscore_f1",
    "bertscore_layer",
    "bleu4",
    "chrf",
    "exact_match",
    "metric_conventions",
    "normalize_answer",
    "qa_metrics",
    "rouge_l",
    "segment",
    "summary_metrics",
    "token_f1",
]


# --- EM and token F1: MLQA v1 -------------------------------------------------------------

# The languages MLQA's script knows; it raises on any other, and so do we (at config time in
# PipelineConfig, so a run never fails only after its final fine-tune).
MLQA_LANGUAGES: tuple[str, ...] = ("en", "es", "de", "vi", "hi", "ar", "zh")

# Articles MLQA removes per language, each occurrence replaced by a space. hi and zh have none.
# Arabic: the script's pattern has a first alternative (whitespace, "ال", then "^") that can never
# match, so in effect every "ال" is replaced, inside words too; the plain pattern is equivalent.
_ARTICLES: dict[str, re.Pattern[str] | None] = {
    "en": re.compile(r"\b(a|an|the)\b"),
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "de": re.compile(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
    "ar": re.compile("ال"),
    "hi": None,
    "zh": None,
}


def _is_mlqa_punct(ch: str) -> bool:
    # MLQA's set: every code point of a Unicode P* category plus ASCII string.punctuation (which
    # adds the symbols $+<=>^`|~). A per-character test instead of the script's 1.1M-entry set.
    return ch in string.punctuation or unicodedata.category(ch).startswith("P")


def _is_mlqa_cjk(ch: str) -> bool:
    # Mixed segmentation splits off only this range (U+4E00..U+9FA5), for zh only: no kana, no
    # extension blocks, no compatibility ideographs.
    return "\u4e00" <= ch <= "\u9fa5"


def _check_lang(lang: str) -> None:
    if lang not in MLQA_LANGUAGES:
        raise ValueError(
            f"lang={lang!r}: MLQA's EM/F1 are defined for {MLQA_LANGUAGES} only; fix: score "
            "QA in one of those languages"
        )


def segment(text: str) -> list[str]:
    """MLQA's mixed segmentation (zh): each U+4E00..U+9FA5 character is a token.

    Runs of other characters split on whitespace. Punctuation characters are single tokens too,
    as in the script (after `normalize_answer` none are left).
    """
    tokens: list[str] = []
    run: list[str] = []
    for ch in text:
        if _is_mlqa_cjk(ch) or _is_mlqa_punct(ch):
            tokens.extend("".join(run).split())
            run = []
            tokens.append(ch)
        else:
            run.append(ch)
    tokens.extend("".join(run).split())
    return tokens


def normalize_answer(text: str, lang: str) -> str:
    """MLQA's normalisation of an answer in `lang` (one of `MLQA_LANGUAGES`).

    In order: lower-case; delete punctuation (not replace it: "U.S." becomes "us", "1,000"
    becomes "1000"); replace the language's articles by a space; split into tokens (whitespace,
    or mixed segmentation for zh) and join them with single spaces.
    """
    _check_lang(lang)
    text = "".join(ch for ch in text.lower() if not _is_mlqa_punct(ch))
    article = _ARTICLES[lang]
    if article is not None:
        text = article.sub(" ", text)
    tokens = segment(text) if lang == "zh" else text.split()
    return " ".join(tokens)


def _check_answers(answers: Sequence[str]) -> None:
    if isinstance(answers, str):
        raise ValueError(
            f"answers={answers!r} is a string; fix: pass a list of gold answers, e.g. [answer]"
        )
    if len(answers) == 0:
        raise ValueError("no gold answers for this question; fix: give at least one answer")


def exact_match(prediction: str, answers: Sequence[str], lang: str) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer (MLQA), else 0.0.

    As in MLQA, an empty prediction matches an answer that normalises to empty.
    """
    _check_answers(answers)
    pred = normalize_answer(prediction, lang)
    return max(float(pred == normalize_answer(a, lang)) for a in answers)


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    overlap = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if overlap == 0:  # also when both are empty: 0, as in MLQA and SQuAD v1.1 (not v2's 1)
        return 0.0
    precision, recall = overlap / len(pred_tokens), overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, answers: Sequence[str], lang: str) -> float:
    """Best bag-of-tokens F1 against the gold answers, on MLQA-normalised tokens."""
    _check_answers(answers)
    pred = normalize_answer(prediction, lang).split()
    return max(_f1(pred, normalize_answer(a, lang).split()) for a in answers)


# --- ROUGE-L, BLEU-4, chrF ----------------------------------------------------------------


@lru_cache(maxsize=8)
def _rouge_scorer(lang: str, convention: str) -> Any:
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        raise MetricUnavailable(
            "ROUGE-L needs the rouge-score package; fix: pip install rouge-score"
        ) from None
    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=rouge_tokenizer(lang, convention))


def rouge_l(prediction: str, reference: str, lang: str, convention: str = DEFAULT_ROUGE) -> float:
    """ROUGE-L F-measure (0-1) of one prediction, by rouge-score on `convention`'s tokens.

    rouge-score gives 0 when either side has no tokens. A row's score does not depend on the
    rows scored before it. For Arabic, xlsum differs from XL-Sum's own scorer in two measured
    ways, because nltk's stopword list cannot ship and XL-Sum's shared stemmer leaks state
    between words: on 8 hand-made pairs 66.6 here vs 58.9 there (`grasp_env.metrics.rouge`).
    """
    return float(_rouge_scorer(lang, convention).score(reference, prediction)["rougeL"].fmeasure)


def _sacrebleu_tokenize(lang: str) -> str:
    # 13a is sacrebleu's default (mteval-v13a); Chinese needs its own, text has no spaces.
    return "zh" if lang == "zh" else "13a"


def _bleu_metric(lang: str) -> Any:
    from sacrebleu.metrics import BLEU

    return BLEU(tokenize=_sacrebleu_tokenize(lang))


def _chrf_metric() -> Any:
    from sacrebleu.metrics import CHRF

    return CHRF()


def _check_pairs(predictions: Sequence[str], references: Sequence[Any], what: str) -> None:
    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predictions for {len(references)} {what}; fix: pass one "
            f"entry of {what} per prediction"
        )
    if len(predictions) == 0:
        raise ValueError(f"no predictions and no {what} to score; fix: score at least one row")


def bleu4(predictions: Sequence[str], references: Sequence[str], lang: str) -> float:
    """Corpus BLEU-4 (0-100) by sacrebleu: 13a tokens (zh: sacrebleu's zh), exp smoothing."""
    _check_pairs(predictions, references, "references")
    metric = _bleu_metric(lang)
    return float(metric.corpus_score(list(predictions), [list(references)]).score)


def chrf(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (0-100) by sacrebleu: character 6-grams, beta 2, script-neutral."""
    _check_pairs(predictions, references, "references")
    return float(_chrf_metric().corpus_score(list(predictions), [list(references)]).score)


def _signature(metric: Any) -> str:
    # sacrebleu knows the reference count only after scoring; every corpus here has one
    # reference stream, so a one-pair corpus fixes nrefs:1 without changing anything else.
    metric.corpus_score(["x"], [["x"]])
    return str(metric.get_signature())


# --- BERTScore ----------------------------------------------------------------------------


def _model_names(path: Path) -> list[str]:
    """Names the model in `path` may have on the hub, most specific first."""
    names = []
    config = path / "config.json"
    if config.is_file():
        names.append(str(json.loads(config.read_text(encoding="utf-8")).get("_name_or_path", "")))
    for part in (*path.parts, *path.resolve().parts):  # hub cache: models--org--name/snapshots/
        if part.startswith("models--"):
            names.append(part.removeprefix("models--").replace("--", "/"))
    names += [path.name, path.resolve().name]
    return [n for n in names if n]


def bertscore_layer(model_path: str | Path) -> tuple[str, int]:
    """The model `model_path` holds and its BERTScore layer from bert-score's `model2layers`.

    The model is recognised by its config's `_name_or_path`, a hub-cache folder
    (`models--org--name`) or the directory name (`.../xlm-roberta-large`), matched to a table
    entry in full or by the part after the organisation.

    Raises:
        MetricUnavailable: no bert-score package, no model directory, or a model the table
            does not know.
    """
    path = Path(model_path)
    if not (path / "config.json").is_file():
        raise MetricUnavailable(
            f"bertscore_model={str(model_path)!r} is not a model directory (no config.json); fix: "
            "save an encoder there with save_pretrained (e.g. bert-base-multilingual-cased)"
        )
    try:
        from bert_score.utils import model2layers
    except ImportError:
        raise MetricUnavailable(
            "BERTScore needs the bert-score package; fix: pip install bert-score"
        ) from None
    for name in _model_names(path):
        matches = [k for k in model2layers if name in (k, k.rsplit("/", 1)[-1])]
        if len(matches) == 1:
            return matches[0], int(model2layers[matches[0]])
    raise MetricUnavailable(
        f"bertscore_model={str(model_path)!r}: bert-score's layer table (model2layers) has no "
        f"entry for {_model_names(path)}; fix: name the directory after the hub model it holds "
        "(e.g. .../bert-base-multilingual-cased, layer 9; .../xlm-roberta-large, layer 17)"
    )


@lru_cache(maxsize=1)
def _bert_scorer(model_path: str, num_layers: int, device: str | None) -> Any:
    from bert_score import BERTScorer

    scorer = BERTScorer(model_type=model_path, num_layers=num_layers, device=device)
    # A tokenizer saved without model_max_length reports a ~1e30 sentinel that the fast
    # tokenizer of transformers 5 cannot truncate at; the encoder's position table is the limit.
    limit = getattr(scorer._model.config, "max_position_embeddings", None)
    if limit and scorer._tokenizer.model_max_length > limit:
        scorer._tokenizer.model_max_length = limit
    return scorer


def bertscore_f1(
    predictions: Sequence[str],
    references: Sequence[str] | Sequence[Sequence[str]],
    model_path: str | None,
    *,
    num_layers: int | None = None,
    device: str | None = None,
) -> float:
    """Mean BERTScore F1 (0-100) with a local encoder; no idf, no baseline rescaling.

    `references` holds one string per prediction, or a list of strings (all gold answers: the
    best-scoring one counts, bert-score's multi-reference rule). A blank prediction, or a row
    whose references are all blank, scores 0, which is what bert-score intends for empty
    sentences (its tokenizer call fails on them under transformers 5). `num_layers` overrides
    the table's layer.

    Raises:
        MetricUnavailable: without `model_path`, without the package, or for a model
            `bertscore_layer` cannot place. Nothing is downloaded.
        ValueError: empty or mismatched inputs.
    """
    if not model_path:
        raise MetricUnavailable(
            "BERTScore needs a local multilingual encoder; fix: pass bertscore_model=PATH "
            "(a directory with a saved model, e.g. bert-base-multilingual-cased)"
        )
    _check_pairs(predictions, references, "references")
    layer = num_layers if num_layers is not None else bertscore_layer(model_path)[1]
    refs = [[r] if isinstance(r, str) else [x for x in r if x.strip()] for r in references]
    keep = [i for i, (p, r) in enumerate(zip(predictions, refs, strict=True)) if p.strip() and r]
    scores = [0.0] * len(predictions)
    if keep:
        scorer = _bert_scorer(str(model_path), layer, device)
        _, _, f1 = scorer.score([predictions[i] for i in keep], [refs[i] for i in keep])
        for i, value in zip(keep, f1.tolist(), strict=True):
            scores[i] = value
    return 100.0 * sum(scores) / len(scores)


# --- conventions and aggregates ---------------------------------------------------------


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


def metric_conventions(
    task: str, lang: str, rouge: str = DEFAULT_ROUGE, bertscore_model: str | None = None
) -> dict[str, str]:
    """How each metric `qa_metrics` / `summary_metrics` reports for `task` in `lang` is defined.

    One entry per metric key, as short `key:value|...` strings (sacrebleu's own signatures for
    BLEU and chrF). Goes into every metrics.json / benchmark.json as `metric_conventions`.
    """
    out: dict[str, str] = {}
    if task == "qa":
        _check_lang(lang)
        out["em"] = out["f1"] = "mlqa_v1"
    else:
        out["rouge_l"] = f"{describe_rouge(lang, rouge)}|rouge-score:{_version('rouge-score')}"
        out["bleu4"] = _signature(_bleu_metric(lang))
        out["chrf"] = _signature(_chrf_metric())
    if bertscore_model:
        name, layer = bertscore_layer(bertscore_model)
        refs = "all-gold" if task == "qa" else "1"
        out["bertscore_f1"] = (
            f"model:{name}|layer:{layer}|idf:no|rescale:no|refs:{refs}|"
            f"version:{_version('bert-score')}"
        )
    return out


def _check_rows(answers: Sequence[Sequence[str]]) -> None:
    for i, row in enumerate(answers):
        if isinstance(row, str) or len(row) == 0:
            raise ValueError(
                f"row {i}: gold answers {row!r} are not a non-empty list; fix: give every "
                "question a list of at least one gold answer"
            )


def qa_metrics(
    predictions: Sequence[str],
    answers: Sequence[Sequence[str]],
    lang: str,
    bertscore_model: str | None = None,
) -> dict[str, Any]:
    """EM and token F1 (0-100) as MLQA aggregates them, and BERTScore F1 with a local model.

    MLQA: per question the best score over its gold answers, then 100 * sum / questions.
    BERTScore takes all gold answers as references.
    """
    _check_pairs(predictions, answers, "gold answer lists")
    _check_rows(answers)
    _check_lang(lang)
    n = len(predictions)
    pairs = list(zip(predictions, answers, strict=True))
    out: dict[str, Any] = {
        "em": 100.0 * sum(exact_match(p, a, lang) for p, a in pairs) / n,
        "f1": 100.0 * sum(token_f1(p, a, lang) for p, a in pairs) / n,
    }
    if bertscore_model:
        out["bertscore_f1"] = bertscore_f1(predictions, [list(a) for a in answers], bertscore_model)
    return out


def summary_metrics(
    predictions: Sequence[str],
    references: Sequence[str],
    lang: str,
    bertscore_model: str | None = None,
    rouge: str = DEFAULT_ROUGE,
) -> dict[str, Any]:
    """Mean ROUGE-L F (0-100), corpus BLEU-4 and chrF, and BERTScore F1 with a local model."""
    _check_pairs(predictions, references, "references")
    blank = [i for i, r in enumerate(references) if not r.strip()]
    if blank:
        raise ValueError(
            f"references {blank[:5]} are blank; fix: drop rows without a reference summary"
        )
    scorer = _rouge_scorer(lang, rouge)
    pairs = list(zip(predictions, references, strict=True))
    out: dict[str, Any] = {
        "rouge_l": 100.0
        * sum(scorer.score(r, p)["rougeL"].fmeasure for p, r in pairs)
        / len(pairs),
        "bleu4": bleu4(predictions, references, lang),
        "chrf": chrf(predictions, references),
    }
    if bertscore_model:
        out["bertscore_f1"] = bertscore_f1(predictions, references, bertscore_model)
    return out
