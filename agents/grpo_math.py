"""GRPO maths for a Gaussian policy over the prune ratio, as small pure functions.

Group-relative advantages follow TRL's GRPOTrainer semantics (`scale_rewards` in group / batch /
none, NaN-aware unbiased std, + 1e-4 in the denominator, NaN rewards with advantage 0,
`frac_reward_zero_std`). TRL computes them inline in its trainer's generation step, over torch
tensors of completions, so there is no library function to call for a scalar action: they are
written here on numpy, and tests/test_grpo_math.py runs TRL's own block of code beside them.

Two policy updates:

- `reference_update`: the rule of PAPER.md ("one controller round"), term by term. Its mean
  step is a plain gradient divided by sigma^2 and applied to unscaled advantages, so one round
  with a large negative reward can throw mu across the whole range (seen on the default
  preset: 0.4 -> 0.1 in one round), and its constant entropy bonus grows sigma every round
  whatever the rewards say.
- `natural_update` (default): the same policy gradient, preconditioned by the inverse Fisher
  information of the Gaussian (the natural gradient, as in natural evolution strategies): the
  mean moves by eta * mean(a * (rho - mu)) - a step in ratio units that scales with sigma, not
  1/sigma - and sigma moves multiplicatively, by eta_sigma / 2 * mean(a * (z^2 - 1)) in log
  space. With group-scaled advantages (TRL's default) no reward scale can make a step large;
  the mean step is also clipped, and sigma kept in [sigma_min, sigma_max], so it neither
  collapses nor drifts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "SCALE_REWARDS",
    "UPDATES",
    "GaussianPolicy",
    "group_advantages",
    "natural_update",
    "reference_update",
]

UPDATES: tuple[str, ...] = ("natural", "reference")

SCALE_REWARDS: tuple[str, ...] = ("group", "batch", "none")
_EPS = 1e-4


def group_advantages(rewards: np.ndarray, scale_rewards: str = "group") -> tuple[np.ndarray, float]:
    """Advantages of rewards shaped (n_groups, group_size), and the share of zero-std groups.

    TRL's GRPOTrainer semantics (its "sum_then_normalize" aggregation with one reward function,
    checked against TRL's own code in tests/test_grpo_math.py):
    - every reward minus its group's mean, NaN rewards left out of the mean;
    - `group`: divided by the group's (unbiased, NaN-aware) std + 1e-4 (TRL's default);
    - `batch`: divided by the std over all rewards of the batch + 1e-4;
    - `none`: centred only (the reference controller's rule);
    - a NaN reward (an unscorable probe) gets advantage 0, as TRL does.
    Equal rewards give advantages of zero up to float rounding (TRL does not round them off).
    """
    if scale_rewards not in SCALE_REWARDS:
        raise ValueError(
            f"scale_rewards={scale_rewards!r} is unknown; fix: use one of {SCALE_REWARDS}"
        )
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] < 2:
        raise ValueError(f"rewards shape {r.shape}: need (n_groups, group_size >= 2)")
    with np.errstate(invalid="ignore", divide="ignore"):
        centred = r - _nanmean(r, axis=1)[:, None]
        # A second pass takes out the rounding of the first mean (the corrected two-pass
        # algorithm): with rewards near 7e5 that differ by 0.03 one pass left a group mean of
        # the advantages of 3e-8 (found by tests/test_properties.py). Identical in exact maths.
        centred = centred - _nanmean(centred, axis=1)[:, None]
        group_std = _nanstd(r, axis=1)
        if scale_rewards == "batch":
            std = np.full(r.shape, _nanstd(r.reshape(1, -1), axis=1)[0] if r.size > 1 else 0.0)
        else:
            std = np.repeat(group_std[:, None], r.shape[1], axis=1)
        adv = centred / (std + _EPS) if scale_rewards != "none" else centred
    zero_std = np.isclose(std, 0.0)[:, 0]
    return np.nan_to_num(adv, nan=0.0), float(zero_std.mean())


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    """Mean over `axis` without NaNs (NaN where every value is NaN), without warnings."""
    count = np.sum(~np.isnan(x), axis=axis)
    total = np.nansum(x, axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _nanstd(x: np.ndarray, axis: int) -> np.ndarray:
    """Unbiased std over `axis` without NaNs (NaN with fewer than two values), as TRL's nanstd."""
    mean = _nanmean(x, axis)
    count = np.sum(~np.isnan(x), axis=axis)
    var = _nanmean((x - np.expand_dims(mean, axis)) ** 2, axis)
    return np.where(count > 1, np.sqrt(var * count / np.maximum(count - 1, 1)), np.nan)


@dataclass(frozen=True)
class GaussianPolicy:
    """rho ~ N(mu, sigma^2), clamped to [p_min, p_max]."""

    mu: float
    sigma: float


def reference_update(
    policy: GaussianPolicy,
    ratios: np.ndarray,
    advantages: np.ndarray,
    committed: float,
    eta: float = 0.05,
    beta_kl: float = 0.05,
    beta_h: float = 0.01,
    p_min: float = 0.10,
    p_max: float = 0.80,
    sigma_min: float = 1e-3,
) -> GaussianPolicy:
    """One reference policy-gradient step (PAPER.md).

    D = max(sigma^2, 1e-4)
    g_mu = mean(a * (rho - mu) / D)
    g_sigma = mean(a * ((rho - mu)^2 / D - 1))
    mu <- clamp(mu + eta * (g_mu - beta_kl * (mu - p)), p_min, p_max)
    sigma <- max(sigma_min, sigma + eta * g_sigma + beta_h), sigma_min = 1e-3 in the paper
    """
    rho = np.asarray(ratios, dtype=np.float64).ravel()
    a = np.asarray(advantages, dtype=np.float64).ravel()
    d = max(policy.sigma**2, 1e-4)
    g_mu = float(np.mean(a * (rho - policy.mu) / d))
    g_sigma = float(np.mean(a * ((rho - policy.mu) ** 2 / d - 1.0)))
    mu = float(np.clip(policy.mu + eta * (g_mu - beta_kl * (policy.mu - committed)), p_min, p_max))
    sigma = max(sigma_min, policy.sigma + eta * g_sigma + beta_h)
    return GaussianPolicy(mu, sigma)


def natural_update(
    policy: GaussianPolicy,
    samples: np.ndarray,
    advantages: np.ndarray,
    committed: float,
    eta: float = 1.0,
    eta_sigma: float = 0.6,
    beta_kl: float = 0.05,
    entropy_bonus: float = 0.0,
    sigma_min: float = 0.05,
    sigma_max: float = 0.35,
    max_mu_step: float = 0.20,
    p_min: float = 0.10,
    p_max: float = 0.80,
) -> GaussianPolicy:
    """One natural-gradient step of the Gaussian policy (the stable default).

    With z = (rho - mu) / sigma for the raw (unclamped) samples:

    mu    <- clamp(mu + clip(eta * (sigma * mean(a * z) - beta_kl * (mu - p)), +-max_mu_step),
                   p_min, p_max)
    sigma <- clamp(sigma * exp(eta_sigma / 2 * mean(a * (z^2 - 1)) + entropy_bonus),
                   sigma_min, sigma_max)

    sigma * mean(a * z) is the score-function gradient of mu times the inverse Fisher
    information sigma^2; mu - p is the natural gradient of KL(N(mu, s) || N(p, s)); the sigma
    step is the natural gradient in log sigma (Fisher information 2). The defaults eta = 1 and
    eta_sigma = 0.6 are separable NES's for one dimension (SNES: (3 + ln d) / (5 sqrt d);
    Schaul et al., 2011).
    """
    z = (np.asarray(samples, dtype=np.float64).ravel() - policy.mu) / policy.sigma
    a = np.asarray(advantages, dtype=np.float64).ravel()
    step = eta * (policy.sigma * float(np.mean(a * z)) - beta_kl * (policy.mu - committed))
    mu = float(np.clip(policy.mu + np.clip(step, -max_mu_step, max_mu_step), p_min, p_max))
    log_step = eta_sigma / 2.0 * float(np.mean(a * (z**2 - 1.0))) + entropy_bonus
    sigma = float(np.clip(policy.sigma * np.exp(log_step), sigma_min, sigma_max))
    return GaussianPolicy(mu, sigma)
