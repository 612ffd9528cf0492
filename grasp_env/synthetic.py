"""Synthetic stand-ins for the LM process: curves of several shapes with a known optimum.

For controller analysis (`scripts/pstar_study.py`) and agent unit tests only: never the demo or
a benchmark. A stand-in has the real process's five methods and its semantics:

- probes are absolute (`semantics="stash"`, what `LoraProcess` does): a probe at any ratio,
  above or below the committed one, measures the curve there. `semantics="no_stash"` replays
  the process before 2026-11-29, where a probe at or below the ratio of the mask in force
  could only return the baseline loss L0;
- the baseline loss is measured at the ratio of the mask in force, 0 before the first commit
  (the env starts unpruned, as the reference does);
- training moves every loss down together (a round-level trend) and, with `lock_in` > 0,
  bends the curve towards the ratio the adapter has been trained at.

The micro-dev loss at ratio x after s optimizer steps is

    L(x, s) = depth * f(x) + 0.5 * depth * exp(-s / 50) + bias(x) + jitter_s(x) + lock(x, s)
              + N(0, noise^2)

with f one of `SHAPES` (f >= 0, 0 at the optimum, scaled so that its range over
[p_min, p_max] is 1), `bias` a fixed smooth random function per seed (the same 16 micro-dev
rows are scored by every probe: their error is a function of the ratio, not a fresh draw),
`jitter_s` a fresh smooth random function after every training round (the training state
changes the curve's shape a little from round to round; measured on the real process:
scripts/probe_curves.py) and `noise` fresh per evaluation. `Curve.regret` scores a learned
ratio on the true curve f: its excess over the minimum, relative to f's range over
[p_min, p_max].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["SHAPES", "Curve", "SyntheticProcess", "smooth_bias"]

SHAPES: tuple[str, ...] = (
    "symmetric",
    "flat_left",
    "flat_right",
    "flat_bottom",
    "cliff",
    "kink",
)
"""symmetric: a parabola. flat_left / flat_right: gentle on one side of the optimum (1/10 of
the curvature), steep on the other. flat_bottom: zero over a plateau of half-width 0.08, a
parabola outside. cliff: a gentle linear descent to the optimum and a logistic cliff just
above it (the QA en->ar grid's shape). kink: |x - o|^1.2 with twice the slope on the right,
not differentiable at the optimum."""

_GRID = np.linspace(0.0, 1.0, 2001)


def _raw(shape: str, o: float, x: np.ndarray) -> np.ndarray:
    d = x - o
    if shape == "symmetric":
        return d**2
    if shape == "flat_left":
        return np.where(d < 0, 0.1 * d**2, d**2)
    if shape == "flat_right":
        return np.where(d > 0, 0.1 * d**2, d**2)
    if shape == "flat_bottom":
        return np.maximum(0.0, np.abs(d) - 0.08) ** 2
    if shape == "cliff":
        # The cliff starts to rise about 0.08 above the optimum (half height at +0.15); the
        # gentle linear slope on the left makes o the minimum.
        cliff = 1.0 / (1.0 + np.exp(-(d - 0.15) / 0.02))
        return 0.15 * np.maximum(0.0, -d) + cliff - 1.0 / (1.0 + math.exp(0.15 / 0.02))
    if shape == "kink":
        return np.where(d < 0, np.abs(d) ** 1.2, 2.0 * np.abs(d) ** 1.2)
    raise ValueError(f"shape={shape!r} is unknown; fix: use one of {SHAPES}")


@dataclass(frozen=True)
class Curve:
    """A true quality curve: f(x) >= 0 with its minimum at `optimum`, range 1 on the bounds."""

    shape: str = "symmetric"
    """One of SHAPES."""
    optimum: float = 0.5
    """Where f is minimal (for flat_bottom: the plateau's centre)."""
    p_min: float = 0.10
    """Lower end of the ratio range the regret is measured on."""
    p_max: float = 0.80
    """Upper end of the same range."""

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"shape={self.shape!r} is unknown; fix: use one of {SHAPES}")
        if not self.p_min <= self.optimum <= self.p_max:
            raise ValueError(
                f"optimum={self.optimum} is outside [p_min, p_max] = [{self.p_min}, "
                f"{self.p_max}]; fix: put the optimum inside the range"
            )

    @cached_property
    def _scale(self) -> float:
        inside = (_GRID >= self.p_min) & (_GRID <= self.p_max)
        raw = _raw(self.shape, self.optimum, _GRID[inside])
        return float(raw.max() - raw.min())

    def __call__(self, x: float | np.ndarray) -> np.ndarray:
        """f(x), scaled to range 1 over [p_min, p_max]."""
        return _raw(self.shape, self.optimum, np.asarray(x, dtype=float)) / self._scale

    @cached_property
    def _inside(self) -> np.ndarray:
        return _GRID[(_GRID >= self.p_min) & (_GRID <= self.p_max)]

    @cached_property
    def _bounds(self) -> tuple[float, float]:
        values = self(self._inside)
        return float(values.min()), float(values.max())

    def regret(self, x: float) -> float:
        """(f(x) - min f) / (max f - min f) over [p_min, p_max], in [0, 1]."""
        lo, hi = self._bounds
        return float((self(np.clip(x, self.p_min, self.p_max)) - lo) / (hi - lo))

    def argmin_of(self, values: np.ndarray) -> float:
        """The ratio in [p_min, p_max] where `values` (evaluated on `grid()`) is smallest."""
        return float(self._inside[int(np.argmin(values))])

    def grid(self) -> np.ndarray:
        """The fine grid over [p_min, p_max] that `regret` and `argmin_of` use."""
        return self._inside


def smooth_bias(seed: int, scale: float, terms: int = 4) -> np.ndarray:
    """Coefficients of a smooth random function b(x) = scale * sum_k (a_k cos + b_k sin)(k pi x)/k.

    Returned as (terms, 2) coefficients; `SyntheticProcess` evaluates them. The 1/k decay keeps
    the function smooth: its wiggles are a few tenths of the ratio range wide, like the
    ratio-dependent error of a fixed 16-row micro-dev set.
    """
    rng = np.random.default_rng(10_000 + seed)
    return scale * rng.normal(size=(terms, 2)) / np.arange(1, terms + 1)[:, None]


def _bias_at(coef: np.ndarray, x: float | np.ndarray) -> np.ndarray:
    k = np.arange(1, len(coef) + 1)
    xs = np.asarray(x, dtype=float)[..., None] * k * math.pi
    return (coef[:, 0] * np.cos(xs) + coef[:, 1] * np.sin(xs)).sum(axis=-1)


class SyntheticProcess:
    """The five methods of `grasp_env.process.LoraProcess` on a closed-form loss."""

    def __init__(
        self,
        curve: Curve | float = 0.5,
        depth: float = 0.1,
        noise: float = 0.01,
        bias: float = 0.0,
        lock_in: float = 0.0,
        semantics: str = "stash",
        bias_seed: int | None = None,
        jitter: float = 0.0,
    ) -> None:
        """A stand-in whose micro-dev loss follows `curve`.

        Args:
            curve: The true curve (a bare float means a symmetric curve with that optimum).
            depth: Loss units of the curve's range over [p_min, p_max].
            noise: Std of the fresh Gaussian noise of every evaluation.
            bias: Scale of the fixed smooth micro-dev bias (0: none).
            lock_in: Extra loss lock_in * depth * (x - trained)^2 * progress, where `trained`
                is the ratio of the mask the adapter has been trained under (0 before the
                first commit) and progress = 1 - exp(-s / 50).
            semantics: 'stash' (absolute probes, the real process) or 'no_stash' (a probe at
                or below the mask in force returns the last L0, the process before the fix).
            bias_seed: Seed of the bias function; None draws it from the reset seed.
            jitter: Scale of the smooth random function redrawn after every `train` call
                (0: none).
        """
        if semantics not in ("stash", "no_stash"):
            raise ValueError(f"semantics={semantics!r}; fix: use 'stash' or 'no_stash'")
        self.curve = curve if isinstance(curve, Curve) else Curve(optimum=float(curve))
        self.depth, self.noise, self.bias, self.lock_in = depth, noise, bias, lock_in
        self.semantics, self.bias_seed, self.jitter = semantics, bias_seed, jitter
        self._jitter = np.zeros((1, 2))
        self.steps_done = 0
        self.mask_ratio = 0.0
        self._last_l0: float | None = None
        self._coef = np.zeros((1, 2))
        self._rng = np.random.default_rng(0)

    @property
    def optimum(self) -> float:
        """The true curve's optimum."""
        return self.curve.optimum

    def reset(self, seed: int) -> None:
        """Fresh run: no steps, nothing pruned, noise (and bias) drawn from `seed`."""
        self.steps_done, self.mask_ratio, self._last_l0 = 0, 0.0, None
        self._rng = np.random.default_rng(seed)
        bias_seed = seed if self.bias_seed is None else self.bias_seed
        self._coef = smooth_bias(bias_seed, self.bias) if self.bias else np.zeros((1, 2))
        self._jitter = self._draw_jitter()

    def _draw_jitter(self) -> np.ndarray:
        if not self.jitter:
            return np.zeros((1, 2))
        return self.jitter * self._rng.normal(size=(4, 2)) / np.arange(1, 5)[:, None]

    def expected_loss(self, ratio: float) -> float:
        """The noise-free micro-dev loss at `ratio` now (curve + trend + bias + lock-in)."""
        s = self.steps_done
        value = self.depth * float(self.curve(ratio))
        value += 0.5 * self.depth * math.exp(-s / 50)
        value += float(_bias_at(self._coef, ratio)) + float(_bias_at(self._jitter, ratio))
        progress = 1.0 - math.exp(-s / 50)
        value += self.lock_in * self.depth * (ratio - self.mask_ratio) ** 2 * progress
        return value

    def micro_dev_curve(self, ratios: np.ndarray) -> np.ndarray:
        """The noise-free micro-dev curve without the trend: what no estimator can see past."""
        return self.depth * self.curve(ratios) + _bias_at(self._coef, ratios)

    def _loss(self, ratio: float) -> float:
        return self.expected_loss(ratio) + float(self._rng.normal(0.0, self.noise))

    def baseline_loss(self) -> float:
        """Loss with the mask in force (unpruned before the first commit)."""
        self._last_l0 = self._loss(self.mask_ratio)
        return self._last_l0

    def probe(self, ratio: float) -> float:
        """Loss of the model masked at `ratio` (see `semantics`)."""
        if self.semantics == "no_stash" and ratio <= self.mask_ratio:
            return self._last_l0 if self._last_l0 is not None else self.baseline_loss()
        return self._loss(ratio)

    def commit(self, ratio: float) -> float:
        """Commit a mask at `ratio`; returns it as the achieved sparsity."""
        self.mask_ratio = float(ratio)
        return self.mask_ratio

    def sparsity(self) -> float:
        """The ratio of the mask in force (0 before the first commit)."""
        return self.mask_ratio

    def train(self, k: int) -> list[float]:
        """Advance `k` steps; returns the noise-free losses at the mask in force."""
        out = []
        for _ in range(k):
            self.steps_done += 1
            out.append(self.expected_loss(self.mask_ratio))
        if k > 0:
            self._jitter = self._draw_jitter()
        return out

    def state_dict(self) -> dict:
        """Plain data for round checkpoints."""
        return {
            "steps_done": self.steps_done,
            "mask_ratio": self.mask_ratio,
            "last_l0": self._last_l0,
            "coef": self._coef.tolist(),
            "jitter": self._jitter.tolist(),
            "rng": self._rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state_dict`."""
        self.steps_done, self.mask_ratio = int(state["steps_done"]), float(state["mask_ratio"])
        self._last_l0, self._coef = state["last_l0"], np.array(state["coef"])
        self._jitter = np.array(state["jitter"])
        self._rng.bit_generator.state = state["rng"]
