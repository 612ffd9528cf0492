"""The paper's baselines on the same prepared adapters, splits and seeds as the grid.

- `zero_shot`: the backbone with every adapter disabled (PEFT's `disable_adapter`).
- `source_only`: the English adapter alone on the target language (zero-shot transfer).
- `target_only`: the target LoRA fine-tuned further by the final run's recipe, no merge.
- `merged_no_prune`: the merge, fine-tuned by the final run's recipe, ratio 0.
- `ties`, `dare_linear`, `dare_ties`, `magnitude_prune`: PEFT's `add_weighted_adapter` on the
  source and target adapters (weights 1 and 1), `density` = 1 - ratio chosen on the dev loss
  over the grid's ratios, scored without further training, as the paper's merge baselines are.
  PEFT prunes each LoRA factor (every A and every B) on its own, per tensor, before combining
  them, and scales each by sqrt(weight * alpha / r): a different object from GRASP's global
  ratio, which prunes the merged adapter's factors after merging and then trains with the
  mask (docs/METHOD.md).
- `lorahub`: LoRAHub's gradient-free search of the two adapters' combination weights
  (A = w_s A_s + w_t A_t and B = w_s B_s + w_t B_t, as its reference implementation combines
  LoRA modules): Nevergrad's NGOpt, 40 evaluations of the micro-dev loss + 0.05 * sum |w|, the
  weights in [-1.5, 1.5] starting from 0; the equal-weight merge (1, 1) is the first point
  told to the optimiser (one of the 40; LoRAHub's code does not do this), so the search is
  never worse than it; the best point evaluated is taken; scored without further training.

Every function returns the same record: the chosen setting, its dev loss, test metrics and NLL,
the predictions and the seconds split into training, search and test scoring.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

__all__ = [
    "BASELINES",
    "MERGE_BASELINES",
    "lorahub_weights",
    "run_baseline",
]

MERGE_BASELINES: tuple[str, ...] = ("ties", "dare_linear", "dare_ties", "magnitude_prune")
"""PEFT `add_weighted_adapter` combination types scored as merge baselines."""
BASELINES: tuple[str, ...] = (
    "zero_shot",
    "source_only",
    "target_only",
    "merged_no_prune",
    *MERGE_BASELINES,
    "lorahub",
)
"""Every baseline `run_baseline` knows."""

LORAHUB_BUDGET = 40
"""Evaluations of LoRAHub's search (its reference implementation's default)."""
LORAHUB_L1 = 0.05
"""LoRAHub's L1 penalty on the combination weights."""
LORAHUB_BOUND = 1.5
"""LoRAHub's bound on every combination weight."""


def _record(prep: Any, model: Any, setting: dict, dev_loss: float, seconds: dict) -> dict:
    """Score `model` on test and assemble the baseline's record."""
    from grasp_env.lm.batches import evaluate_loss
    from grasp_env.lm.pipeline import score

    t = time.perf_counter()
    size = prep.cfg.eval.eval_batch_size
    test_loss = evaluate_loss(model, prep.encoded["test"], prep.pad_id, size)
    predictions: list[str] = []
    test = score(prep, model, predictions=predictions)
    eval_s = time.perf_counter() - t
    out = {
        **setting,
        "dev_loss": dev_loss,
        "test": test,
        "test_loss": test_loss,
        "predictions": predictions,
        "train_s": seconds.get("train_s", 0.0),
        "search_s": seconds.get("search_s", 0.0),
        "eval_s": eval_s,
    }
    out["seconds"] = out["train_s"] + out["search_s"] + eval_s
    return out


def _dev_loss(prep: Any, model: Any) -> float:
    from grasp_env.lm.batches import evaluate_loss

    return evaluate_loss(model, prep.encoded["dev"], prep.pad_id, prep.cfg.eval.eval_batch_size)


def _adapter(prep: Any, name: str, which: str) -> Any:
    """The source or target adapter (untrained further) as adapter `name` on the backbone."""
    from grasp_env.lm.host import LoraShape, attach_lora

    cfg = prep.cfg
    recipe = cfg.source_lora if which == "source" else cfg.target_lora
    state = prep.source_state if which == "source" else prep.target_state
    shape = LoraShape(recipe.r, recipe.lora_alpha, recipe.lora_dropout, prep.target_modules)
    return attach_lora(prep.base, shape, cfg.seed, state, name=name)


def zero_shot(prep: Any) -> dict:
    """The backbone alone: every adapter disabled while scoring."""
    model = _adapter(prep, "baseline_host", "target")  # a PEFT model to switch off
    try:
        with model.disable_adapter():
            return _record(prep, model, {"setting": "no adapter"}, _dev_loss(prep, model), {})
    finally:
        _drop(prep, "baseline_host")


def source_only(prep: Any) -> dict:
    """The English adapter alone on the target language."""
    model = _adapter(prep, "baseline_source", "source")
    try:
        return _record(prep, model, {"setting": "source adapter"}, _dev_loss(prep, model), {})
    finally:
        _drop(prep, "baseline_source")


def _drop(prep: Any, *names: str) -> None:
    from grasp_env.lm.host import host_of

    for name in names:
        host_of(prep.base).drop(name)


def peft_merge(prep: Any, combination: str, ratios: tuple[float, ...]) -> dict:
    """A PEFT merge of the source and target adapters at the dev-chosen density."""
    if combination not in MERGE_BASELINES:
        raise ValueError(
            f"merge baseline={combination!r} is unknown; fix: use one of {MERGE_BASELINES}"
        )
    if prep.cfg.source_lora.r != prep.cfg.target_lora.r:
        raise ValueError(
            f"--source-lora.r {prep.cfg.source_lora.r} != --target-lora.r "
            f"{prep.cfg.target_lora.r}: PEFT's {combination} merge needs equal ranks; fix: "
            "train both adapters at one rank"
        )
    t0 = time.perf_counter()
    model = _adapter(prep, "baseline_src", "source")
    _adapter(prep, "baseline_tgt", "target")
    name = f"baseline_{combination}"

    def merged(density: float) -> None:
        """The merge at `density` as adapter `name`, active (DARE's drops seeded: repeatable)."""
        from grasp_env.seeding import seed_everything

        _drop(prep, name)
        seed_everything(prep.cfg.seed)
        model.add_weighted_adapter(
            ["baseline_src", "baseline_tgt"], [1.0, 1.0], adapter_name=name,
            combination_type=combination, density=density,
        )  # fmt: skip
        model.set_adapter(name)

    best = None
    try:
        for ratio in ratios:
            density = round(1.0 - ratio, 10)
            merged(density)
            loss = _dev_loss(prep, model)
            if best is None or loss < best[0]:
                best = (loss, ratio, density)
        loss, ratio, density = best
        merged(density)
        search_s = time.perf_counter() - t0
        setting = {"ratio": ratio, "density": density}
        return _record(prep, model, setting, loss, {"search_s": search_s})
    finally:
        _drop(prep, f"baseline_{combination}", "baseline_src", "baseline_tgt")


def lorahub_state(prep: Any, weights: Any) -> dict[str, Any]:
    """The LoRAHub combination of the two adapters' states: every LoRA factor weighted."""
    w_s, w_t = (float(w) for w in weights)
    return {k: w_s * v + w_t * prep.target_state[k] for k, v in prep.source_state.items()}


def lorahub_weights(prep: Any, seed: int) -> tuple[list[float], list[tuple[list[float], float]]]:
    """LoRAHub's search: NGOpt over the combination weights on the micro-dev loss + L1."""
    import nevergrad as ng
    import numpy as np

    from grasp_env.lm.batches import evaluate_loss
    from grasp_env.lm.host import LoraShape, attach_lora

    cfg = prep.cfg
    recipe = cfg.source_lora
    shape = LoraShape(recipe.r, recipe.lora_alpha, 0.0, prep.target_modules)
    model = attach_lora(prep.base, shape, cfg.seed, None, name="baseline_lorahub")
    trace: list[tuple[list[float], float]] = []
    from peft import set_peft_model_state_dict

    def objective(weights: np.ndarray) -> float:
        set_peft_model_state_dict(model, lorahub_state(prep, weights), "baseline_lorahub")
        loss = evaluate_loss(
            model, prep.encoded["micro_dev"], prep.pad_id, cfg.eval.eval_batch_size
        )
        value = loss + LORAHUB_L1 * float(np.abs(weights).sum())
        trace.append(([float(w) for w in weights], value))
        return value

    parametrization = ng.p.Array(init=np.zeros(2), lower=-LORAHUB_BOUND, upper=LORAHUB_BOUND)
    parametrization.random_state = np.random.RandomState(seed % 2**32)
    optimizer = ng.optimizers.NGOpt(parametrization=parametrization, budget=LORAHUB_BUDGET)
    try:
        optimizer.suggest(np.ones(2))  # the equal-weight merge is the first point asked for
        with warnings.catch_warnings():  # NGOpt's sub-solvers warn about their own settings
            warnings.simplefilter("ignore")
            for _ in range(LORAHUB_BUDGET):
                candidate = optimizer.ask()
                optimizer.tell(candidate, objective(candidate.value))
    finally:
        _drop(prep, "baseline_lorahub")
    best = min(trace, key=lambda t: t[1])  # the best point evaluated
    return best[0], trace


def lorahub(prep: Any) -> dict:
    """LoRAHub: the searched combination of the source and target adapters, untrained."""
    from peft import set_peft_model_state_dict

    from grasp_env.lm.host import LoraShape, attach_lora

    t0 = time.perf_counter()
    weights, trace = lorahub_weights(prep, prep.cfg.seed)
    search_s = time.perf_counter() - t0
    recipe = prep.cfg.source_lora
    shape = LoraShape(recipe.r, recipe.lora_alpha, 0.0, prep.target_modules)
    model = attach_lora(prep.base, shape, prep.cfg.seed, None, name="baseline_lorahub")
    set_peft_model_state_dict(model, lorahub_state(prep, weights), "baseline_lorahub")
    try:
        setting = {"weights": weights, "evaluations": len(trace)}
        return _record(prep, model, setting, _dev_loss(prep, model), {"search_s": search_s})
    finally:
        _drop(prep, "baseline_lorahub")


def run_baseline(prep: Any, name: str, ratios: tuple[float, ...]) -> dict:
    """The record of baseline `name` (one of BASELINES) on a prepared pipeline."""
    from grasp_env.lm.pipeline import final_run

    if name == "zero_shot":
        return zero_shot(prep)
    if name == "source_only":
        return source_only(prep)
    if name in ("target_only", "merged_no_prune"):
        arm = "target_only" if name == "target_only" else "merged"
        run = final_run(prep, 0.0, arm)
        record = run.summary()
        record.update(
            predictions=run.predictions,
            train_s=run.seconds - run.eval_seconds,
            search_s=0.0,
            eval_s=run.eval_seconds,
        )
        return record
    if name in MERGE_BASELINES:
        return peft_merge(prep, name, ratios)
    if name == "lorahub":
        return lorahub(prep)
    raise ValueError(f"baseline={name!r} is unknown; fix: use one of {BASELINES}")
