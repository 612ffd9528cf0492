"""Estimating the learned ratio p* from every probe of a controller run.

The reference takes the candidate with the largest single reward over the run. One probe is as
noisy as the loss differences near the optimum (PAPER.md), and early rounds, when the committed
ratio is still far away, produce the largest rewards, so that rule picks ratios far from the
optimum (`scripts/pstar_study.py`, docs/BENCHMARKS.md).

Every probe is data: within a round, the baseline loss L0 (at the ratio of the mask in force)
and the C candidate losses share the same training state. Both estimators below fit
L = c_round + f(ratio) by least squares over all of them, the round fixed effects c_round
absorbing the training progress, and return the minimiser of f:

- `fit_spline` (rule 'spline', the default): f a cubic B-spline with a third-difference
  roughness penalty chosen by generalised cross-validation. The penalty leaves quadratics
  nearly free (exactly so with evenly spaced coefficients; the clamped knots at 0 and 1 add a
  small penalty near the ends: a fit to an exact parabola moves by at most 2e-4 at the
  heaviest smoothing), so heavy smoothing approaches the quadratic fit and light smoothing
  follows flat regions, cliffs and asymmetric valleys that a quadratic cannot. The minimiser
  is searched only where the run probed densely (at least 4 probes within +-0.05), so a
  sparsely probed edge cannot produce a spurious minimum.
- `fit_quadratic` (rule 'quadratic'): f a quadratic; unbiased only when the curve is one.

Written by hand on numpy: no maintained package fits a penalised spline with unpenalised group
fixed effects cheaply enough to run after every round (statsmodels' GLMGam can, with scipy,
pandas and patsy and an optimiser per fit); the whole fit is a few small linear solves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PstarFit", "Probes", "bspline_basis", "fit_quadratic", "fit_spline", "probes_of"]

_KNOTS = np.linspace(0.0, 1.0, 15)
"""Knots of the B-spline basis over the whole ratio range (spacing 1/14)."""
_LAMBDAS = np.logspace(-6, 4, 31)
"""Penalty weights GCV chooses from."""
_GCV_GAMMA = 1.4
"""GCV's effective-degrees-of-freedom inflation: plain GCV (1.0) undersmooths with a few dozen
noisy points; 1.4 is the usual correction (Kim & Gu 2004) and lowered the study's worst-cell
regret (docs/BENCHMARKS.md)."""
_SUPPORT_WIDTH, _SUPPORT_COUNT = 0.05, 4
"""The minimiser is searched only where at least 4 probes lie within +-0.05."""


@dataclass(frozen=True)
class Probes:
    """Every measurement of a run: round index, ratio and micro-dev loss per probe."""

    rounds: np.ndarray
    ratios: np.ndarray
    losses: np.ndarray

    def __len__(self) -> int:
        return len(self.losses)

    @property
    def distinct(self) -> int:
        """Distinct ratios measured."""
        return len(np.unique(np.round(self.ratios, 9)))


def probes_of(
    rounds: Sequence[tuple[float, float, Sequence[float], Sequence[float]]],
) -> Probes:
    """Flatten per-round (baseline ratio, L0, candidate ratios, candidate losses); skip NaN/inf."""
    rows: list[tuple[int, float, float]] = []
    for t, (p, l0, ratios, losses) in enumerate(rounds):
        for rho, loss in [(p, l0), *zip(ratios, losses, strict=True)]:
            if np.isfinite(loss):
                rows.append((t, float(rho), float(loss)))
    data = np.array(rows, dtype=float).reshape(-1, 3)
    return Probes(data[:, 0].astype(int), data[:, 1], data[:, 2])


@dataclass(frozen=True)
class PstarFit:
    """The fitted curve and the ratio it picks."""

    ratio: float
    """The minimiser of the fitted f over the searched interval."""
    grid: np.ndarray
    """Ratios where f was evaluated (the searched interval)."""
    curve: np.ndarray
    """f on `grid` (up to a constant)."""
    n_points: int
    """Losses used (baselines + candidates)."""
    penalty: float = 0.0
    """The smoothing weight GCV chose (spline) or 0 (quadratic)."""


def _round_dummies(rounds: np.ndarray, drop_first: bool) -> np.ndarray:
    _, index = np.unique(rounds, return_inverse=True)
    dummies = np.zeros((len(rounds), index.max() + 1))
    dummies[np.arange(len(rounds)), index] = 1.0
    return dummies[:, 1:] if drop_first else dummies


def fit_quadratic(
    probes: Probes, p_min: float, p_max: float, extrapolate: bool = False
) -> PstarFit | None:
    """L = c_round + b*rho + a*rho^2; None with fewer than 3 distinct ratios.

    The minimiser is searched over the range of ratios probed, within [p_min, p_max]
    (`extrapolate`: over all of [p_min, p_max]).
    """
    if probes.distinct < 3:
        return None
    x = probes.ratios
    design = np.column_stack([_round_dummies(probes.rounds, False), x, x**2])
    coef, *_ = np.linalg.lstsq(design, probes.losses, rcond=None)
    b, a = float(coef[-2]), float(coef[-1])
    lo, hi = (p_min, p_max) if extrapolate else _probed(x, p_min, p_max)
    grid = np.linspace(lo, hi, 701)
    if a > 0:
        grid = np.sort(np.append(grid, np.clip(-b / (2 * a), lo, hi)))
    curve = b * grid + a * grid**2
    return PstarFit(float(grid[np.argmin(curve)]), grid, curve, len(probes))


def _probed(x: np.ndarray, p_min: float, p_max: float) -> tuple[float, float]:
    lo, hi = max(p_min, float(x.min())), min(p_max, float(x.max()))
    return (lo, hi) if lo < hi else (p_min, p_max)


def bspline_basis(x: np.ndarray, knots: np.ndarray = _KNOTS, degree: int = 3) -> np.ndarray:
    """Cubic B-spline basis at `x` (Cox-de Boor recursion; clamped knots)."""
    t = np.concatenate([[knots[0]] * degree, knots, [knots[-1]] * degree])
    x = np.clip(np.asarray(x, dtype=float), knots[0], knots[-1] - 1e-12)
    basis = ((t[:-1] <= x[:, None]) & (x[:, None] < t[1:])).astype(float)
    for k in range(1, degree + 1):
        left_den, right_den = t[k:-1] - t[: -k - 1], t[k + 1 :] - t[1:-k]
        left = (x[:, None] - t[: -k - 1]) / np.where(left_den > 0, left_den, 1.0)
        right = (t[k + 1 :] - x[:, None]) / np.where(right_den > 0, right_den, 1.0)
        left, right = left * (left_den > 0), right * (right_den > 0)
        basis = left * basis[:, :-1] + right * basis[:, 1:]
    return basis


def fit_spline(probes: Probes, p_min: float, p_max: float) -> PstarFit | None:
    """Penalised cubic spline + round fixed effects, GCV-chosen penalty; None if too few ratios.

    The spline carries the level (the first round's dummy is dropped); the third-difference
    penalty leaves quadratics (nearly) unpenalised. The minimiser is searched over [p_min, p_max]
    where the run probed densely (see the module docstring).
    """
    if probes.distinct < 4:
        return fit_quadratic(probes, p_min, p_max)
    basis = bspline_basis(probes.ratios)
    n_basis = basis.shape[1]
    design = np.column_stack([basis, _round_dummies(probes.rounds, True)])
    diff = np.diff(np.eye(n_basis), 3, axis=0)
    penalty = np.zeros((design.shape[1],) * 2)
    penalty[:n_basis, :n_basis] = diff.T @ diff
    gram, moment = design.T @ design, design.T @ probes.losses
    ridge = 1e-9 * np.eye(len(penalty))  # numerical safety only (the level is identified)
    n, best = len(probes), None
    for lam in _LAMBDAS:
        system = gram + lam * penalty + ridge
        coef = np.linalg.solve(system, moment)
        edf = float(np.trace(np.linalg.solve(system, gram)))
        rss = float(np.sum((probes.losses - design @ coef) ** 2))
        score = n * rss / max(n - _GCV_GAMMA * edf, 1e-3) ** 2
        if best is None or score < best[0]:
            best = (score, coef, float(lam))
    _, coef, lam = best
    lo, hi = _probed(probes.ratios, p_min, p_max)
    grid = np.linspace(lo, hi, 401)
    curve = bspline_basis(grid) @ coef[:n_basis]
    support = np.abs(probes.ratios[None, :] - grid[:, None]) <= _SUPPORT_WIDTH
    dense = support.sum(axis=1) >= _SUPPORT_COUNT
    searched = np.where(dense, curve, np.inf) if dense.any() else curve
    return PstarFit(float(grid[np.argmin(searched)]), grid, curve, n, lam)
