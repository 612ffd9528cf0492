"""A synthetic stand-in for the LM process, with a known optimal ratio.

For controller analysis (`scripts/pstar_simulation.py`) and agent unit tests only: never the
demo or a benchmark. The micro-dev loss at ratio rho after s optimizer steps is

    L(rho, s) = 1 + 0.5 * exp(-s / 50) + curvature * (rho - optimum)^2 + N(0, noise^2)

so training progress moves every loss down together (what round fixed effects absorb) and the
noise of one probe is as large as the loss differences near the optimum (PAPER.md).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["SyntheticProcess"]


class SyntheticProcess:
    """Same five methods as `grasp_env.process.LoraProcess`, on a closed-form loss."""

    def __init__(self, optimum: float, curvature: float = 0.5, noise: float = 0.01) -> None:
        """Loss valley at `optimum`; Gaussian probe noise of std `noise`."""
        if not 0.0 <= optimum <= 1.0:
            raise ValueError(f"optimum={optimum} is outside [0, 1]")
        self.optimum, self.curvature, self.noise = optimum, curvature, noise
        self.steps_done = 0
        self.committed = 0.0
        self._rng = np.random.default_rng(0)

    def reset(self, seed: int) -> None:
        """Fresh run: no steps, no commitment, noise drawn from `seed`."""
        self.steps_done, self.committed = 0, 0.0
        self._rng = np.random.default_rng(seed)

    def _loss(self, ratio: float) -> float:
        trend = 1.0 + 0.5 * math.exp(-self.steps_done / 50)
        return (
            trend + self.curvature * (ratio - self.optimum) ** 2 + self._rng.normal(0, self.noise)
        )

    def baseline_loss(self) -> float:
        """Loss at the committed ratio."""
        return self._loss(self.committed)

    def probe(self, ratio: float) -> float:
        """Loss at a candidate ratio."""
        return self._loss(ratio)

    def commit(self, ratio: float) -> float:
        """Commit `ratio`; returns it as the achieved sparsity."""
        self.committed = ratio
        return ratio

    def sparsity(self) -> float:
        """The committed ratio."""
        return self.committed

    def train(self, k: int) -> list[float]:
        """Advance `k` steps; returns the losses at the committed ratio."""
        out = []
        for _ in range(k):
            self.steps_done += 1
            out.append(self._loss(self.committed))
        return out
