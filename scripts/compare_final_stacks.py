"""The final run on transformers' Trainer against the package's former loop, paired.

    .venv/bin/python scripts/compare_final_stacks.py                 # 4 pairs x 3 seeds x 8 ratios
    .venv/bin/python scripts/compare_final_stacks.py --trainer-from docs/results/live
    .venv/bin/python scripts/compare_final_stacks.py --pairs qa-ar --seeds 42 --ratios 0.4

Until the config-tree change, final runs and grid points trained on the package's own loop
(`adapters.fit`); they now train on transformers' Trainer (`grasp_env.lm.trainer.train_lora`).
This script keeps that loop, as it was at commit 36ad543 (its data order, its dev evaluation
before the first step, its best-checkpoint choice and early stopping), only to measure the
Trainer against it on the same prepared adapters: for every pair, seed and grid ratio, both
stacks fine-tune the same merge pruned at the ratio, alternating which goes first, and both
are scored by the same code (test NLL, greedy decoding, metrics). Reported: the grid's
dev-selected test metric per stack and its paired difference, the per-point paired
difference, and the training seconds of each stack (paired ratio). With `--trainer-from`, the
Trainer's side is read from the grids of live benchmarks (<dir>/<pair>/benchmark.json, the
same code path), after checking each seed's prepared state against the benchmark's
fingerprint, and only the former loop runs here; its seconds are then not paired in time (the
paired timing needs both stacks run alternately: the default mode). Run it alone.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from grasp_env.config import DEFAULT_PAIRS, ExperimentConfig
from grasp_env.runs.cli import experiment_of, parse

PAIRS = DEFAULT_PAIRS


@dataclass(frozen=True)
class Args(ExperimentConfig):
    """Trainer against the former loop on the grid of every pair and seed."""

    pairs: tuple[str, ...] = tuple(PAIRS)
    """Pairs (qa-ar, qa-zh, summarization-ar, summarization-zh)."""
    seeds: tuple[int, ...] = (42, 1337, 9001)
    """Seeds."""
    ratios: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
    """Grid ratios."""
    out: Path = Path("docs/results/final-stacks.json")
    """Where the per-point records go (a .md table beside it)."""
    trainer_from: Path | None = None
    """Read the Trainer's points from <dir>/<pair>/benchmark.json instead of running them."""


# ------------------------------------------------------------- the former loop, verbatim in kind


class _DataOrder:
    """The former loop's row order: a Random(seed) shuffle per pass (one process)."""

    def __init__(self, n_rows: int, seed: int) -> None:
        self.n_rows, self.rng, self.pending = n_rows, random.Random(seed), []

    def next(self, batch_size: int) -> list[int]:
        while len(self.pending) < batch_size:
            fresh = list(range(self.n_rows))
            self.rng.shuffle(fresh)
            self.pending.extend(fresh)
        rows, self.pending = self.pending[:batch_size], self.pending[batch_size:]
        return rows


def legacy_fit(model, train, dev, recipe, seed, pad_id, spec, eval_batch_size) -> dict[str, Any]:
    """The package's loop before the Trainer: dev at step 0 and every eval_every, best kept."""
    import torch
    from peft import set_peft_model_state_dict

    from grasp_env.lm.batches import evaluate_loss, model_device
    from grasp_env.lm.host import lora_state
    from grasp_env.lm.pruning import PruneState, lora_parameters
    from grasp_env.lm.step import masked_step
    from grasp_env.seeding import seed_everything

    t0 = time.perf_counter()
    seed_everything(seed)
    params = lora_parameters(model)
    device = model_device(model)
    optimizer = torch.optim.AdamW(
        params.values(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay
    )
    state = PruneState(params) if spec is not None else None

    def masks():
        if spec.importance is None:
            return state.masks_at(params, spec.ratio, spec.scope)
        return state.masks_at(params, spec.ratio, spec.scope, spec.importance)

    order = _DataOrder(len(train), seed)
    if state is not None:
        state.commit(params, masks())
    best_loss, best_step = evaluate_loss(model, dev, pad_id, eval_batch_size), 0
    best_state, bad, steps = lora_state(model), 0, 0
    model.train()
    for step in range(1, recipe.max_steps + 1):
        loss = masked_step(model, params, optimizer, train, order.next(recipe.batch_size),
                           pad_id, device, state)  # fmt: skip
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss {loss} at step {step}")
        if state is not None and spec.rebuild_every and step % spec.rebuild_every == 0:
            state.commit(params, masks(), optimizer)
        steps = step
        if step % recipe.eval_every == 0 or step == recipe.max_steps:
            dev_loss = evaluate_loss(model, dev, pad_id, eval_batch_size)
            if dev_loss < best_loss:
                best_loss, best_step, best_state, bad = dev_loss, step, lora_state(model), 0
            else:
                bad += 1
                if recipe.patience and bad >= recipe.patience:
                    break
    set_peft_model_state_dict(model, best_state, adapter_name=model.active_adapter)
    return {"dev_loss": best_loss, "best_step": best_step, "steps": steps,
            "train_s": time.perf_counter() - t0}  # fmt: skip


# --------------------------------------------------------------------------------- the runs


def _point(prep, ratio: float, stack: str) -> dict[str, Any]:
    """One final run at `ratio` on `stack` ('trainer' or 'loop'), scored on test."""
    from grasp_env.lm.batches import evaluate_loss
    from grasp_env.lm.pipeline import score, start_model
    from grasp_env.lm.trainer import PruneSpec, train_lora

    cfg = prep.cfg
    model = start_model(prep, "merged")
    spec = PruneSpec(ratio, cfg.merge.mask_scope, None, cfg.final.rebuild_every) if ratio else None
    t0 = time.perf_counter()
    if stack == "trainer":
        fit = train_lora(
            model, prep.encoded["train"], prep.encoded["dev"], cfg.final, cfg.seed, prep.pad_id,
            eval_batch_size=cfg.eval.eval_batch_size, prune=spec,
        )  # fmt: skip
        result = {"dev_loss": fit.best_dev_loss, "best_step": fit.best_step, "steps": fit.steps,
                  "train_s": time.perf_counter() - t0}  # fmt: skip
    else:
        result = legacy_fit(
            model, prep.encoded["train"], prep.encoded["dev"], cfg.final, cfg.seed, prep.pad_id,
            spec, cfg.eval.eval_batch_size,
        )  # fmt: skip
    result["test_loss"] = evaluate_loss(
        model, prep.encoded["test"], prep.pad_id, cfg.eval.eval_batch_size
    )
    result["test"] = score(prep, model)
    result.update(stack=stack, ratio=ratio)
    return result


def main(args: Args) -> None:
    """Run every point on both stacks; write the records and the table."""
    from grasp_env.atomic import atomic_write_text
    from grasp_env.lm.pipeline import prepare

    base = experiment_of(args)
    records = []
    for pair in args.pairs:
        task, target = PAIRS[pair]
        tree = ExperimentConfig.from_preset(base.preset, base.method, task)
        tree = replace(tree, data=replace(tree.data, target=target))
        earlier = _trainer_points(args.trainer_from, pair) if args.trainer_from else None
        for seed in args.seeds:
            prep = prepare(replace(tree, seed=seed), progress=False, log=lambda _: None)
            if earlier is not None:
                records += _reuse(earlier, seed, prep, pair, args.ratios)
            for i, ratio in enumerate(args.ratios):
                order = ("trainer", "loop") if (i + seed) % 2 == 0 else ("loop", "trainer")
                if earlier is not None:
                    order = ("loop",)
                for stack in order:
                    rec = {"pair": pair, "seed": seed, **_point(prep, ratio, stack)}
                    records.append(rec)
                    shown = ("pair", "seed", "ratio", "stack", "dev_loss", "test", "train_s")
                    print(json.dumps({k: rec[k] for k in shown}))
            del prep
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(records, indent=1))
    table = report(records)
    atomic_write_text(args.out.with_suffix(".md"), table)
    print(table)


def _trainer_points(root: Path, pair: str) -> dict:
    """The grid of a live benchmark: its seeds, fingerprints and points."""
    bench = json.loads((root / pair / "benchmark.json").read_text())
    seeds = bench["config"]["seeds"]
    grid = bench["methods"]["grid"]["per_seed"]
    return {seed: (bench["fingerprints"][i], grid[i]["points"]) for i, seed in enumerate(seeds)}


def _reuse(earlier: dict, seed: int, prep: Any, pair: str, ratios: tuple) -> list[dict]:
    """The Trainer's records of `seed` from a benchmark, after checking the prepared state."""
    fingerprint, points = earlier[seed]
    if fingerprint != prep.fingerprint():
        raise ValueError(
            f"{pair} seed {seed}: the benchmark's prepared state ({fingerprint}) is not this "
            f"one ({prep.fingerprint()}); fix: run both in the same install and cache"
        )
    out = []
    for p in points:
        if p["ratio"] in ratios:
            out.append(
                {"pair": pair, "seed": seed, "stack": "trainer", "ratio": p["ratio"],
                 "dev_loss": p["dev_loss"], "test": p["test"], "test_loss": p["test_loss"],
                 "train_s": p["train_s"]}
            )  # fmt: skip
    return out


def report(records: list[dict]) -> str:
    """Markdown: per pair, the dev-selected test metric of each stack and their paired gap."""
    lines = [
        "| pair | metric | loop (grid-selected) | Trainer (grid-selected) | paired diff | "
        "per-point paired diff | per-point paired diff, test NLL | "
        "train s loop / Trainer: median ratio (mean +- s.e.; pairs with the Trainer slower) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for pair in dict.fromkeys(r["pair"] for r in records):
        mine = [r for r in records if r["pair"] == pair]
        metric = "em" if pair.startswith("qa") else "rouge_l"
        selected = {"loop": [], "trainer": []}
        diffs, nll_diffs, ratios = [], [], []
        for seed in dict.fromkeys(r["seed"] for r in mine):
            for stack in selected:
                pts = [r for r in mine if r["seed"] == seed and r["stack"] == stack]
                best = min(pts, key=lambda r: r["dev_loss"])
                selected[stack].append(best["test"][metric])
            for ratio in dict.fromkeys(r["ratio"] for r in mine):
                a = next(
                    r for r in mine if (r["seed"], r["ratio"], r["stack"]) == (seed, ratio, "loop")
                )
                b = next(
                    r
                    for r in mine
                    if (r["seed"], r["ratio"], r["stack"]) == (seed, ratio, "trainer")
                )
                diffs.append(b["test"][metric] - a["test"][metric])
                nll_diffs.append(b["test_loss"] - a["test_loss"])
                ratios.append(a["train_s"] / b["train_s"])
        gap = [t - s for s, t in zip(selected["loop"], selected["trainer"], strict=True)]

        def ms(v: list[float], digits: int = 2, sign: str = "+") -> str:
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            return f"{statistics.mean(v):{sign}.{digits}f} +- {sd:.{digits}f}"

        lines.append(
            f"| {pair} | {metric} | {ms(selected['loop'], sign='')} | "
            f"{ms(selected['trainer'], sign='')} | "
            f"{ms(gap)} | {ms(diffs)} | {ms(nll_diffs, 4)} | {_time_ratios(ratios)} |"
        )
    return "\n".join(lines) + "\n"


def _time_ratios(ratios: list[float]) -> str:
    """Paired loop / Trainer seconds: median, mean +- standard error, and the Trainer's losses."""
    se = statistics.stdev(ratios) / math.sqrt(len(ratios)) if len(ratios) > 1 else 0.0
    slower = sum(r < 1 for r in ratios)
    return (
        f"{statistics.median(ratios):.3f} ({statistics.mean(ratios):.3f} +- {se:.3f}; "
        f"{slower} of {len(ratios)})"
    )


if __name__ == "__main__":
    main(parse(Args)[0])
