"""The order in which training rows are drawn: one endless seeded stream per run.

Both training loops read the same stream: the Trainer-driven fine-tunes (source and target
adapters, final runs, grid points) through `RowSampler`, and the controller run, whose steps the
environment drives one round at a time, through `RowStream.take`. Pass p of the stream is a
permutation of the rows drawn from (seed, p), so the row at any position is known without
replaying the ones before it. That makes three things exact:

- a Trainer resumed from a checkpoint re-creates the same epochs (its sampler is asked again
  for epoch e and skips the batches already trained);
- a run with several processes: every process holds the same stream and takes its own rows of
  each global batch (`processes x batch_size` consecutive positions);
- the single-pass protocol: the final run continues the controller run's stream at the position
  where the controller run stopped (`RowSampler(start=...)`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["RowSampler", "RowStream"]


class RowStream:
    """Rows 0..n-1 in passes, each pass a permutation seeded by (seed, pass index)."""

    def __init__(self, n_rows: int, seed: int, position: int = 0) -> None:
        """A stream over `n_rows` rows, read from `position` on."""
        if n_rows < 1:
            raise ValueError(f"n_rows={n_rows}; fix: a split needs at least one row to train on")
        self.n_rows = n_rows
        self.seed = int(seed)
        self.position = int(position)
        self._perm: tuple[int, np.ndarray] | None = None

    def row(self, index: int) -> int:
        """The row at stream position `index`."""
        lap, offset = divmod(index, self.n_rows)
        if self._perm is None or self._perm[0] != lap:
            rng = np.random.default_rng([self.seed, lap])
            self._perm = (lap, rng.permutation(self.n_rows))
        return int(self._perm[1][offset])

    def take(self, batch_size: int) -> list[int]:
        """This process's rows of the next global batch; the position moves past all of it.

        A global batch is `processes x batch_size` consecutive positions, of which process r
        takes the r-th `batch_size` (the same split accelerate gives a Trainer's batches).
        """
        from grasp_env.lm import dist

        world, me = dist.process_count(), dist.rank()
        first = self.position + me * batch_size
        rows = [self.row(i) for i in range(first, first + batch_size)]
        self.position += world * batch_size
        return rows

    def state_dict(self) -> dict[str, Any]:
        """The stream's seed and position (its size is the split's)."""
        return {"stream_seed": self.seed, "stream_position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict`: the same stream, at the same position."""
        self.seed, self.position, self._perm = (
            int(state["stream_seed"]),
            int(state["stream_position"]),
            None,
        )


class RowSampler:
    """A `torch.utils.data.Sampler` over a `RowStream`, in epochs of n rows for the Trainer.

    Epoch e yields stream positions [start + e * n, start + (e + 1) * n): the Trainer's epoch
    and step arithmetic (and its skipping of trained batches on resume) holds as for any
    sampler of length n, while the rows continue one stream. `set_epoch` is called by the
    Trainer (and by accelerate) at the start of every epoch.
    """

    def __init__(self, n_rows: int, seed: int, start: int = 0) -> None:
        """Epochs of `n_rows` rows of the stream (seed), starting at position `start`."""
        self.stream = RowStream(n_rows, seed)
        self.start = int(start)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch the next iteration yields."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.stream.n_rows

    def __iter__(self) -> Iterator[int]:
        first = self.start + self.epoch * self.stream.n_rows
        for index in range(first, first + self.stream.n_rows):
            yield self.stream.row(index)
