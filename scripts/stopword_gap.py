"""How much XL-Sum's Arabic stopword list changes ROUGE-L on the embedded test set.

    .venv/bin/python scripts/stopword_gap.py --stopwords PATH \
        --predictions docs/results/live/summarization-ar/predictions.json

XL-Sum's scorer builds nltk's Arabic stemmer with `ignore_stopwords=True`, so words on nltk's
Arabic stopword list stay unstemmed. That list cannot ship with this package (no licence is
stated for it), so the default scorer stems every word (docs/METRICS.md). This script takes
the list from where a user has it (nltk_data's `corpora/stopwords/arabic`: one word per line)
and scores a benchmark's stored greedy decodings against the embedded test split's summaries
both ways, per method and seed, so the gap can be stated beside the metric. The references
are rebuilt from the benchmark's own data settings (no model is loaded).
"""

from __future__ import annotations

import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import tyro


@dataclass(frozen=True)
class Args:
    """Score stored decodings with and without a stopword list."""

    stopwords: Path
    """nltk's Arabic stopword file (one word per line)."""
    predictions: Path = Path("docs/results/live/summarization-ar/predictions.json")
    """A benchmark's predictions.json (benchmark.json beside it gives the data settings)."""


def _references(config: dict, seed: int) -> list[str]:
    from grasp_env.config import ExperimentConfig
    from grasp_env.data import load_target_splits
    from grasp_env.lm.batches import reference_texts

    cfg = ExperimentConfig.from_dict({**config, "seed": seed})
    data = cfg.data
    splits = load_target_splits(
        data.target_data, data.task, data.target, seed, data.split_sizes, data.embedded
    )
    return reference_texts(splits.test, data.task, data.target)


def main(args: Args) -> int:
    """Print mean ROUGE-L per method under both conventions and the per-row count that differ."""
    from rouge_score.rouge_scorer import RougeScorer

    from grasp_env.metrics.rouge import XlsumTokenizer

    words = frozenset(
        w.strip() for w in args.stopwords.read_text(encoding="utf-8").splitlines() if w.strip()
    )
    config = json.loads((args.predictions.parent / "benchmark.json").read_text())["config"]
    if config["data"]["target"] != "ar" or config["data"]["task"] != "summarization":
        raise SystemExit(
            f"{args.predictions}: not an Arabic summarisation benchmark; fix: point "
            "--predictions at one (e.g. docs/results/live/summarization-ar/predictions.json)"
        )
    plain = RougeScorer(["rougeL"], tokenizer=XlsumTokenizer("ar"))
    listed = RougeScorer(["rougeL"], tokenizer=XlsumTokenizer("ar", stopwords=words))
    refs: dict[int, list[str]] = {}
    by_method: dict[str, list[tuple[float, float]]] = {}
    for entry in json.loads(args.predictions.read_text()):
        seed = entry["seed"]
        refs.setdefault(seed, _references(config, seed))
        pairs = zip(entry["predictions"], refs[seed], strict=True)
        scores = [
            (
                plain.score(r, p)["rougeL"].fmeasure * 100,
                listed.score(r, p)["rougeL"].fmeasure * 100,
            )
            for p, r in pairs
        ]
        by_method.setdefault(entry["method"], []).extend(scores)
    print(f"{len(words)} stopwords; {args.predictions}")
    print("| method | rows | ROUGE-L, all stemmed | with the list | gap | rows that differ |")
    print("|---|---|---|---|---|---|")
    for method, scores in by_method.items():
        a = statistics.mean(s[0] for s in scores)
        b = statistics.mean(s[1] for s in scores)
        differ = sum(abs(s[0] - s[1]) > 1e-9 for s in scores)
        print(f"| {method} | {len(scores)} | {a:.2f} | {b:.2f} | {b - a:+.2f} | {differ} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(tyro.cli(Args)))
