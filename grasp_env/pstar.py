"""Estimating the learned ratio p* from every probe of a controller run.

The reference takes the candidate with the largest single reward over the run. One probe is as
noisy as the loss differences near the optimum (PAPER.md), and early rounds, when the committed
ratio is still far away, produce the largest rewards, so that rule picks ratios far from the
optimum (`scripts/pstar_study.py`, docs/BENCHMARKS.md).

Every probe is data: within a round, the baseline loss L0 (at the ratio of the mask in force)
and the C candidate losses share the same training state. Both estimators below fit
L = c_round + f(ratio) by least squares over all of them, the round fixed effects c_round
absorbing the training progress, and return the minimiser of f:

- `fit_spline` (rule 'spline', the default for every agent's final ratio until 2026-12-07's
  seventh session; the `paper` preset's): f a cubic
  B-spline with a third-difference roughness penalty chosen by generalised cross-validation.
  The penalty leaves quadratics nearly free (exactly so with evenly spaced coefficients; the
  clamped knots at 0 and 1 add a small penalty near the ends: a fit to an exact parabola moves
  by at most 2e-4 at the heaviest smoothing), so heavy smoothing approaches the quadratic fit
  and light smoothing follows flat regions, cliffs and asymmetric valleys that a quadratic
  cannot. The minimiser is searched only where the run probed densely (at least 4 probes
  within +-0.05), so a sparsely probed edge cannot produce a spurious minimum.
- `fit_quadratic` (rule 'quadratic'): f a quadratic; unbiased only when the curve is one.
- `fit_spline_cost` (rule 'spline_cost'): one curve over every round (the round-aware model
  without drift) plus the final run's capacity cost, a slope of `FINAL_COST` of the curve's
  range: the final run trains under the mask from its first step and pays for every pruned
  weight, which no probe of the controller run sees (docs/SURROGATE.md).
  With drift=True (rule 'spline_recent_cost', the default for every agent's final ratio)
  the curve is the last round's, as below: the decision when the final run meets the end
  curve plus that cost (docs/SURROGATE.md, "The final run's truth is the default").
- `fit_spline_recent` (rule 'spline_recent'; better than 'spline' on the surrogate's
  instances, worse on the live pairs' final runs, docs/results/controller_v2.md): the curve at
  the LAST round from
  `spline_posterior`, a round-aware version of the spline: a penalised drift term lets the
  curve change over the run (the real optimum moves while the adapter trains, and the final
  run sees the end curve), a per-round smooth random function models the round-to-round
  change of the curve's shape (the real process's dominant noise: its probes are
  deterministic within a round), and the penalties and variance ratios are chosen by REML.
  Its minimum is searched where at least 4 probes lie within one knot spacing (+-0.071), and
  p* is the centre of the stretch around it that lies within one posterior sd of the minimum
  (`CENTRE_SDS`).
  Its Gaussian posterior also drives the Thompson-sampling controller (`agents.bayes`).
  Measured on the stand-ins of `grasp_env.surrogate` (runners/agent_table.py,
  docs/results/controller_study.md).

Written by hand on numpy: no maintained package fits a penalised spline with unpenalised group
fixed effects cheaply enough to run after every round (statsmodels' GLMGam can, with scipy,
pandas and patsy and an optimiser per fit); the whole fit is a few small linear solves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.linalg import solve_triangular

__all__ = [
    "COST_RULES",
    "FINAL_COST",
    "PstarFit",
    "Probes",
    "SplinePosterior",
    "bspline_basis",
    "drift_profile",
    "plus_final_cost",
    "fit_quadratic",
    "fit_spline",
    "fit_spline_cost",
    "fit_spline_recent",
    "probes_of",
    "spline_posterior",
    "with_final_cost",
]

_KNOTS = np.linspace(0.0, 1.0, 15)
"""Knots of the B-spline basis over the whole ratio range (spacing 1/14)."""
_LAMBDAS = np.logspace(-6, 4, 31)
"""Penalty weights GCV chooses from."""
_GCV_GAMMA = 1.4
"""GCV's effective-degrees-of-freedom inflation: plain GCV (1.0) undersmooths with a few dozen
noisy points; 1.4 is the usual correction (Kim & Gu 2004) and lowered the study's worst-cell
regret (docs/BENCHMARKS.md)."""
_SUPPORT_WIDTH, SUPPORT_COUNT = 0.05, 4
"""`fit_spline`'s minimiser is searched only where at least 4 probes lie within +-0.05 (the
other rules: within `RECENT_SUPPORT_WIDTH`); the Thompson controller's low anchor counts to 4
too (`agents.bayes.ThompsonController._needs_anchor`)."""
RECENT_SUPPORT_WIDTH = float(_KNOTS[1] - _KNOTS[0])
"""`spline_posterior`'s p* is searched where at least 4 probes lie within one knot spacing
(+-1/14 = +-0.071), the spline's own resolution. Bracketing probes (`agents.bayes`) spread a
round's probes around the argmin, and at 6 rounds +-0.05 often left a minimum that the last
rounds bracketed outside the search region. Chosen on the default controller's train probes
and a study set of moving curves (30 seeds; +-0.06 and +-0.065 did as well; the former +-0.05 is
`support_width=0.05`) and then scored once on the test instances
(docs/results/controller_v2.md, "The search region after bracketing")."""


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
    dense = support.sum(axis=1) >= SUPPORT_COUNT
    searched = np.where(dense, curve, np.inf) if dense.any() else curve
    return PstarFit(float(grid[np.argmin(searched)]), grid, curve, n, lam)


# ---------------------------------------------------------------- the round-aware spline (REML)

REML_LAMBDA_FLOOR = 1e-5
"""The least smoothing REML may choose for the round-aware spline's curve. Why: below it the
spline all but interpolates, and where the probes cluster (p_min, and a region beyond a wall)
the stretches between clusters swing freely; with the cost rules the swings also inflate the
curve's range and so the cost, and p* lands behind the wall (test-final low_cliff[optimum=0.7],
6 rounds: REML chose 1.8e-7, the mean spanned 0.85 against a true range of 0.32 and p* went to
0.1, regret 69%). On `train-final`'s stored probes the floor changes no family's regret by
more than 0.03 points at 6 or 15 rounds; 1e-8 was the floor before 2026-12-08's tenth session
(docs/results/controller_v2.md, "A floor under the smoothing")."""
_REML_LAMBDAS = np.logspace(np.log10(REML_LAMBDA_FLOOR), 4, 37)
"""Smoothing weights of the curve that REML chooses from (all at once: see spline_posterior),
a quarter decade apart."""
DRIFT_LAMBDAS: tuple[float, ...] = (1e-2, 1.0, 1e2, 1e5)
"""Penalty weights of the drift term REML chooses from (1e5: practically no drift)."""
JITTER: tuple[float, ...] = (0.0, 1.0, 8.0, 64.0)
"""Variance ratios (round-to-round shape change / per-probe noise) REML chooses from; the
real process's probes are deterministic within a round, so the top of the range matters."""
WALK: tuple[float, ...] = (0.0,)
"""Variance ratios of a random-walk change of the shape over the run (off by default: on the
train instances it bought nothing over the drift term; docs/results/controller_study.md)."""
AGE_NOISE: tuple[float, ...] = (0.0,)
"""Extra independent variance per unit of age (off by default, as WALK)."""
DRIFT_RATES: tuple[float, ...] = (0.0, 1.5, 4.0)
"""Time profiles of the drift term REML chooses from, each a rate k: the curve has moved a share
(1 - exp(-k u)) / (1 - exp(-k)) of its whole move by run fraction u (k = 0: linear; k > 0: fast
early, slow late). See `drift_profile`. Why: the live probe curves move fast early (each
round's curve projected on the first-minus-last change fits rates 0.5-6 on 10 of the 12
recorded runs, median 1.5; scripts/drift_profile_check.py). Chosen on `train-final` (Thompson,
10 seeds, paired against the linear profile alone): mean regret 1.15 -> 1.07% at 15 rounds,
1.58 -> 1.51% at 6, the moving family 1.94 -> 1.01% at 6; scored once on `test-final` (30
seeds): 2.02 -> 1.73% at 15 rounds, 2.23 -> 2.27% at 6 (docs/results/controller_v2.md, "The
drift's time profile"). Before 2026-12-07's eighth session: (0.0,), linear only."""
DRIFT_ORDERS: tuple[int, ...] = (1,)
"""Powers of the drift weight s_k(u) REML chooses among: 1, the curve moves along one direction
h (the default); 2 adds s^2 h2, a change that bends over the run, as a shift of the optimum does
(f(x - m) = f - m f' + m^2 f''/2 - ...). Measured, not adopted: order 2 with the profile menu
follows a moving optimum closer (train-final moving 1.38 -> 0.90% at 15 rounds; test-final
2.15 -> 1.48%) but its Thompson probes once left p* beyond a cliff's edge at p_max (train
cliff 0.67 -> 3.32%) and it raised the `real` family at 6 rounds (test 12.04 -> 13.90%);
offering REML both orders, (1, 2), read train's probes no better than order 1 alone."""


def drift_profile(u: np.ndarray, rate: float) -> np.ndarray:
    """The drift term's weight at run fraction u in [0, 1]: -1 at the first round, 0 at the last.

    With rate k > 0 the curve covers a share (1 - exp(-k u)) / (1 - exp(-k)) of its move by u:
    a saturating move, most of it early. k = 0 is the linear profile u - 1.
    """
    u = np.asarray(u, float)
    if rate == 0:
        return u - 1.0
    return np.expm1(-rate * u) / np.expm1(-rate) - 1.0


PESSIMISM = 0.0
"""p* = argmin of (posterior mean + PESSIMISM * posterior sd of the curve's shape) where the
run probed densely. Measured on the train instances (docs/results/controller_study.md):
dropping the dense-probing condition for sd-pessimism alone helps uniformly random probes
(bounds and cliffs are reached) but is disastrous with GRPO's clustered probes (mean regret
1.4% -> 3.3% at 15 rounds: the fitted curve extrapolates low where nothing was probed), and
with the condition kept, pessimism changes nothing measurable; so 0."""
CENTRE_SDS = 1.0
"""p* is the centre of the stretch around the posterior mean's argmin (where probed densely)
whose mean lies within CENTRE_SDS posterior sds of the minimum (the curve's shape sd at the
argmin), each point weighted by how far below that threshold it lies (1 at the argmin, 0 at
the threshold). Why: near a flat minimum the mean's argmin is set by noise and by which side
the spline happened to bend; the middle of the stretch the data cannot tell from the minimum
moves less from seed to seed, and stays away from a steep side. 0 gives the plain argmin (the
rule before 2026-12-07, fifth session). Chosen on the default controller's train probes
(30 seeds: 0.5, 0.75, 1.0 and 1.5 sds; 1.0 lowered the mean regret most, by 0.025 points at 15
rounds and 0.055 at 6) and checked on the moving study set before the test set was scored
(docs/results/controller_v2.md, "The centre of the near-minimal stretch")."""
_JITTER_TERMS = 4


def shape_kernel(x: np.ndarray, terms: int = _JITTER_TERMS) -> np.ndarray:
    """Covariance of a smooth random change of the curve's shape between ratios x_i and x_j.

    sum_k cos(k pi (x_i - x_j)) / k^2 for k = 1..terms: a random Fourier series with 1/k decay,
    wiggles a few tenths of the ratio range wide (what the real process's round-to-round
    change looks like: docs/BENCHMARKS.md, "The real micro-dev curve").
    """
    k = np.arange(1, terms + 1)
    d = np.asarray(x, float)[:, None] - np.asarray(x, float)[None, :]
    return (np.cos(np.pi * k * d[..., None]) / k**2).sum(axis=-1)


@dataclass(frozen=True)
class SplinePosterior:
    """A fitted round-aware spline and the Gaussian posterior of its last-round curve."""

    grid: np.ndarray
    """Ratios over [p_min, p_max] where the curve is evaluated."""
    mean: np.ndarray
    """Posterior mean of the last round's curve on `grid` (up to a constant)."""
    factor: np.ndarray
    """F with mean + F @ z (z ~ N(0, I)) a draw of the curve on `grid`."""
    dense: np.ndarray
    """Grid points with at least 4 probes within the support width (one knot spacing by
    default), where p* is searched (as `fit_spline` does: a sparsely probed stretch cannot
    produce a spurious minimum)."""
    n_points: int
    """Losses used."""
    penalty: float
    """The curve's smoothing weight REML chose."""
    sigma: float
    """Per-probe noise standard deviation (REML estimate)."""
    hyper: dict
    """Every hyperparameter REML chose (penalty, drift_penalty, drift_rate, jitter, walk,
    age_noise)."""
    centre: float = CENTRE_SDS
    """Half-width, in posterior sds, of the near-minimal stretch whose centre `ratio` returns
    (`centred_ratio`; 0: the mean's argmin)."""

    @property
    def shape_sd(self) -> np.ndarray:
        """Posterior sd of the curve on `grid` relative to its mean over the grid (its shape)."""
        centred = self.factor - self.factor.mean(axis=0, keepdims=True)
        return np.sqrt((centred**2).sum(axis=1))

    @property
    def ratio(self) -> float:
        """p*: `centred_ratio(centre)`, the centre of the mean's near-minimal stretch."""
        return self.centred_ratio(self.centre)

    def centred_ratio(self, kappa: float) -> float:
        """The weighted centre of the contiguous stretch around the argmin within `kappa` sds.

        The argmin is `pessimistic_ratio(PESSIMISM)`'s (over the densely probed points, if
        any). The stretch is the contiguous run of searched grid points around it whose score
        lies within kappa x shape_sd (at the argmin) of the minimum; each point weighs
        1 - (its score - the minimum) / (kappa x shape_sd). kappa = 0 (or no posterior sd)
        returns the argmin itself.
        """
        score = self._searched_score(PESSIMISM)
        i0 = int(np.argmin(score))
        width = kappa * float(self.shape_sd[i0])
        if not width > 0:
            return float(self.grid[i0])
        near = score <= score[i0] + width
        lo, hi = i0, i0
        while lo > 0 and near[lo - 1]:
            lo -= 1
        while hi < len(score) - 1 and near[hi + 1]:
            hi += 1
        weight = 1.0 - (score[lo : hi + 1] - score[i0]) / width
        return float(np.dot(self.grid[lo : hi + 1], weight) / weight.sum())

    def pessimistic_ratio(self, kappa: float, dense_only: bool = True) -> float:
        """The minimiser of mean + kappa * shape_sd, over `dense` points (if any) or all."""
        return float(self.grid[int(np.argmin(self._searched_score(kappa, dense_only)))])

    def _searched_score(self, kappa: float, dense_only: bool = True) -> np.ndarray:
        """The score mean + kappa * shape_sd on `grid`; +inf off the densely probed points."""
        score = self.mean + kappa * self.shape_sd if kappa else self.mean
        if dense_only and self.dense.any():
            score = np.where(self.dense, score, np.inf)
        return score

    def sample_argmins(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Argmins over `grid` of `n` curves drawn from the posterior (Thompson sampling)."""
        z = rng.standard_normal((n, self.factor.shape[1]))
        draws = self.mean[None, :] + z @ self.factor.T
        return self.grid[np.argmin(draws, axis=1)]

    def sample_challenger(
        self, rng: np.random.Generator, leader: float, gap: float = _SUPPORT_WIDTH, tries: int = 64
    ) -> float:
        """Top-two Thompson sampling's challenger (Russo 2016) to a draw's argmin `leader`.

        The argmin of the first of `tries` posterior draws whose argmin lies more than `gap`
        from `leader`; `leader` itself when none does (the posterior has settled on one region).

        `gap` defaults to the p* rule's support half-width: argmins closer than that name the
        same region of the curve.
        """
        argmins = self.sample_argmins(rng, tries)
        away = np.flatnonzero(np.abs(argmins - leader) > gap)
        return float(argmins[away[0]]) if away.size else float(leader)


def spline_posterior(
    probes: Probes,
    p_min: float,
    p_max: float,
    drift: bool = True,
    jitter: Sequence[float] = JITTER,
    walk: Sequence[float] = WALK,
    age_noise: Sequence[float] = AGE_NOISE,
    walk_length: float | None = None,
    drift_rates: Sequence[float] = DRIFT_RATES,
    drift_orders: Sequence[int] = DRIFT_ORDERS,
    grid_points: int = 281,
    ahead: float = 0.0,
    support_width: float = RECENT_SUPPORT_WIDTH,
    centre: float = CENTRE_SDS,
) -> SplinePosterior | None:
    """The last round's curve from every probe: spline, round effects, drift, jitter; REML.

    Model, with u = round / last, s_k(u) in [-1, 0] its drift weight and a = 1 - u the age of a
    round:

        L = c_round + f(ratio) + sum_o s_k(u)^o * h_o(ratio) + j_round(ratio) + w_round(ratio) + e

    - f: the curve at the LAST round (cubic B-spline on 15 knots, third-difference penalty:
      quadratics are free), what p* is read from;
    - h_o, o = 1..order (REML chooses the order among `drift_orders`, default 1): the
      curve's change over the run, on the same basis, each fully penalised (second
      differences plus a ridge, so REML can shrink it to nothing when the curve does not
      move): an optimum that moves while the adapter trains is tracked, not averaged (order
      2: a change that bends, as a shift of the optimum does); the time profile s_k(u)
      (`drift_profile`, u = round / last) is linear (k = 0) or saturating
      (k > 0: most of the move early), REML choosing k among `drift_rates`;
    - j_round: a fresh smooth random function per round (`shape_kernel`, variance ratio
      `jitter` to the noise), the real process's round-to-round change of the curve's shape:
      the probes of one round share it, so a round is worth less than its probe count;
    - w_round: optional (`walk` > 0) random walk of the shape, covariance
      walk * min(a, a') * kernel (`walk_length`: a squared-exponential kernel of that length
      instead of `shape_kernel`); `age_noise` > 0 adds independent variance age_noise * a;
    - e: independent noise, variance sigma^2 (profiled out).

    p* is searched where at least 4 probes lie within `support_width` (`SplinePosterior.dense`)
    and is the centre of the stretch within `centre` posterior sds of the minimum there
    (`SplinePosterior.centred_ratio`; 0: the argmin).
    With `ahead` != 0 the returned curve is f + sum_o ahead^o * h_o, the curve at drift weight
    s = ahead: -1 is the first round, > 0 extrapolates past the last round (with the linear
    profile, `ahead` run-lengths: a controller may aim its probes where the optimum is going).

    The penalties and variance ratios are chosen by restricted maximum likelihood (Wood 2011's
    criterion with the scale profiled out), which compares models with different noise
    structures where GCV cannot: for each noise structure and drift penalty the curve
    penalty's whole grid costs one eigendecomposition (base + lam * P = R'(I + lam U M U')R).
    The posterior of f is Gaussian (penalties as priors). None with fewer than 4 distinct
    ratios.
    """
    if not (np.isfinite(support_width) and support_width > 0):
        raise ValueError(
            f"support_width={support_width!r}: p* would have no search region; fix: give a "
            f"positive half-width in ratio units (default {RECENT_SUPPORT_WIDTH:.4f})"
        )
    if not (np.isfinite(centre) and centre >= 0):
        raise ValueError(
            f"centre={centre!r}: the near-minimal stretch needs a width of 0 or more posterior "
            f"sds; fix: give a finite centre >= 0 (default {CENTRE_SDS:g}; 0 is the argmin)"
        )
    if probes.distinct < 4:
        return None
    x, y, t = probes.ratios, probes.losses, probes.rounds
    last = int(t.max())
    basis = bspline_basis(x)
    nb = basis.shape[1]
    fixed = np.column_stack([basis, _round_dummies(t, True)])
    use_drift = bool(drift) and last > 0
    rates = tuple(drift_rates) if use_drift else (0.0,)
    if use_drift and not (rates and all(np.isfinite(k) and k >= 0 for k in rates)):
        raise ValueError(
            f"drift_rates={drift_rates!r}: each drift time profile needs a finite rate >= 0; "
            f"fix: give rates such as (0.0,) (linear) or (0.0, 2.0) (default {DRIFT_RATES!r})"
        )
    orders = tuple(drift_orders) if use_drift else (0,)
    if use_drift and not (
        orders and all(not isinstance(o, bool) and o in (1, 2, 3) for o in orders)
    ):
        raise ValueError(
            f"drift_orders={drift_orders!r}: the drift term's powers of s must be 1, 2 or 3; "
            f"fix: give orders such as (1,) (linear change) or (1, 2) (REML chooses whether the "
            f"change bends; default {DRIFT_ORDERS!r})"
        )
    d3 = np.diff(np.eye(nb), 3, axis=0)
    d2 = np.diff(np.eye(nb), 2, axis=0)
    block = d2.T @ d2 + 1e-3 * np.eye(nb)  # proper: the drift can shrink to zero
    logdet_block = float(np.linalg.slogdet(block)[1])
    models = []  # (order, rate, design, curve penalty, drift penalty, its log-determinant)
    for order in orders:
        for rate in rates if order else (None,):
            powers = [drift_profile(t / last, rate) ** o for o in range(1, order + 1)]
            design = np.column_stack([fixed] + [basis * p[:, None] for p in powers])
            size = design.shape[1]
            pen_f = np.zeros((size, size))
            pen_f[:nb, :nb] = d3.T @ d3
            pen_h = np.zeros((size, size))
            for o in range(order):  # one penalty block per power, the same weight lam_h
                col = size - (o + 1) * nb
                pen_h[col : col + nb, col : col + nb] = block
            models.append((order, rate, design, pen_f, pen_h, order * logdet_block))
    n = len(y)
    rank_f = nb - 3
    unpenalised = 3 + len(np.unique(t)) - 1
    same_round = t[:, None] == t[None, :]
    kernel = shape_kernel(x)
    age = (last - t) / max(last, 1)
    if walk_length is None:
        walk_kernel = kernel
    else:
        walk_kernel = np.exp(-0.5 * ((x[:, None] - x[None, :]) / walk_length) ** 2)
    walk_cov = np.minimum(age[:, None], age[None, :]) * walk_kernel
    log_lams = np.log(_REML_LAMBDAS)
    best = None
    for rho, q, omega in [(a, b, c) for a in jitter for b in walk for c in age_noise]:
        cov = np.eye(n) + rho * kernel * same_round + q * walk_cov + omega * np.diag(age)
        chol = np.linalg.cholesky(cov)
        logdet_v = 2.0 * float(np.log(np.diag(chol)).sum())
        yw = solve_triangular(chol, y, lower=True, check_finite=False)
        yy = float(yw @ yw)
        for order, rate, design, pen_f, pen_h, logdet_h in models:
            size = design.shape[1]
            xw = solve_triangular(chol, design, lower=True, check_finite=False)
            gram, moment = xw.T @ xw, xw.T @ yw
            ridge = 1e-8 * float(np.trace(gram)) / size * np.eye(size)
            rhs = np.column_stack([np.eye(size)[:, :nb], moment])
            for lam_h in DRIFT_LAMBDAS if order else (1.0,):
                base = gram + lam_h * pen_h + ridge
                r = np.linalg.cholesky(base).T
                # The curve penalty is d3'd3 on f's block only, so R^-T P R^-1 = B'B with
                # B = d3 R^-1[f rows]: its nb - 3 nonzero eigenvalues and their vectors come
                # from a thin SVD of B (the other directions are unshrunk). Before 2026-12-07's
                # eighth session an eigh of the whole matrix gave its null directions
                # eigenvalues near 1e-6 (the system's condition number is ~1e9), which heavy
                # smoothing turned into a spurious shrinkage (deviance off by 1e-3 relative
                # at lam 1e3 against a direct solve; the SVD agrees to 1e-12); 1.4-2x faster.
                sol = solve_triangular(r, rhs, trans="T", check_finite=False)
                r_inv_f, w = sol[:, :nb].T, sol[:, nb]  # R^-1's rows for f, R^-T moment
                _, sv, vt = np.linalg.svd(d3 @ r_inv_f, full_matrices=False)
                mu = sv**2
                z = vt @ w
                rest = float(w @ w) - float(z @ z)  # the unpenalised directions' share
                shrink = 1.0 + _REML_LAMBDAS[:, None] * mu[None, :]
                deviance = yy - rest - (z[None, :] ** 2 / shrink).sum(axis=1)
                logdet_a = 2.0 * float(np.log(np.abs(np.diag(r))).sum()) + np.log(shrink).sum(
                    axis=1
                )
                log_s = rank_f * log_lams + order * nb * np.log(lam_h) + logdet_h
                with np.errstate(divide="ignore", invalid="ignore"):
                    crit = (n - unpenalised) * np.log(deviance / (n - unpenalised))
                crit = np.where(deviance > 0, crit + logdet_v + logdet_a - log_s, np.inf)
                k = int(np.argmin(crit))
                if np.isfinite(crit[k]) and (best is None or crit[k] < best[0]):
                    hyper = {
                        "penalty": float(_REML_LAMBDAS[k]),
                        "drift_penalty": lam_h,
                        "drift_rate": rate,
                        "drift_order": order if use_drift else None,
                        "jitter": rho,
                        "walk": q,
                        "age_noise": omega,
                    }
                    best = (float(crit[k]), hyper, moment, base, float(deviance[k]), pen_f)
    if best is None:
        return None
    _, hyper, moment, base, deviance, pen_f = best
    if not use_drift:
        hyper["drift_penalty"] = None
    order, size = int(hyper["drift_order"] or 0), len(moment)
    system = base + hyper["penalty"] * pen_f
    coef = np.linalg.solve(system, moment)
    scale = deviance / (n - unpenalised)
    grid = np.linspace(p_min, p_max, grid_points)
    at = bspline_basis(grid)
    pick = np.zeros((nb, size))  # the curve's coefficients: f, or f + sum_o ahead^o * h_o
    pick[:, :nb] = np.eye(nb)
    if ahead:
        for o in range(1, order + 1):
            col = size - (order - o + 1) * nb
            pick[:, col : col + nb] = ahead**o * np.eye(nb)
    cov_f = scale * pick @ np.linalg.inv(system) @ pick.T
    vals, vecs = np.linalg.eigh(0.5 * (cov_f + cov_f.T))
    factor = at @ (vecs * np.sqrt(np.clip(vals, 0.0, None)))
    support = np.abs(x[None, :] - grid[:, None]) <= support_width
    dense = support.sum(axis=1) >= SUPPORT_COUNT
    return SplinePosterior(
        grid,
        at @ (pick @ coef),
        factor,
        dense,
        n,
        hyper["penalty"],
        float(np.sqrt(scale)),
        hyper,
        centre,
    )


FINAL_COST = 0.5
"""The final run's capacity cost rule 'spline_cost' assumes by default, as a share of the probed
curve's range over [p_min, p_max]: what the live grids measured (the final runs' loss = a + b x
end curve + c x ratio, R^2 0.99-1.00 on the six summarisation runs, c over the ratio range 0.39-
0.69 of b x the end curve's range, median 0.50: scripts/surrogate_fidelity.py). Also the
surrogate's `grasp_env.surrogate.FINAL_COST`."""


COST_RULES: tuple[str, ...] = ("spline_cost", "spline_recent_cost")
"""The p* rules that add the final run's capacity cost (`--controller.final-cost` reads only
these; the Thompson controller aims its draws at the cost-adjusted minimum under them)."""


def fit_spline_cost(
    probes: Probes, p_min: float, p_max: float, cost: float = FINAL_COST, drift: bool = False
) -> PstarFit | None:
    """Rule 'spline_cost': the curve over every round plus the final run's capacity cost.

    Why: the final run reloads the merged adapter and trains with pruning fixed at p* from its
    first step, so it pays for every pruned weight, while a probe of the controller run prunes
    an adapter already trained and sees no cost until the cliff. On the live pairs the final
    runs' loss is the probed end curve, shrunk, plus a cost rising linearly with the ratio
    (`FINAL_COST`). This rule fits the probed curve as 'spline' does, one curve for every round
    (`spline_posterior` without drift: REML-chosen smoothing, round effects and the per-round
    change of the curve's shape), and returns the minimiser over the densely probed points of
    that curve plus cost x its range over [p_min, p_max] x (ratio - p_min) / (p_max - p_min).
    cost = 0: the pooled curve's argmin. With fewer than 4 distinct ratios, `fit_quadratic`'s
    answer.

    drift=True is rule 'spline_recent_cost': the curve at the LAST round (`spline_posterior`
    with its drift term, as 'spline_recent' reads) plus the same cost, the decision when the
    final run meets the end curve plus that cost (the surrogate's `-final` instance sets). It
    tracks an optimum that moves while the adapter trains, where the pooled curve averages it
    (train-final, Thompson, moving families: 1.55% against 2.82% at 15 rounds;
    docs/results/controller_v2.md, "The cost's unit").
    """
    if not (np.isfinite(cost) and cost >= 0):
        raise ValueError(
            f"cost={cost!r}; fix: give the final run's capacity cost as a finite share of the "
            f"curve's range >= 0 (default {FINAL_COST:g}, measured on the live grids)"
        )
    post = spline_posterior(probes, p_min, p_max, drift=drift)
    if post is None:
        return fit_quadratic(probes, p_min, p_max)
    ratio = with_final_cost(post, cost, p_min, p_max).pessimistic_ratio(0.0)
    return PstarFit(ratio, post.grid, post.mean, post.n_points, post.penalty)


def with_final_cost(
    post: SplinePosterior, cost: float, p_min: float, p_max: float
) -> SplinePosterior:
    """`post` with the final run's capacity cost added to its mean (its spread unchanged).

    The cost is `cost` x the mean's range over the whole of `post.grid` ([p_min, p_max]) x
    (ratio - p_min) / (p_max - p_min): the one definition of "curve plus cost" that rule
    'spline_cost' reads and the Thompson controller aims its draws at. The range is taken over
    [p_min, p_max] because that is the unit the cost was measured in (`FINAL_COST`: a share of
    the end curve's range over the grid). Before 2026-12-07's seventh session it was the range
    over the densely probed points only: a controller that concentrates its probes (Thompson)
    then saw a narrow range, too small a cost and a p* too high (train-final instances, 6
    rounds: Thompson's p* 0.105 above the optimum on average, regret 4.36% against 1.77% with
    the whole range; docs/results/controller_v2.md, "The cost's unit"). Every controller run
    probes at least 0.7 of [0.1, 0.8] (its exploring probes), so the range needs almost no
    extrapolation.
    """
    return replace(post, mean=plus_final_cost(post.mean, post.grid, cost, p_min, p_max))


def plus_final_cost(
    curve: Any, ratios: Any, cost: float, p_min: float, p_max: float, span: Any = None
) -> np.ndarray:
    """The curve plus the final run's cost, cost x span x (ratios - p_min) / (p_max - p_min).

    The one array-level definition the rule ('spline_cost', 'spline_recent_cost', through
    `with_final_cost`), the surrogate's true curve (`Instance.true_curve`), the family-known
    floor (`surrogate.family_fit`) and the view floor (`runs.agent_table`) all call. `span` is
    the curve's range that the cost is a share of: by default each curve's own range along the
    last axis (so `curve` may be one curve or a stack, one per row), which is its range over
    [p_min, p_max] when `ratios` cover that grid; the surrogate passes its end curve's range.
    """
    curve = np.asarray(curve, float)
    if span is None:
        span = np.ptp(curve, axis=-1, keepdims=True) if curve.ndim else 0.0
    slope = (np.asarray(ratios, float) - p_min) / (p_max - p_min)
    return curve + cost * span * slope


def fit_spline_recent(
    probes: Probes,
    p_min: float,
    p_max: float,
    support_width: float = RECENT_SUPPORT_WIDTH,
    centre: float = CENTRE_SDS,
) -> PstarFit | None:
    """Rule 'spline_recent': p* from the last round's curve (`spline_posterior`).

    The same call shape as `fit_spline`. The curve is the round-aware spline's (drift over the
    run, round-to-round shape change, REML-chosen smoothing); p* is the centre of the stretch
    of its posterior mean within `centre` posterior sds of the minimum (0: the argmin, the rule
    before 2026-12-07's fifth session) over [p_min, p_max] where at least 4 probes lie within
    `support_width` (one knot spacing, +-0.071; before 2026-12-07's fourth session +-0.05).
    With fewer than 4 distinct ratios, `fit_quadratic`'s answer.
    """
    post = spline_posterior(probes, p_min, p_max, support_width=support_width, centre=centre)
    if post is None:
        return fit_quadratic(probes, p_min, p_max)
    return PstarFit(post.ratio, post.grid, post.mean, post.n_points, post.penalty)
