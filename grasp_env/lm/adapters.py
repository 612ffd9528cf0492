"""LoRA adapters with PEFT: training (optionally masked), the two merge forms, content caching.

Stage 1, 2 and 4 of the paper (PAPER.md): train a source and a target LoRA, merge them on the
frozen backbone, fine-tune the merged adapter with pruning fixed at a ratio.

Both merge forms are expressed as one ordinary PEFT LoRA adapter, so the merged model saves,
loads and prunes like any other:

- ``reference``: delta_W = (B_src + B_tgt)(A_src + A_tgt), no alpha/r scaling. Rank r with
  lora_alpha = r, so PEFT's scaling alpha/r is 1. Cross terms included.
- ``sum``: delta_W = s * (B_src A_src + B_tgt A_tgt), s = alpha/r (PEFT's multi-adapter
  semantics). Rank 2r: A stacks [A_src; A_tgt], B concatenates [B_src, B_tgt], lora_alpha = 2
  alpha keeps s.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from grasp_env.lm.backbone import cache_root, verify_manifest, write_manifest
from grasp_env.lm.batches import EncodedSplit, answer_loss, collate, evaluate_loss
from grasp_env.lm.pruning import PruneState, lora_parameters
from grasp_env.seeding import as_tuple, restore_rng, rng_state, seed_everything

__all__ = [
    "MERGE_FORMS",
    "FitResult",
    "LoraTrainConfig",
    "PruneSpec",
    "attach_lora",
    "cached_adapter",
    "fit",
    "merge_lora_states",
]

MERGE_FORMS: tuple[str, ...] = ("reference", "sum")


@dataclass(frozen=True)
class LoraTrainConfig:
    """A LoRA adapter and how to train it (PEFT names for the adapter fields)."""

    r: int = 8
    """LoRA rank."""
    lora_alpha: float = 32
    """LoRA scaling numerator (scaling = lora_alpha / r)."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA input during training."""
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    """Backbone modules that get an adapter."""
    learning_rate: float = 2e-3
    """AdamW learning rate (constant)."""
    max_steps: int = 150
    """Optimizer steps at most."""
    batch_size: int = 1
    """Rows per optimizer step (the paper: 1 on the target data)."""
    eval_every: int = 25
    """Steps between dev evaluations (early stopping and best-checkpoint choice)."""
    patience: int = 3
    """Dev evaluations without improvement before stopping; 0 disables early stopping."""
    weight_decay: float = 0.0
    """AdamW weight decay."""

    def __post_init__(self) -> None:
        checks = {
            "r": self.r >= 1,
            "lora_alpha": self.lora_alpha > 0,
            "lora_dropout": 0.0 <= self.lora_dropout < 1.0,
            "learning_rate": self.learning_rate > 0,
            "max_steps": self.max_steps >= 1,
            "batch_size": self.batch_size >= 1,
            "eval_every": self.eval_every >= 1,
            "patience": self.patience >= 0,
            "target_modules": len(self.target_modules) > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(
                    f"LoraTrainConfig.{name}={getattr(self, name)!r} is invalid; fix: see the "
                    "field's docstring for its range"
                )


@dataclass(frozen=True)
class PruneSpec:
    """Pruning during a fine-tune: a fixed ratio, enforced after every optimizer step."""

    ratio: float
    """Fraction of LoRA entries kept at zero."""
    scope: str = "per_tensor"
    """'per_tensor' (reference) or 'global'."""
    importance: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    """Importance function (name -> scores); None means magnitude."""
    rebuild_every: int = 0
    """Rebuild the mask from fresh importance every this many steps; 0 keeps the first mask.
    The reference's input-aware allocator rebuilds every step (1)."""


@dataclass
class FitResult:
    """What a fine-tune leaves: the best LoRA state and its history."""

    state: dict[str, Any]
    best_dev_loss: float
    best_step: int
    steps: int
    train_losses: list[float] = field(default_factory=list)
    dev_losses: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False


def peft_config(cfg: LoraTrainConfig, r: int | None = None, lora_alpha: float | None = None) -> Any:
    """A PEFT LoraConfig for a causal LM from our config (rank and alpha overridable)."""
    from peft import LoraConfig

    return LoraConfig(
        r=r or cfg.r,
        lora_alpha=lora_alpha or cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def attach_lora(
    base: Any,
    cfg: LoraTrainConfig,
    seed: int,
    state: dict[str, Any] | None = None,
    r: int | None = None,
    lora_alpha: float | None = None,
) -> Any:
    """Wrap a *copy* of `base` in a fresh PEFT LoRA model (optionally loading `state`).

    The copy keeps `base` clean for the next adapter; at the tiny scale it costs milliseconds.
    Backbone weights are frozen by PEFT; only lora_A / lora_B train.
    """
    from peft import get_peft_model, set_peft_model_state_dict

    seed_everything(seed)
    model = get_peft_model(copy.deepcopy(base), peft_config(cfg, r, lora_alpha))
    if state is not None:
        result = set_peft_model_state_dict(model, state)
        missing = [k for k in getattr(result, "missing_keys", []) if "lora_" in k]
        if missing:
            raise ValueError(f"adapter state does not fit the model: missing {missing[:3]}")
    return model


def lora_state(model: Any) -> dict[str, Any]:
    """A detached CPU copy of the model's LoRA weights, keyed like PEFT's saved state."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().clone().cpu() for k, v in get_peft_model_state_dict(model).items()}


def fit(
    model: Any,
    train: EncodedSplit,
    dev: EncodedSplit,
    cfg: LoraTrainConfig,
    seed: int,
    pad_id: int,
    prune: PruneSpec | None = None,
    progress: bool = False,
    desc: str = "fine-tune",
    on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
    resume: dict[str, Any] | None = None,
) -> FitResult:
    """Fine-tune the LoRA weights of `model`, keeping the checkpoint with the best dev loss.

    With `prune`, a mask at `prune.ratio` is built before the first step and enforced after
    every optimizer step; when it is rebuilt (`rebuild_every`), importance is recomputed on the
    effective weights (stashed values for pruned entries), entries the new mask releases get
    their stashed values back and newly pruned ones their AdamW moments reset: the same
    `PruneState` the controller run commits with.

    `on_checkpoint` receives the full training state after every dev evaluation (tensors and
    plain data); passing such a state back as `resume` continues the run exactly where it was
    taken, so a killed run and an uninterrupted one end with the same weights.
    """
    import torch
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    seed_everything(seed)
    params = lora_parameters(model)
    optimizer = torch.optim.AdamW(
        params.values(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
    )
    state = PruneState(params) if prune is not None else None
    order_rng = random.Random(seed)
    order: list[int] = []
    first = 1
    if resume is None:
        if state is not None:
            state.commit(params, _build(state, params, prune))
        best_loss, best_step = evaluate_loss(model, dev, pad_id), 0
        best_state = lora_state(model)
        result = FitResult(best_state, best_loss, 0, 0, dev_losses=[(0, best_loss)])
        bad_evals = 0
    else:
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(resume["params"][name])
        optimizer.load_state_dict(resume["optimizer"])
        if state is not None:
            state.load_state_dict(resume["prune"])
        order = list(resume["order"])
        order_rng.setstate(as_tuple(resume["order_rng"]))
        restore_rng(resume["rng"])
        best_loss, best_step = resume["best_loss"], resume["best_step"]
        best_state, bad_evals = resume["best_state"], resume["bad_evals"]
        result = FitResult(
            best_state,
            best_loss,
            best_step,
            resume["step"],
            train_losses=list(resume["train_losses"]),
            dev_losses=[tuple(x) for x in resume["dev_losses"]],
        )
        first = resume["step"] + 1
        t0 -= resume["seconds"]
    model.train()
    bar = tqdm(range(first, cfg.max_steps + 1), desc=desc, disable=not progress, leave=False)
    for step in bar:
        if len(order) < cfg.batch_size:
            fresh = list(range(len(train)))
            order_rng.shuffle(fresh)
            order.extend(fresh)
        idx, order = order[: cfg.batch_size], order[cfg.batch_size :]
        batch = collate([train.encodings[i] for i in idx], pad_id)
        loss = answer_loss(model, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: training loss is {loss.item()} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        result.train_losses.append(loss.item())
        if state is not None:
            if prune.rebuild_every and step % prune.rebuild_every == 0:
                state.commit(params, _build(state, params, prune), optimizer)
            state.enforce(params)
        result.steps = step
        if step % cfg.eval_every == 0 or step == cfg.max_steps:
            dev_loss = evaluate_loss(model, dev, pad_id)
            result.dev_losses.append((step, dev_loss))
            bar.set_postfix(dev=f"{dev_loss:.3f}")
            stop = False
            if dev_loss < best_loss:
                best_loss, best_step, best_state, bad_evals = dev_loss, step, lora_state(model), 0
            else:
                bad_evals += 1
                stop = bool(cfg.patience and bad_evals >= cfg.patience)
            if on_checkpoint is not None and not stop and step < cfg.max_steps:
                on_checkpoint(
                    {
                        "params": {n: p.detach().clone() for n, p in params.items()},
                        "optimizer": optimizer.state_dict(),
                        "prune": None if state is None else state.state_dict(),
                        "order": list(order),
                        "order_rng": order_rng.getstate(),
                        "rng": rng_state(),
                        "step": step,
                        "best_loss": best_loss,
                        "best_step": best_step,
                        "best_state": best_state,
                        "bad_evals": bad_evals,
                        "train_losses": list(result.train_losses),
                        "dev_losses": [list(x) for x in result.dev_losses],
                        "seconds": time.perf_counter() - t0,
                    }
                )
            if stop:
                result.stopped_early = True
                break
    result.state, result.best_dev_loss, result.best_step = best_state, best_loss, best_step
    result.seconds = time.perf_counter() - t0
    return result


def _build(state: PruneState, params: dict[str, Any], prune: PruneSpec) -> dict[str, Any]:
    if prune.importance is None:
        return state.masks_at(params, prune.ratio, prune.scope)
    return state.masks_at(params, prune.ratio, prune.scope, prune.importance)


# ------------------------------------------------------------------------------ merge


def merge_lora_states(
    source: dict[str, Any], target: dict[str, Any], form: str, r: int, lora_alpha: float
) -> tuple[dict[str, Any], int, float]:
    """Merge two LoRA states of the same shape into one adapter state.

    Returns:
        (state, rank, lora_alpha) of the merged adapter, ready for `attach_lora`.
    """
    import torch

    if form not in MERGE_FORMS:
        raise ValueError(f"merge form={form!r} is unknown; fix: use one of {MERGE_FORMS}")
    if source.keys() != target.keys():
        raise ValueError(
            "source and target adapters cover different modules; fix: train both "
            "with the same target_modules"
        )
    merged = {}
    for key, a in source.items():
        b = target[key]
        if form == "reference":
            merged[key] = a + b
        elif "lora_A" in key:
            merged[key] = torch.cat([a, b], dim=0)
        else:
            merged[key] = torch.cat([a, b], dim=1)
    if form == "reference":
        return merged, r, float(r)
    return merged, 2 * r, 2 * lora_alpha


# ------------------------------------------------------------------------------ cache


def adapter_key(parts: dict[str, Any]) -> str:
    """Content key of an adapter: everything that determines its weights."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached_adapter(
    key_parts: dict[str, Any], train_fn: Callable[[], tuple[Any, dict[str, Any]]], log: Any = print
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(LoRA state, info) from the cache, or from `train_fn` (then saved in PEFT format).

    `train_fn` returns (peft_model_with_best_state, info). The entry is written to a temporary
    directory, hashed (MANIFEST.json) and renamed into place; a corrupted entry is rebuilt.
    """
    from safetensors.torch import load_file

    key = adapter_key(key_parts)
    path = cache_root() / "adapters" / f"{key_parts.get('name', 'adapter')}-{key}"
    if path.exists():
        problem = verify_manifest(path)
        if problem is None:
            info = json.loads((path / "train_info.json").read_text())
            return load_file(path / "adapter_model.safetensors"), info
        log(f"cached adapter {path} is corrupted ({problem}); retraining it")
        shutil.rmtree(path)
    model, info = train_fn()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        model.save_pretrained(tmp)
        (tmp / "train_info.json").write_text(json.dumps({**info, "key": key_parts}, default=str))
        write_manifest(tmp)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_file(path / "adapter_model.safetensors"), info


def config_dict(cfg: LoraTrainConfig) -> dict[str, Any]:
    """JSON-ready view of a LoraTrainConfig (for cache keys and run configs)."""
    return asdict(cfg)
