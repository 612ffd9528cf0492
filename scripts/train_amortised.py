"""Train the amortised controller's policy (`agents.amortised`) on the surrogate's train instances.

Command (the shipped policy agents/policies/amortised_ppo.pt: 22 minutes of training on one
core of a 2-core machine shared with other jobs, then about a minute of scoring):

    nice -n 10 .venv/bin/python scripts/train_amortised.py --algo ppo --minutes 22

An SB3 algorithm learns on `agents.amortised.make_train_env`: the registered surrogate env on the
--instances set (default 'train-final': the train instances whose final run pays the measured
capacity cost, the truth the agent table scores on 'test-final'; 'train': without it, the
policy shipped before 2026-12-08) round-robin, a fresh episode noise every episode, budgets
drawn from --rounds at every reset, the observation `HistoryFeatures`. Reward (--shaping, the
default): at every round's close the change of -100 x the regret of p* so far (the configured
p* rule, `spline_recent_cost` by default, on the instance's true curve), a potential-based
shaping whose sum is the final
-100 x regret up to a per-episode constant; --no-shaping pays -100 x the final regret at the
last step only (--baseline: relative to the recent mean of the same instance and budget).
Training stops after --timesteps or --minutes, whichever comes first (a wall-time cap: the
result depends on the machine's speed); then the policy is scored on the same instances
(--eval-seeds episodes per instance and budget, stochastic and mean actions; the better mode is
recorded as the agent's default) and, for PPO, written as a torch state_dict (--out) with a
metadata JSON beside it (architecture, command, cost, scores, learning curve). `--algo sac`
trains and scores SAC the same way for the comparison (nothing is written: the agent loads
ActorCriticPolicy weights only). The test instances are never touched here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from agents.amortised import FEATURES, POLICY_PATH, VERSION, make_train_env  # noqa: E402
from grasp_env.atomic import atomic_file, atomic_write_text  # noqa: E402

NET_ARCH = {"pi": [64, 64], "vf": [64, 64]}


def build(algo: str, venv, seed: int):
    """The SB3 model (PPO: on-policy, 8 envs x 128 steps per update; SAC: small off-policy)."""
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.logger import Logger

    if algo == "ppo":
        model = PPO(
            "MlpPolicy",
            venv,
            n_steps=128,
            batch_size=256,
            n_epochs=10,
            learning_rate=3e-4,
            gamma=1.0,
            gae_lambda=0.95,
            ent_coef=0.0,
            clip_range=0.2,
            policy_kwargs={
                "net_arch": NET_ARCH,
                "activation_fn": torch.nn.Tanh,
                "log_std_init": -0.5,
            },
            seed=seed,
            device="cpu",
            verbose=0,
        )
    elif algo == "sac":
        model = SAC(
            "MlpPolicy",
            venv,
            learning_rate=3e-4,
            buffer_size=200_000,
            learning_starts=2000,
            batch_size=256,
            gamma=1.0,
            train_freq=8,
            gradient_steps=2,
            policy_kwargs={"net_arch": [64, 64]},
            seed=seed,
            device="cpu",
            verbose=0,
        )
    else:
        raise SystemExit(f"--algo {algo!r}; fix: use ppo or sac")
    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def evaluate(
    model, rounds: int, seeds: int, deterministic: bool, instances: str = "train-final"
) -> dict[str, float]:
    """Mean +- s.e. regret (%) over every `instances` instance x `seeds` episodes at `rounds`."""
    env = make_train_env(instances, rounds=(rounds,), seed=0)
    n_inst = len(env.unwrapped.instances)
    regrets = []
    for seed in range(seeds):
        for k in range(n_inst):
            obs, _ = env.reset(seed=100_000 + seed * n_inst + k, options={"instance": k})
            done = False
            while not done:
                action, _ = model.predict(obs, deterministic=deterministic)
                obs, _, terminated, truncated, info = env.step(action)
                done = terminated or truncated
            regrets.append(100.0 * info["regret"])
    r = np.asarray(regrets)
    return {"mean": float(r.mean()), "se": float(r.std(ddof=1) / np.sqrt(len(r))), "n": len(r)}


def main() -> None:
    """Train, score on the train instances, write the policy and its metadata."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="ppo", choices=("ppo", "sac"))
    parser.add_argument("--timesteps", type=int, default=10_000_000)
    parser.add_argument("--minutes", type=float, default=20.0, help="wall-time cap of training")
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, nargs="+", default=[4, 6, 6, 8, 10, 12, 15, 15])
    parser.add_argument("--eval-seeds", type=int, default=2)
    parser.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="pay the regret relative to the recent mean of the same instance and budget",
    )
    parser.add_argument(
        "--shaping",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pay the change of -regret of p* so far at every round's close (potential-based)",
    )
    parser.add_argument(
        "--instances",
        default="train-final",
        choices=("train-final", "train"),
        help="the tuning set trained and scored on (the test sets are never touched)",
    )
    parser.add_argument("--out", type=Path, default=POLICY_PATH)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv

    rounds = tuple(args.rounds)
    baselines: dict | None = {} if args.baseline else None  # shared by the envs (one process)
    venv = DummyVecEnv(
        [
            (
                lambda i=i: make_train_env(
                    args.instances,
                    rounds=rounds,
                    seed=args.seed * 1000 + i,
                    baselines=baselines,
                    shaping=args.shaping,
                )
            )
            for i in range(args.n_envs)
        ]
    )
    venv.seed(args.seed)
    model = build(args.algo, venv, args.seed)
    deadline = time.perf_counter() + 60.0 * args.minutes
    log: list[dict[str, float]] = []

    class Progress(BaseCallback):
        """Stops at the wall-time cap; logs the mean final reward every ~20 s."""

        def _init_callback(self) -> None:
            self.finals: list[float] = []
            self.next_log = time.perf_counter() + 20.0

        def _on_step(self) -> bool:
            for info, d in zip(self.locals["infos"], self.locals["dones"], strict=True):
                if d:
                    self.finals.append(-100.0 * float(info["regret"]))
            now = time.perf_counter()
            if now >= self.next_log and self.finals:
                recent = self.finals[-2000:]
                log.append(
                    {
                        "timesteps": self.num_timesteps,
                        "episodes": len(self.finals),
                        "regret_pct": -float(np.mean(recent)),
                    }
                )
                print(
                    f"[{(now - t0) / 60:5.1f} min] steps {self.num_timesteps} episodes "
                    f"{len(self.finals)} train regret (last {len(recent)}) {-np.mean(recent):.2f}%",
                    flush=True,
                )
                self.next_log = now + 20.0
            return now < deadline

    t0 = time.perf_counter()
    progress = Progress()
    model.learn(total_timesteps=args.timesteps, callback=progress)
    train_s = time.perf_counter() - t0
    print(
        f"trained {model.num_timesteps} steps, {len(progress.finals)} episodes in {train_s:.0f} s"
    )

    scores = {}
    for r in (15, 6):
        for det in (False, True):
            key = f"{r}r-{'mean' if det else 'stochastic'}"
            scores[key] = evaluate(model, r, args.eval_seeds, det, args.instances)
            print(f"train-set regret {key}: {scores[key]['mean']:.2f} +- {scores[key]['se']:.2f}%")
    stochastic = (scores["15r-stochastic"]["mean"] + scores["6r-stochastic"]["mean"]) <= (
        scores["15r-mean"]["mean"] + scores["6r-mean"]["mean"]
    )
    if args.algo != "ppo":
        print("(not written: only PPO's ActorCriticPolicy is shipped)")
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(args.out) as tmp:
        torch.save(model.policy.state_dict(), tmp)
    meta = {
        "version": VERSION,
        "features": FEATURES,
        "algo": "PPO (stable-baselines3)",
        "net_arch": NET_ARCH,
        "activation": "Tanh",
        "stochastic": stochastic,
        "command": "nice -n 10 .venv/bin/python scripts/train_amortised.py "
        + " ".join(sys.argv[1:]),
        "train_instances": args.instances,
        "per_instance_baseline": bool(args.baseline),
        "potential_shaping": bool(args.shaping),
        "train_rounds": list(rounds),
        "timesteps": int(model.num_timesteps),
        "episodes": len(progress.finals),
        "train_minutes": round(train_s / 60.0, 2),
        "train_set_regret_pct": scores,
        "learning_curve": log,
        "torch_threads": 1,
    }
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(meta, indent=1) + "\n")
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size} bytes) and its metadata; stochastic={stochastic}")


if __name__ == "__main__":
    main()
