"""What test decoding costs, by batch size and prompt order (issue 15's decoding lever).

    .venv/bin/python scripts/decode_cost.py --task qa --target ar --batch-sizes 16 32 64

Prepares the default preset (cached), puts the merge on the backbone and greedy-decodes the
test split once per setting, timing each and counting predictions that differ from the first
setting's (batch composition changes float sums, which can flip an argmax).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from grasp_env.config import ExperimentConfig
from grasp_env.lm.batches import generate
from grasp_env.lm.pipeline import prepare, start_model
from grasp_env.runs.cli import experiment_of, parse


@dataclass(frozen=True)
class Args(ExperimentConfig):
    """Time test decoding per batch size and order (the experiment's flags choose the run)."""

    batch_sizes: tuple[int, ...] = (16, 32, 64)
    """Decoding batch sizes to time."""
    repeats: int = 2
    """Timed repetitions of each setting (the best is printed)."""


def main(args: Args) -> int:
    """Print one markdown row per (batch size, order)."""
    cfg = experiment_of(args)
    prep = prepare(cfg, progress=False, log=lambda _: None)
    model = start_model(prep, "merged")
    rows = prep.splits.test
    max_new = cfg.eval.max_new_tokens
    print(f"{len(rows)} test rows, max_new_tokens {max_new}")
    print("| batch | order | seconds (best of repeats) | predictions differing from the first |")
    print("|---|---|---|---|")
    first = None
    for bs in args.batch_sizes:
        for by_length in (False, True):
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                preds = generate(
                    model,
                    prep.tokenizer,
                    rows,
                    cfg.data.task,
                    cfg.data.target,
                    cfg.data.max_length,
                    max_new,
                    batch_size=bs,
                    by_length=by_length,
                )
                times.append(time.perf_counter() - t0)
            first = first or preds
            differ = sum(a != b for a, b in zip(preds, first, strict=True))
            order = "longest first" if by_length else "as given"
            print(f"| {bs} | {order} | {min(times):.2f} | {differ} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(parse(Args)[0]))
