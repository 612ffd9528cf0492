"""How often does each p* rule land within 0.05 of a known optimum (PAPER.md's test)?

    PYTHONPATH=. .venv/bin/python scripts/pstar_simulation.py [--rounds 25]

The reference GRPO controller (Gaussian policy, centred advantages, reference update, commit
rule) runs in GraspLoRA-v0 on the synthetic process (noise 0.01 on the loss, C=3, 25 rounds,
200 seeds per optimum); each rule is read from the same episodes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from agents.grpo_math import GaussianPolicy, group_advantages, reference_update  # noqa: E402
from grasp_env.env import PSTAR_RULES, GraspLoRAEnv  # noqa: E402
from grasp_env.pstar import fit_pstar  # noqa: E402
from grasp_env.synthetic import SyntheticProcess  # noqa: E402

C, K, SEEDS = 3, 10, 200
COLUMNS = (*PSTAR_RULES, "fit, extrapolating")


def episode(optimum: float, seed: int, rounds: int = 25) -> dict[str, float]:
    """One controller run with the reference policy; p* under every rule."""
    env = GraspLoRAEnv(
        process=SyntheticProcess(optimum), train_steps=rounds * K, update_interval=K, group_size=C
    )
    cfg = env.config
    rng = np.random.default_rng(seed + 10_000)
    env.reset(seed=seed)
    policy = GaussianPolicy(cfg.p_init, (cfg.p_max - cfg.p_min) / 6)
    done = False
    while not done:
        committed = env.committed
        ratios = np.clip(rng.normal(policy.mu, policy.sigma, C), cfg.p_min, cfg.p_max)
        rewards = []
        for rho in ratios:
            action = (rho - cfg.p_min) / (cfg.p_max - cfg.p_min) * 2 - 1
            _, r, done, _, _ = env.step(np.array([action], dtype=np.float32))
            rewards.append(r)
        adv, _ = group_advantages(np.array([rewards]), "none")
        policy = reference_update(policy, ratios, adv[0], committed)
    out = {rule: env.learned_ratio(rule) for rule in PSTAR_RULES}
    data = [
        (h["baseline_ratio"], h["baseline_loss"], h["candidates"], h["losses"]) for h in env.history
    ]
    wide = fit_pstar(data, cfg.p_min, cfg.p_max, extrapolate=True)
    out["fit, extrapolating"] = wide.ratio if wide else env.committed
    return out


def main() -> None:
    """Print a markdown table: share of seeds within 0.05 of the optimum, per rule."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25, help="controller rounds per run")
    rounds = parser.parse_args().rounds
    print(f"{rounds} rounds, {SEEDS} seeds per optimum\n")
    print("| optimum | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for optimum in (0.20, 0.37, 0.55, 0.70):
        hits = {rule: 0 for rule in COLUMNS}
        for seed in range(SEEDS):
            for rule, value in episode(optimum, seed, rounds).items():
                hits[rule] += abs(value - optimum) <= 0.05
        print(f"| {optimum:.2f} | " + " | ".join(f"{hits[r] / SEEDS:.0%}" for r in COLUMNS) + " |")


if __name__ == "__main__":
    main()
