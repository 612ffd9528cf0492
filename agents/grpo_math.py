"""GRPO maths for a Gaussian policy over the prune ratio, as small pure functions.

Group-relative advantages follow TRL's GRPOTrainer semantics (`scale_rewards` in group / batch /
none, unbiased std, + 1e-4 in the denominator, `frac_reward_zero_std`). The policy update is the
reference rule of PAPER.md ("one controller round"), written out term by term so that the unit
tests can check it against hand-computed numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SCALE_REWARDS", "GaussianPolicy", "group_advantages", "reference_update"]

SCALE_REWARDS: tuple[str, ...] = ("group", "batch", "none")
_EPS = 1e-4


def group_advantages(rewards: np.ndarray, scale_rewards: str = "group") -> tuple[np.ndarray, float]:
    """Advantages of rewards shaped (n_groups, group_size), and the share of zero-std groups.

    - every reward minus its group's mean;
    - `group`: divided by the group's std + 1e-4 (TRL's default);
    - `batch`: divided by the std over all rewards + 1e-4;
    - `none`: centred only (the reference controller's rule).
    A group whose rewards are all equal gets zero advantages in every mode.
    """
    if scale_rewards not in SCALE_REWARDS:
        raise ValueError(
            f"scale_rewards={scale_rewards!r} is unknown; fix: use one of {SCALE_REWARDS}"
        )
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] < 2:
        raise ValueError(f"rewards shape {r.shape}: need (n_groups, group_size >= 2)")
    centred = r - r.mean(axis=1, keepdims=True)
    group_std = r.std(axis=1, ddof=1, keepdims=True)
    zero_std = np.isclose(group_std, 0.0).ravel()
    if scale_rewards == "group":
        adv = centred / (group_std + _EPS)
    elif scale_rewards == "batch":
        adv = centred / (r.std(ddof=1) + _EPS) if r.size > 1 else centred
    else:
        adv = centred
    # r - mean(r) is not exactly 0 in floating point for equal rewards (0.4 * 3 / 3 != 0.4),
    # and dividing by std + eps magnifies the residue; equal rewards carry no signal.
    adv[np.all(r == r[:, :1], axis=1)] = 0.0
    return adv, float(zero_std.mean())


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
) -> GaussianPolicy:
    """One reference policy-gradient step (PAPER.md).

    D = max(sigma^2, 1e-4)
    g_mu = mean(a * (rho - mu) / D)
    g_sigma = mean(a * ((rho - mu)^2 / D - 1))
    mu <- clamp(mu + eta * (g_mu - beta_kl * (mu - p)), p_min, p_max)
    sigma <- max(1e-3, sigma + eta * g_sigma + beta_h)
    """
    rho = np.asarray(ratios, dtype=np.float64).ravel()
    a = np.asarray(advantages, dtype=np.float64).ravel()
    d = max(policy.sigma**2, 1e-4)
    g_mu = float(np.mean(a * (rho - policy.mu) / d))
    g_sigma = float(np.mean(a * ((rho - policy.mu) ** 2 / d - 1.0)))
    mu = float(np.clip(policy.mu + eta * (g_mu - beta_kl * (policy.mu - committed)), p_min, p_max))
    sigma = max(1e-3, policy.sigma + eta * g_sigma + beta_h)
    return GaussianPolicy(mu, sigma)
