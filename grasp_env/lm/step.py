"""One masked LoRA optimizer step, for the loop the environment drives: the controller run.

Every other fine-tune trains on transformers' Trainer (`grasp_env.lm.trainer`). The controller
run cannot: the environment owns its optimizer steps (a round is K steps, then probes and a
commit, then K more), so `process.LoraProcess.train` calls this step K times per round. It does
what the Trainer and its `PruneCallback` do for a final run: forward on this process's rows of the
global batch (the run's `RowStream`), the paper's loss, backward, gradients averaged across
processes in one collective (`grasp_env.lm.dist.average_gradients`), AdamW step, committed-pruned
entries re-zeroed.
"""

from __future__ import annotations

from typing import Any

from grasp_env.lm import dist
from grasp_env.lm.batches import EncodedSplit, answer_loss, collate

__all__ = ["masked_step"]


def masked_step(
    model: Any,
    params: dict[str, Any],
    optimizer: Any,
    split: EncodedSplit,
    rows: list[int],
    pad_id: int,
    device: Any,
    prune: Any = None,
) -> float:
    """One optimizer step on `rows` of `split`; returns the loss (the mean over processes).

    A non-finite loss is returned without a step (the caller stops or raises), on every
    process alike since the loss is averaged first. With `prune` (a `PruneState`) the
    committed-pruned entries are re-zeroed after the step.
    """
    import torch

    batch = collate([split.encodings[i] for i in rows], pad_id, device)
    loss = answer_loss(model, batch)
    value = dist.mean(float(loss.item()), device)
    if not torch.isfinite(torch.tensor(value)):
        return value
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    dist.average_gradients(params)
    optimizer.step()
    if prune is not None:
        prune.enforce(params)
    return value
