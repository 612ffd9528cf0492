"""Task metrics that handle English, Arabic and Chinese correctly.

The paper's metric code was not released, so tokenisation is ours to get right (PAPER.md):

- EM and token F1 follow the MLQA evaluation script: lower-case, drop punctuation (every Unicode
  P* character), drop articles per language (English a/an/the; Arabic: MLQA removes every
  occurrence of "ال", which we follow for comparability), collapse whitespace; then "mixed
  segmentation": each CJK character is one token, other text splits on whitespace. The last step
  is what makes Chinese scoreable at all.
- ROUGE-L uses the same segmentation (rouge-score's default tokenizer drops non-Latin text).
- BLEU-4 and chrF come from sacrebleu, with its Chinese tokenizer for zh.
- BERTScore runs only when its model is available locally; otherwise a clear error, never a
  silent zero.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any

__all__ = [
    "MetricUnavailable",
    "bertscore_f1",
    "bleu4",
    "chrf",
    "exact_match",
    "normalize_answer",
    "qa_metrics",
    "rouge_l",
    "segment",
    "summary_metrics",
    "token_f1",
]


class MetricUnavailable(RuntimeError):
    """A metric whose package or model is not available on this machine."""


_ARTICLES = {
    "en": re.compile(r"\b(a|an|the)\b"),
    "ar": re.compile(r"\sال^|ال"),  # the MLQA script's own pattern
}


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0xF900 <= cp <= 0xFAFF
        or 0x3040 <= cp <= 0x30FF  # kana, as in MLQA's mixed segmentation
    )


def _is_punct(ch: str) -> bool:
    return ch in string.punctuation or unicodedata.category(ch).startswith("P")


def segment(text: str) -> list[str]:
    """Mixed segmentation: every CJK character is a token, other runs split on whitespace."""
    tokens: list[str] = []
    for word in text.split():
        buf = ""
        for ch in word:
            if _is_cjk(ch):
                if buf:
                    tokens.append(buf)
                    buf = ""
                tokens.append(ch)
            else:
                buf += ch
        if buf:
            tokens.append(buf)
    return tokens


def normalize_answer(text: str, lang: str) -> str:
    """MLQA-style normalisation of an answer in `lang`."""
    text = text.lower()
    text = "".join(" " if _is_punct(ch) else ch for ch in text)
    article = _ARTICLES.get(lang)
    if article is not None:
        text = article.sub(" ", text)
    return " ".join(segment(text))


def exact_match(prediction: str, answers: Sequence[str], lang: str) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer."""
    pred = normalize_answer(prediction, lang)
    return float(any(pred == normalize_answer(a, lang) for a in answers))


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    common = Counter(pred_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred_tokens), overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, answers: Sequence[str], lang: str) -> float:
    """Best token-overlap F1 against the gold answers (MLQA-style tokens)."""
    pred = normalize_answer(prediction, lang).split()
    return max(_f1(pred, normalize_answer(a, lang).split()) for a in answers)


def _rouge_tokens(text: str) -> list[str]:
    text = "".join(" " if _is_punct(ch) else ch for ch in text.lower())
    return segment(text)


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure on script-aware tokens (CJK by character, others by word)."""
    pred, ref = _rouge_tokens(prediction), _rouge_tokens(reference)
    if not pred or not ref:
        return 0.0
    lcs = _lcs(pred, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def _sacrebleu_tokenize(lang: str) -> str:
    return "zh" if lang == "zh" else "13a"


def bleu4(predictions: Sequence[str], references: Sequence[str], lang: str) -> float:
    """Corpus BLEU-4 (0-100) with sacrebleu; Chinese uses sacrebleu's zh tokenizer."""
    import sacrebleu

    return float(
        sacrebleu.corpus_bleu(
            list(predictions), [list(references)], tokenize=_sacrebleu_tokenize(lang)
        ).score
    )


def chrf(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (0-100) with sacrebleu: character n-grams, script-neutral."""
    import sacrebleu

    return float(sacrebleu.corpus_chrf(list(predictions), [list(references)]).score)


def bertscore_f1(
    predictions: Sequence[str], references: Sequence[str], model_path: str | None
) -> float:
    """Mean BERTScore F1 (0-100) with a locally available model.

    Raises:
        MetricUnavailable: without `model_path`, without the `bert-score` package, or when the
            path holds no model. Nothing is downloaded.
    """
    if not model_path:
        raise MetricUnavailable(
            "BERTScore needs a local multilingual encoder; fix: pass bertscore_model=PATH "
            "(a directory with a saved model, e.g. bert-base-multilingual-cased)"
        )
    try:
        from bert_score import score
    except ImportError:
        raise MetricUnavailable(
            "BERTScore needs the bert-score package; fix: pip install bert-score"
        ) from None
    from pathlib import Path

    if not Path(model_path).is_dir():
        raise MetricUnavailable(f"bertscore_model={model_path!r} is not a directory")
    _, _, f1 = score(list(predictions), list(references), model_type=model_path, num_layers=9)
    return float(f1.mean().item() * 100)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def qa_metrics(
    predictions: Sequence[str],
    answers: Sequence[Sequence[str]],
    lang: str,
    bertscore_model: str | None = None,
) -> dict[str, Any]:
    """EM and token F1 (0-100), and BERTScore F1 when a local model is given."""
    if len(predictions) != len(answers):
        raise ValueError(f"{len(predictions)} predictions for {len(answers)} gold answer lists")
    out: dict[str, Any] = {
        "em": 100
        * _mean([exact_match(p, a, lang) for p, a in zip(predictions, answers, strict=True)]),
        "f1": 100
        * _mean([token_f1(p, a, lang) for p, a in zip(predictions, answers, strict=True)]),
    }
    if bertscore_model:
        out["bertscore_f1"] = bertscore_f1(predictions, [a[0] for a in answers], bertscore_model)
    return out


def summary_metrics(
    predictions: Sequence[str],
    references: Sequence[str],
    lang: str,
    bertscore_model: str | None = None,
) -> dict[str, Any]:
    """ROUGE-L F (0-100), BLEU-4, chrF, and BERTScore F1 when a local model is given."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    out: dict[str, Any] = {
        "rouge_l": 100
        * _mean([rouge_l(p, r) for p, r in zip(predictions, references, strict=True)]),
        "bleu4": bleu4(predictions, references, lang),
        "chrf": chrf(predictions, references),
    }
    if bertscore_model:
        out["bertscore_f1"] = bertscore_f1(predictions, references, bertscore_model)
    return out
