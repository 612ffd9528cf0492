"""GRPO maths for a Gaussian policy over the prune ratio, as small pure functions.

Group-relative advantages follow TRL's GRPOTrainer semantics (`scale_rewards` in group / batch /
none, unbiased std, + 1e-4 in the denominator, `frac_reward_zero_std`). TRL computes them
inline in its trainer for token sequences, so there is no library function to call for a
scalar action: they are written here, with hand-computed tests.

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
