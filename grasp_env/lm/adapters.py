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

import contextlib
import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from grasp_env.atomic import atomic_dir, remove_litter
from grasp_env.lm import dist
from grasp_env.lm.backbone import cache_lock, cache_root, verify_manifest, write_manifest
from grasp_env.lm.batches import EncodedSplit, evaluate_loss, model_device
from grasp_env.lm.pruning import PruneState, lora_parameters
from grasp_env.lm.train import DataOrder, masked_step
from grasp_env.seeding import restore_rng, rng_state, seed_everything

__all__ = [
    "MERGE_FORMS",
    "FitResult",
    "LoraTrainConfig",
    "PruneSpec",
    "AdapterHost",
    "adapter_stats",
    "attach_lora",
    "export_merged",
    "cached_adapter",
    "host_of",
    "save_adapter",
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


class AdapterHost:
    """One backbone in memory, any number of named LoRA adapters on it (PEFT's adapter API).

    The source, target, merged and final adapters, and every controller process, are adapters
    of one `PeftModel` wrapped around the single backbone: `fresh` adds (or re-creates) one,
    `activate` switches to it, `drop` deletes it. No backbone is ever copied (a copy of
    Llama-3-8B is 16-32 GB). One model, one active adapter at a time: whoever computes activates
    its adapter first (`LoraProcess` does before every step and probe).
    """

    def __init__(self, base: Any) -> None:
        """Host adapters on `base` (wrapped by PEFT at the first `fresh`)."""
        self.base = base
        self.model: Any = None

    def names(self) -> list[str]:
        """Adapters present."""
        return [] if self.model is None else list(self.model.peft_config)

    def unique(self, prefix: str) -> str:
        """An adapter name starting with `prefix` that is not in use."""
        names, n, name = set(self.names()), 1, prefix
        while name in names:
            name, n = f"{prefix}_{n}", n + 1
        return name

    def fresh(
        self,
        name: str,
        cfg: LoraTrainConfig,
        seed: int,
        state: dict[str, Any] | None = None,
        r: int | None = None,
        lora_alpha: float | None = None,
    ) -> Any:
        """A newly initialised adapter `name`, made active; returns the shared model.

        An adapter of that name is replaced; `state` (keys as `lora_state` writes them) is
        loaded when given. Adapter names must be valid module keys ('training' is not).
        """
        from peft import get_peft_model, set_peft_model_state_dict

        seed_everything(seed)
        config = peft_config(cfg, r, lora_alpha)
        if self.model is None:
            self.model = get_peft_model(self.base, config, adapter_name=name)
        else:
            if name in self.model.peft_config:
                self.drop(name)
            self.model.add_adapter(name, config)
        self.model.set_adapter(name)  # active and trainable (a new adapter is neither)
        if state is not None:
            result = set_peft_model_state_dict(self.model, state, adapter_name=name)
            missing = [k for k in getattr(result, "missing_keys", []) if f".{name}." in k]
            if missing:
                raise ValueError(f"adapter state does not fit the model: missing {missing[:3]}")
        return self.model

    def activate(self, name: str) -> Any:
        """Make `name` the one active (and trainable) adapter; returns the shared model."""
        if self.model.active_adapter != name:
            self.model.set_adapter(name)
        return self.model

    def drop(self, name: str) -> None:
        """Delete adapter `name` (its memory is freed)."""
        if name not in self.names():
            return
        if self.model.active_adapter == name:
            others = [n for n in self.names() if n != name]
            if others:
                self.model.set_adapter(others[0])
        self.model.delete_adapter(name)


def host_of(base: Any) -> AdapterHost:
    """The adapter host of a backbone (made at the first call; one per backbone object)."""
    host = base.__dict__.get("_grasp_adapter_host")
    if host is None:
        host = AdapterHost(base)
        base.__dict__["_grasp_adapter_host"] = host
    return host


def attach_lora(
    base: Any,
    cfg: LoraTrainConfig,
    seed: int,
    state: dict[str, Any] | None = None,
    r: int | None = None,
    lora_alpha: float | None = None,
    name: str = "default",
) -> Any:
    """A fresh LoRA adapter `name` on `base` (optionally loaded with `state`), made active.

    The backbone is not copied: every adapter lives on the one model of `host_of(base)`.
    Backbone weights are frozen by PEFT; only the active adapter's lora_A / lora_B train.
    """
    return host_of(base).fresh(name, cfg, seed, state, r, lora_alpha)


def lora_state(model: Any) -> dict[str, Any]:
    """A detached CPU copy of the active adapter's LoRA weights, keyed like PEFT's saved state.

    On a sharded backbone (`--strategy fsdp`) the state is read from the adapter's own
    parameters (whole on every process): PEFT's `get_peft_model_state_dict` would gather the
    entire backbone's state dict, a collective the main process cannot run alone and an
    all-gather of every weight (16 GB for Llama-3-8B) to save a few MB.
    """
    if dist.is_sharded(model):
        return lora_state_from_parameters(model)
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(model, adapter_name=model.active_adapter)
    return {k: v.detach().clone().cpu() for k, v in state.items()}


def lora_state_from_parameters(model: Any) -> dict[str, Any]:
    """`lora_state` built from the active adapter's lora_A / lora_B parameters (no state dict)."""
    suffix = f".{model.active_adapter}.weight"
    return {
        name[: -len(suffix)] + ".weight": p.detach().clone().cpu()
        for name, p in lora_parameters(model).items()
    }


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
    device = model_device(model)
    optimizer = torch.optim.AdamW(
        params.values(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
    )
    state = PruneState(params) if prune is not None else None
    order = DataOrder(len(train), seed)
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
        order.load_state_dict(resume)
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
        rows = order.next(cfg.batch_size)
        loss = masked_step(model, params, optimizer, train, rows, pad_id, device, state)
        if not math.isfinite(loss):
            raise FloatingPointError(f"{desc}: training loss is {loss} at step {step}")
        result.train_losses.append(loss)
        if state is not None and prune.rebuild_every and step % prune.rebuild_every == 0:
            state.commit(params, _build(state, params, prune), optimizer)
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
                        **order.state_dict(),
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
    source: dict[str, Any],
    target: dict[str, Any],
    form: str,
    r: int,
    lora_alpha: float,
    target_r: int | None = None,
    target_alpha: float | None = None,
) -> tuple[dict[str, Any], int, float]:
    """Merge a source and a target LoRA state into one adapter state.

    `r`, `lora_alpha` are the source's; `target_r`, `target_alpha` the target's (default: the
    same). Forms:

    - 'reference': delta W = (B_s + B_t)(A_s + A_t), no scaling (alpha = rank). Adapters of
      different rank are zero-padded to the larger rank first (the padded components are zero,
      so they add no cross terms of their own).
    - 'sum': s_s B_s A_s + s_t B_t A_t (s = alpha / r), as one adapter of rank r_s + r_t with
      A = [A_s; A_t] and B = [B_s, B_t]. With different scalings the target's B is multiplied
      by s_t / s_s and the merged adapter keeps the source's scaling, so the forward is exact
      for any ranks and alphas (and unchanged when they are equal).

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
    target_r = target_r or r
    target_alpha = target_alpha or lora_alpha
    merged = {}
    if form == "reference":
        rank = max(r, target_r)
        for key, a in source.items():
            merged[key] = _pad_rank(a, key, rank) + _pad_rank(target[key], key, rank)
        return merged, rank, float(rank)
    ratio = (target_alpha / target_r) / (lora_alpha / r)
    for key, a in source.items():
        b = target[key]
        if "lora_A" in key:
            merged[key] = torch.cat([a, b], dim=0)
        else:
            merged[key] = torch.cat([a, b * ratio if ratio != 1 else b], dim=1)
    rank = r + target_r
    return merged, rank, lora_alpha * rank / r


def _pad_rank(tensor: Any, key: str, rank: int) -> Any:
    """Zero-pad a LoRA A (rank x in) or B (out x rank) tensor to `rank`."""
    import torch.nn.functional as F

    missing = rank - (tensor.shape[0] if "lora_A" in key else tensor.shape[1])
    if missing == 0:
        return tensor
    return F.pad(tensor, (0, 0, 0, missing) if "lora_A" in key else (0, missing))


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
    directory, hashed (MANIFEST.json) and swapped into place (`atomic_dir`): a kill or a full
    disk while it is written leaves no entry (or the previous one), never a partial one that
    a later run would load; a corrupted entry is rebuilt.
    """
    from safetensors.torch import load_file

    key = adapter_key(key_parts)
    path = cache_root() / "adapters" / f"{key_parts.get('name', 'adapter')}-{key}"
    # Another run may be training the same entry: the main process takes the entry's lock
    # (`cache_lock`) and decides for all processes of this run (they train together or load).
    lock = cache_lock(path) if dist.is_main() else contextlib.nullcontext()
    with lock:
        problem = None
        if dist.is_main():
            problem = verify_manifest(path) if path.exists() else "absent"
        problem = dist.broadcast_object(problem)
        if problem is None:
            info = json.loads((path / "train_info.json").read_text())
            return load_file(path / "adapter_model.safetensors"), info
        if problem != "absent" and dist.is_main():
            log(f"cached adapter {path} is corrupted ({problem}); retraining it")
        model, info = train_fn()  # every process trains (data parallel); the main one writes
        logs = info.pop("tensorboard_dir", None)
        if dist.is_main():
            remove_litter(path.parent, path.name)  # of killed writers (the lock is ours)
            with atomic_dir(path) as tmp:
                _write_adapter_files(model, tmp)
                if logs is not None and Path(logs).is_dir():
                    shutil.move(logs, tmp / "tensorboard")  # the adapter's training curves
                built = {**info, "key": key_parts, "built_with": build_environment()}
                info_json = json.dumps(built, default=str)
                (tmp / "train_info.json").write_text(info_json)
                write_manifest(tmp)
        if logs is not None:  # moved into the entry, or this process's own copy: not kept
            shutil.rmtree(logs, ignore_errors=True)
        dist.wait_for_everyone()
    return load_file(path / "adapter_model.safetensors"), info


def build_environment() -> dict[str, Any]:
    """What besides the key shaped a trained cache entry: torch threads and library versions.

    The key holds every setting, but the same settings trained in a process with another
    torch thread count give other weights (float sums in another order; docs/BENCHMARKS.md,
    "Reproducibility across installs"). Recorded so that an entry's origin can be traced.
    """
    from importlib.metadata import PackageNotFoundError, version

    import torch

    versions = {}
    for package in ("torch", "transformers", "peft", "trl", "accelerate"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {"torch_threads": torch.get_num_threads(), "processes": dist.process_count(), **versions}


def save_adapter(model: Any, directory: str | Path) -> None:
    """Write the active adapter in PEFT's format at the root of `directory`, atomically.

    `adapter_model.safetensors` + `adapter_config.json`, loadable with
    `PeftModel.from_pretrained(backbone, directory)` whatever the adapter's name on the host
    (PEFT's own `save_pretrained` puts adapters not named 'default' in a subfolder). The two
    files are written into a temporary sibling and swapped in together (`atomic_dir`): a
    kill or a full disk never leaves new weights beside an old config, or half a file.
    """
    with atomic_dir(directory) as tmp:
        _write_adapter_files(model, tmp)


def _write_adapter_files(model: Any, directory: Path) -> None:
    """The two files of `save_adapter`, written straight into an existing `directory`."""
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in lora_state(model).items()}
    save_file(state, directory / "adapter_model.safetensors", metadata={"format": "pt"})
    model.peft_config[model.active_adapter].save_pretrained(str(directory))


def adapter_stats(model: Any, directory: str | Path) -> dict[str, Any]:
    """What the saved pruned adapter holds: entries, non-zero entries, its size on disk.

    PEFT and safetensors store tensors densely: a pruned entry is a stored zero, so the file
    is as large as the unpruned adapter's (the pruning's value is in the model, not the bytes).
    """
    state = lora_state(model)
    entries = sum(v.numel() for v in state.values())
    nonzero = sum(int((v != 0).sum()) for v in state.values())
    size = sum(p.stat().st_size for p in Path(directory).iterdir() if p.is_file())
    return {
        "entries": entries,
        "nonzero": nonzero,
        "sparsity": 1.0 - nonzero / max(entries, 1),
        "bytes_on_disk": size,
        "zeros_stored_densely": True,
    }


def export_merged(model: Any, directory: str | Path, tokenizer: Any = None) -> None:
    """Save the backbone with the active adapter merged into its weights (safetensors).

    W' = W + delta_W for every LoRA module (PEFT's `get_delta_weight`, scaling included), in
    the backbone's dtype. The live model is not touched (no `merge_and_unload`): the merged
    weights are new tensors only for the adapted modules, the rest of the state dict is the
    backbone's own. The result loads with `AutoModelForCausalLM.from_pretrained(directory)`.

    Under `--strategy fsdp` every process must call it: the sharded weights are gathered on
    the main process's CPU (`dist.full_state_dict`), which alone merges and writes. The files
    go to a temporary sibling swapped in whole (`atomic_dir`): a kill mid-export (gigabytes)
    leaves the previous export or none, never one that loads with half its shards.
    """
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    adapter = model.active_adapter
    layers = {name: m for name, m in base.named_modules() if isinstance(m, LoraLayer)}
    whole = dist.full_state_dict(base)
    if not dist.is_main():
        return
    state = {}
    for key, value in whole.items():
        if ".lora_" in key:
            continue
        if ".base_layer." in key:
            module, _, leaf = key.rpartition(".base_layer.")
            if leaf == "weight" and module in layers:
                delta = layers[module].get_delta_weight(adapter).detach().to(value.device)
                value = (value.float() + delta.float()).to(value.dtype)
            key = f"{module}.{leaf}"
        state[key] = value
    with atomic_dir(directory) as tmp:  # a kill never leaves a half-exported model
        _write_merged(base, state, tmp, tokenizer)


def _write_merged(base: Any, state: dict[str, Any], directory: Path, tokenizer: Any) -> None:
    """`export_merged`'s files (weights, config, tokenizer) into an existing `directory`."""
    if dist.is_sharded(base):
        # save_pretrained of a sharded model gathers (and writes) the model's own unmerged
        # weights, so the gathered, merged state is written with huggingface_hub's writer
        # (safetensors files of at most 5 GB and their index, as save_pretrained writes them).
        from huggingface_hub import save_torch_state_dict

        if getattr(base.config, "tie_word_embeddings", False):
            state.pop("lm_head.weight", None)  # tied again when the model loads
        save_torch_state_dict(state, str(directory), max_shard_size="5GB")
        base.config.save_pretrained(str(directory))
        if getattr(base, "generation_config", None) is not None:
            base.generation_config.save_pretrained(str(directory))
    else:
        base.save_pretrained(str(directory), state_dict=state, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(directory))


def config_dict(cfg: LoraTrainConfig) -> dict[str, Any]:
    """JSON-ready view of a LoraTrainConfig (for cache keys and run configs)."""
    return asdict(cfg)
