"""Merging a source and a target LoRA into one adapter: the paper's form and PEFT's sum.

Both forms are expressed as one ordinary PEFT LoRA adapter, so the merged model saves, loads and
prunes like any other:

- ``reference`` (the paper): delta_W = (B_src + B_tgt)(A_src + A_tgt), no alpha/r scaling.
  Rank r with lora_alpha = r, so PEFT's scaling alpha/r is 1. Cross terms included.
- ``sum``: delta_W = s * (B_src A_src + B_tgt A_tgt), s = alpha/r (PEFT's multi-adapter
  semantics). Rank 2r: A stacks [A_src; A_tgt], B concatenates [B_src, B_tgt], lora_alpha = 2
  alpha keeps s.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MERGE_FORMS", "merge_lora_states"]

MERGE_FORMS: tuple[str, ...] = ("reference", "sum")


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
