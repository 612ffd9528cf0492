"""What test decoding costs, by batch size and prompt order (issue 15's decoding lever).

    .venv/bin/python scripts/decode_cost.py --task qa --target ar --batch-sizes 16 32 64

Prepares the default preset (cached), puts the merge on the backbone and greedy-decodes the
test split once per setting, timing each and counting predictions that differ from the first
setting's (batch composition changes float sums, which can flip an argmax).
"""

from __future__ import annotations

import argparse
import time

from grasp_env.lm.batches import generate
from grasp_env.lm.pipeline import PipelineConfig, prepare, start_model
from grasp_env.lm.presets import get_preset


def main() -> int:
    """Print one markdown row per (batch size, order)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="qa")
    parser.add_argument("--target", default="ar")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    preset = get_preset("default")
    cfg = PipelineConfig(task=args.task, target=args.target, seed=args.seed)
    prep = prepare(preset, cfg, progress=False, log=lambda _: None)
    model = start_model(prep, "merged")
    rows = prep.splits.test
    max_new = preset.max_new_tokens[args.task]
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
                    args.task,
                    args.target,
                    preset.max_length,
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
    raise SystemExit(main())
