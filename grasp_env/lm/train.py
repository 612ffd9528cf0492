"""The one masked LoRA training step of the final run and the controller run.

`adapters.fit` (final runs, and the source and target adapters) and
`process.LoraProcess.train` (the controller run) both call `masked_step`. The environment has
to own every optimizer step of the controller run (a round is K steps, then probes), so
neither loop can be a library trainer's; both are this step: draw this process's rows of the
next global batch, forward, backward, average the gradients across processes
(`grasp_env.lm.dist`), AdamW step, re-zero the committed-pruned entries.
"""

from __future__ import annotations

import random
from typing import Any

from grasp_env.lm import dist
from grasp_env.lm.batches import EncodedSplit, answer_loss, collate

__all__ = ["DataOrder", "masked_step"]


class DataOrder:
    """An endless seeded shuffle of a split's rows, cut into global batches.

    Every process holds the same order and takes its own `batch_size` rows of each global
    batch of `processes x batch_size` rows, so one process alone walks the rows exactly as
    before data parallelism existed.
    """

    def __init__(self, n_rows: int, seed: int) -> None:
        """Rows 0..n_rows-1, shuffled by a Random(seed), reshuffled at every pass."""
        self.n_rows = n_rows
        self.rng = random.Random(seed)
        self.pending: list[int] = []

    def next(self, batch_size: int) -> list[int]:
        """This process's rows of the next global batch."""
        world, me = dist.process_count(), dist.rank()
        need = batch_size * world
        while len(self.pending) < need:
            fresh = list(range(self.n_rows))
            self.rng.shuffle(fresh)
            self.pending.extend(fresh)
        rows, self.pending = self.pending[:need], self.pending[need:]
        return rows[me * batch_size : (me + 1) * batch_size]

    def state_dict(self) -> dict[str, Any]:
        """Position and RNG state (for checkpoints)."""
        return {"order": list(self.pending), "order_rng": self.rng.getstate()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict`."""
        from grasp_env.seeding import as_tuple

        self.pending = list(state["order"])
        self.rng.setstate(as_tuple(state["order_rng"]))


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
