"""Main job: learn the prune ratio with a controller, then the final run at the learned ratio.

    python runners/train_agent.py                                   # embedded default, QA en->ar
    python runners/train_agent.py --preset tiny --task summarization --target zh
    python runners/train_agent.py --pstar-rule best_reward          # the paper's p* rule

Sections: parse config, seed, build (backbone, adapters, merge: cached), controller episode in
GraspLoRA-v0, choose p*, final run at p*, evaluate on the target test split, save, close.
Writes runs/<run-name>/: TensorBoard events, config.json, history.jsonl (one object per round),
metrics.json and adapter/ (loadable with peft.PeftModel.from_pretrained).
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tyro  # noqa: E402

from agents import AGENTS, GRPOConfig, make_agent  # noqa: E402
from grasp_env.cli import ExperimentArgs, run_cli  # noqa: E402
from grasp_env.env import ControllerConfig, GraspLoRAEnv  # noqa: E402
from grasp_env.pipeline import final_run, prepare  # noqa: E402
from grasp_env.presets import get_preset  # noqa: E402
from grasp_env.runs import RoundLogger, make_run_dir, write_json  # noqa: E402


@dataclass(frozen=True)
class Args(ExperimentArgs):
    """Learn the prune ratio of a merged cross-lingual LoRA online, then prune at it."""

    agent: str = "grpo"
    """Controller: grpo, ppo, a2c, sac, td3, tqc, random, optuna or fixed."""
    fixed_ratio: float = 0.4
    """The ratio of --agent fixed (no controller run)."""
    controller: Annotated[ControllerConfig, tyro.conf.OmitArgPrefixes] = field(
        default_factory=ControllerConfig
    )
    """Controller-run knobs (the env's)."""
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    """GRPO policy settings."""


def main(args: Args) -> int:
    """Run the controller episode and the final run; write the run directory."""
    if args.agent not in AGENTS:
        raise ValueError(f"--agent {args.agent!r} is unknown; fix: use one of {sorted(AGENTS)}")
    preset = get_preset(args.preset)
    name = args.run_name or f"{args.agent}-{args.task}-{args.source}-{args.target}-s{args.seed}"
    run_dir = make_run_dir(args.out_dir, name, args.overwrite)
    t0 = time.perf_counter()

    # build: backbone, data, source/target adapters (cached), merge
    cfg = args.pipeline_config(mask_scope=args.controller.mask_scope)
    prep = prepare(preset, cfg)
    t_prep = time.perf_counter() - t0
    config = {**asdict(args), "out_dir": str(args.out_dir), "backbone": prep.backbone}
    write_json(run_dir / "config.json", config)
    logger = RoundLogger(run_dir, config)

    # controller run
    t1 = time.perf_counter()
    env = GraspLoRAEnv(prepared=prep, **asdict(args.controller))
    grpo = args.grpo if args.grpo.seed is not None else replace(args.grpo, seed=args.seed)
    agent = make_agent(args.agent, env, seed=args.seed, grpo=grpo, fixed_ratio=args.fixed_ratio)
    seen_losses = 0

    def on_round(record: dict) -> None:
        nonlocal seen_losses
        last = env.history[-1]
        losses = env.train_losses[seen_losses:]
        seen_losses = len(env.train_losses)
        logger.round(
            {
                "round": last["round"],
                "step": last["step"],
                "ratios": last["candidates"],
                "rewards": last["rewards"],
                "candidate_losses": last["losses"],
                "baseline_ratio": last["baseline_ratio"],
                "baseline_loss": last["baseline_loss"],
                **{k: record[k] for k in ("mu", "sigma", "frac_reward_zero_std") if k in record},
                "committed_ratio": last["committed_ratio"],
                "achieved_sparsity": last["achieved_sparsity"],
                "learned_ratio": env.learned_ratio(),
                "train_losses": losses,
            }
        )

    from tqdm.auto import tqdm

    n_rounds = env.budget // args.controller.update_interval
    with tqdm(total=n_rounds, desc=f"controller ({args.agent})", leave=False) as bar:

        def on_round_with_bar(record: dict) -> None:
            on_round(record)
            bar.update(1)
            bar.set_postfix(p=f"{env.committed:.3f}")

        agent.learn(seed=args.seed, callback=on_round_with_bar)
    # Agents driven by SB3 see the env auto-reset at the episode's end: their own snapshot of
    # the finished episode is the record; GRPO leaves the env as the episode ended.
    finished = getattr(agent, "finished", None) or {
        "learned_ratio": env.learned_ratio(),
        "rounds": len(env.history),
        "learned_ratio_by_rule": {
            r: env.learned_ratio(r) for r in ("fit", "best_reward", "last_committed")
        },
    }
    pstar = finished["learned_ratio"]
    controller_s = time.perf_counter() - t1
    by_rule = ", ".join(f"{k} {v:.4f}" for k, v in finished["learned_ratio_by_rule"].items())
    print(
        f"controller ({args.agent}): {finished['rounds']} rounds, p* = {pstar:.4f}; "
        f"{by_rule}  [{controller_s:.1f} s]"
    )

    # final run at p*
    t2 = time.perf_counter()
    run = final_run(prep, pstar, "merged", progress=True, keep_model=True)
    run.model.save_pretrained(run_dir / "adapter")
    final_s = time.perf_counter() - t2
    total_s = time.perf_counter() - t0

    metrics = {
        "agent": args.agent,
        "preset": preset.name,
        "task": args.task,
        "source": args.source,
        "target": args.target,
        "seed": args.seed,
        "backbone": prep.backbone,
        "learned_ratio": pstar,
        "pstar_rule": args.controller.pstar_rule,
        "learned_ratio_by_rule": finished["learned_ratio_by_rule"],
        "test": run.test,
        "test_loss": run.test_loss,
        "dev_loss": run.dev_loss,
        "rounds": finished["rounds"],
        "timings": {
            "prepare_s": t_prep,
            **prep.timings,
            "controller_s": controller_s,
            "final_s": final_s,
            "total_s": total_s,
        },
    }
    write_json(run_dir / "metrics.json", metrics)
    logger.final(
        {**run.test, "test_loss": run.test_loss, "learned_ratio": pstar},
        {k: v for k, v in config.items() if not isinstance(v, dict)},
        env.process.steps_done,
    )
    env.close()
    print(
        f"p* = {pstar:.4f}; test {', '.join(f'{k} {v:.2f}' for k, v in run.test.items())}; "
        f"test NLL {run.test_loss:.4f}"
    )
    print(
        f"time: prepare {t_prep:.1f} s, controller {controller_s:.1f} s, final "
        f"{final_s:.1f} s, total {total_s:.1f} s -> {run_dir}"
    )
    return 0


if __name__ == "__main__":
    run_cli(main, Args)
