"""Masks over the merged LoRA tensors: build at a ratio, apply, enforce, reset optimizer state.

Only adapter tensors (PEFT's `lora_A` / `lora_B` weights) are ever masked; the backbone is
untouched. Two scopes:

- ``per_tensor`` (reference): in every LoRA tensor of n entries, zero the floor(ratio * n)
  entries of smallest importance; one ratio shared by every A and B tensor.
- ``global``: one threshold across all LoRA tensors; exactly floor(ratio * N) entries of the
  N in all tensors together are zeroed.

Ties are broken by position (a stable sort), so the zeroed count is exact whatever the values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = [
    "SCOPES",
    "PruneState",
    "apply_masks",
    "build_masks",
    "input_aware_importance",
    "input_norms",
    "lora_parameters",
    "magnitude_importance",
    "reset_optimizer_state",
    "sparsity",
]

SCOPES: tuple[str, ...] = ("per_tensor", "global")


def lora_parameters(model: Any) -> dict[str, Any]:
    """Name -> parameter of every LoRA A/B weight of the model's active adapter (sorted).

    Other adapters on the same backbone (see `grasp_env.lm.host.AdapterHost`) are left out.
    """
    suffix = f".{model.active_adapter}.weight"
    return {
        name: p
        for name, p in sorted(model.named_parameters())
        if (".lora_A." in name or ".lora_B." in name) and name.endswith(suffix)
    }


def magnitude_importance(params: dict[str, Any]) -> dict[str, Any]:
    """|w| per entry: the reference's probing importance, recomputed at every mask build."""
    return {name: p.detach().abs() for name, p in params.items()}


def _lowest_k_mask(scores: Any, k: int) -> Any:
    """Boolean keep-mask with exactly the k lowest scores dropped (ties: lowest index first)."""
    import torch

    flat = scores.reshape(-1)
    keep = torch.ones_like(flat, dtype=torch.bool)
    if k > 0:
        order = torch.argsort(flat, stable=True)
        keep[order[:k]] = False
    return keep.view_as(scores)


def build_masks(
    params: dict[str, Any],
    ratio: float,
    scope: str = "per_tensor",
    importance: Callable[[dict[str, Any]], dict[str, Any]] = magnitude_importance,
) -> dict[str, Any]:
    """Keep-masks (bool tensors) that zero `ratio` of the entries of least importance.

    Args:
        params: Name -> LoRA tensor (see `lora_parameters`).
        ratio: Fraction to prune, in [0, 1].
        scope: "per_tensor" (reference) or "global".
        importance: Name -> score tensor; magnitude by default. Called on every build, so the
            importance is never stale (the reference computed it once: PAPER.md).
    """
    import math

    import torch

    if not 0.0 <= ratio <= 1.0 or math.isnan(ratio):
        raise ValueError(f"prune ratio={ratio!r} is outside [0, 1]; fix: pass a fraction")
    if scope not in SCOPES:
        raise ValueError(f"mask scope={scope!r} is unknown; fix: use one of {SCOPES}")
    scores = importance(params)
    if scope == "per_tensor":
        return {
            name: _lowest_k_mask(scores[name], math.floor(ratio * p.numel()))
            for name, p in params.items()
        }
    names = list(params)
    flat = torch.cat([scores[n].reshape(-1).float() for n in names])
    keep = _lowest_k_mask(flat, math.floor(ratio * flat.numel()))
    out, start = {}, 0
    for n in names:
        size = params[n].numel()
        out[n] = keep[start : start + size].view_as(params[n])
        start += size
    return out


def apply_masks(params: dict[str, Any], masks: dict[str, Any]) -> None:
    """Zero the pruned entries in place (no autograd history)."""
    import torch

    with torch.no_grad():
        for name, mask in masks.items():
            params[name].mul_(mask.to(params[name].dtype))


def reset_optimizer_state(
    optimizer: Any, params: dict[str, Any], new_pruned: dict[str, Any]
) -> None:
    """Zero AdamW's moment estimates of newly pruned entries.

    Without this, momentum built up before the commit would keep pushing the pruned weights
    away from zero between the optimizer step and the re-zeroing (PAPER.md, stage 3).

    Args:
        optimizer: A torch optimizer whose state holds per-parameter tensors.
        params: Name -> parameter.
        new_pruned: Name -> bool tensor, True where an entry has just been pruned.
    """
    import torch

    with torch.no_grad():
        for name, pruned in new_pruned.items():
            state = optimizer.state.get(params[name])
            if not state:
                continue
            for value in state.values():
                if torch.is_tensor(value) and value.shape == pruned.shape:
                    value.masked_fill_(pruned, 0.0)


class PruneState:
    """The committed mask and the stash of pruned values (PAPER.md, controller run).

    Pruning zeroes an entry in the live weights, but the value it had is kept in the stash, so
    that masks stay *absolute*: a candidate or a new commitment at a lower ratio revives
    entries with the values they had when they were pruned, instead of measuring or training a
    model whose released entries are stuck at zero. Importance is always computed on the
    *effective* weights (live values where kept, stashed values where pruned), so a pruned
    entry is ranked by what it was, not by its enforced zero.

    AdamW moments: entries pruned by a commit get their moments zeroed (momentum built before
    the commit would push them off zero between step and re-zeroing). Entries *released* by a
    commit keep the moments they accumulated while pruned (the reference does the same): those
    are the recent gradients at that position, and zeroing them would make the released entries
    take steps of up to ~6x the learning rate for tens of steps, because AdamW's bias
    correction uses the tensor's shared step count and would divide a fresh second moment by
    ~1 instead of by the (1 - beta2^t) it was built for. That shared step count is left alone
    here; the reference zeroes it for every tensor with a newly pruned entry, which cuts the
    effective learning rate of all its kept entries to 15-30% for hundreds of steps after each
    commit (a side effect, not a choice the paper describes: a deviation, docs/METHOD.md).

    Before the first commit nothing is pruned (`keep` is None): the reference trains the
    merged adapter unpruned until its first commitment.
    """

    def __init__(self, params: dict[str, Any]) -> None:
        """An empty state (nothing pruned) for the LoRA tensors `params`."""
        import torch

        self.keep: dict[str, Any] | None = None
        self.stash = {n: torch.zeros_like(p, requires_grad=False) for n, p in params.items()}

    def effective(self, params: dict[str, Any]) -> dict[str, Any]:
        """Detached weights with every pruned entry filled in from the stash."""
        import torch

        if self.keep is None:
            return {n: p.detach() for n, p in params.items()}
        return {n: torch.where(self.keep[n], p.detach(), self.stash[n]) for n, p in params.items()}

    def masks_at(
        self,
        params: dict[str, Any],
        ratio: float,
        scope: str = "per_tensor",
        importance: Callable[[dict[str, Any]], dict[str, Any]] = magnitude_importance,
    ) -> dict[str, Any]:
        """Keep-masks at `ratio` ranked on the effective weights (absolute, stash included)."""
        return build_masks(self.effective(params), ratio, scope, importance)

    def load_candidate(self, params: dict[str, Any], keep: dict[str, Any]) -> None:
        """Write the model masked by `keep` from the effective weights into `params`.

        The caller restores the live weights afterwards (a probe); nothing here is committed.
        """
        import torch

        effective = self.effective(params)
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(torch.where(keep[name], effective[name], torch.zeros_like(p)))

    def commit(self, params: dict[str, Any], keep: dict[str, Any], optimizer: Any = None) -> None:
        """Make `keep` the committed mask: stash and zero the newly pruned, revive the released.

        Newly pruned entries also get their AdamW moments zeroed (see the class docstring).
        """
        import torch

        old = self.keep or {n: torch.ones_like(k) for n, k in keep.items()}
        newly = {n: old[n] & ~keep[n] for n in keep}
        released = {n: ~old[n] & keep[n] for n in keep}
        with torch.no_grad():
            for name, p in params.items():
                self.stash[name][newly[name]] = p.detach()[newly[name]]
                p[released[name]] = self.stash[name][released[name]]
                self.stash[name][released[name]] = 0
                p[~keep[name]] = 0
        if optimizer is not None:
            reset_optimizer_state(optimizer, params, newly)
        self.keep = {n: k.clone() for n, k in keep.items()}

    def enforce(self, params: dict[str, Any]) -> None:
        """Re-zero the committed-pruned entries (after every optimizer step)."""
        if self.keep is not None:
            apply_masks(params, self.keep)

    def sparsity(self) -> float:
        """Fraction of entries the committed mask holds at zero (0 before any commit)."""
        if self.keep is None:
            return 0.0
        pruned = sum(int((~k).sum()) for k in self.keep.values())
        return pruned / sum(k.numel() for k in self.keep.values())

    def state_dict(self) -> dict[str, Any]:
        """Mask and stash as plain tensors (for round checkpoints)."""
        return {
            "keep": None if self.keep is None else {n: k.clone() for n, k in self.keep.items()},
            "stash": {n: s.clone() for n, s in self.stash.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict`'s mask and stash (onto the device of this state's tensors)."""
        device = {n: s.device for n, s in self.stash.items()}
        keep = state["keep"]
        self.keep = None if keep is None else {n: k.to(device[n]) for n, k in keep.items()}
        self.stash = {n: s.to(device[n]).clone() for n, s in state["stash"].items()}


def sparsity(params: dict[str, Any]) -> float:
    """Fraction of exactly-zero entries over all LoRA tensors together."""
    zeros = sum(int((p == 0).sum()) for p in params.values())
    total = sum(p.numel() for p in params.values())
    return zeros / max(total, 1)


def input_norms(model: Any, batches: list[dict[str, Any]]) -> dict[str, Any]:
    """Per LoRA module: the L2 norm of every input feature over all tokens of `batches`.

    Padding positions are excluded. Used by the input-aware importance below.
    """
    import torch
    from peft.tuners.lora import LoraLayer

    sums: dict[str, Any] = {}
    handles = []
    current_mask: dict[str, Any] = {}

    def hook(name: str):
        def fn(module, inputs):
            x = inputs[0].detach().float()
            mask = current_mask["m"].unsqueeze(-1).to(x.dtype)
            sq = (x.pow(2) * mask).sum(dim=(0, 1))
            sums[name] = sums.get(name, 0) + sq

        return fn

    for name, module in model.named_modules():
        if isinstance(module, LoraLayer):
            handles.append(module.register_forward_pre_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                current_mask["m"] = batch["attention_mask"]
                model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    finally:
        for h in handles:
            h.remove()
        if was_training:
            model.train()
    return {name: s.sqrt() for name, s in sums.items()}


def input_aware_importance(model: Any, batches: list[dict[str, Any]]) -> Callable:
    """The reference final-run allocator's importance (Adaptive LoRA Merge): |dS/dW|.

    S = sum_ij |(B A)_ij| * ||x_j||, with ||x_j|| the norm of input feature j over the train
    split (recomputed at every call: a forward pass over `batches`). Returns a function usable
    as `build_masks(..., importance=...)`.
    """
    import torch

    def importance(params: dict[str, Any]) -> dict[str, Any]:
        norms = input_norms(model, batches)
        scores: dict[str, Any] = {}
        for module_name, xnorm in norms.items():
            a_keys = [k for k in params if k.startswith(module_name + ".lora_A.")]
            b_keys = [k for k in params if k.startswith(module_name + ".lora_B.")]
            for a_key, b_key in zip(a_keys, b_keys, strict=True):
                a = params[a_key].detach().float().clone().requires_grad_(True)
                b = params[b_key].detach().float().clone().requires_grad_(True)
                s = ((b @ a).abs() * xnorm.unsqueeze(0)).sum()
                grad_a, grad_b = torch.autograd.grad(s, [a, b])
                scores[a_key], scores[b_key] = grad_a.abs(), grad_b.abs()
        missing = set(params) - set(scores)
        if missing:
            raise ValueError(f"no input statistics for {sorted(missing)[:2]}: not LoRA layers?")
        return scores

    return importance
