"""Main job: learn the prune ratio with a controller, then the final run at the learned ratio.

    python runners/train_agent.py                                   # embedded default, QA en->ar
    python runners/train_agent.py --preset tiny --task summarization --target zh
    python runners/train_agent.py --pstar-rule best_reward          # the paper's p* rule

Sections: parse config, seed, build (backbone, adapters, merge: cached), controller episode in
GraspLoRA-v1, choose p*, final run at p*, evaluate on the target test split, save, close.
Writes runs/<run-name>/: TensorBoard events, config.json, history.jsonl (one object per round),
metrics.json and adapter/ (loadable with peft.PeftModel.from_pretrained).

Every file is written so that a kill or a full disk leaves its previous complete version or
none (`grasp_env.runs.dirs`): JSON and the agent archive by rename, adapter/ and merged/ as
whole directories; history.jsonl and the TensorBoard files are appended, and a torn last
record is dropped when they are read back. metrics.json, written last, marks the run done.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated

import tyro

from agents import AGENTS, GRPOConfig, check_probe_batch, make_agent
from grasp_env.env import ControllerConfig, GraspLoRAEnv
from grasp_env.lm import dist
from grasp_env.lm.adapters import adapter_stats, export_merged, save_adapter
from grasp_env.lm.device import peak_memory
from grasp_env.lm.pipeline import final_run, prepare
from grasp_env.lm.presets import get_preset
from grasp_env.runs.checkpoint import (
    CheckpointError,
    load_checkpoint,
    maybe_fault,
    save_checkpoint,
)
from grasp_env.runs.cli import ExperimentArgs, check_before_work, run_cli
from grasp_env.runs.controller import RoundCheckpointer, RoundRecorder, resumable, run_episode
from grasp_env.runs.dirs import RoundLogger, make_run_dir, resume_run_dir, write_json
from grasp_env.runs.protocol import ProtocolArgs, start_of


@dataclass(frozen=True)
class Args(ExperimentArgs, ProtocolArgs):
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
    resume: bool = False
    """Continue the run in --out-dir/--run-name after a crash, from its last round checkpoint
    (same flags required). The result equals an uninterrupted run's on CPU."""
    export_merged: bool = False
    """Also save the backbone with the pruned adapter merged into its weights
    (<run>/merged/, safetensors; loads with AutoModelForCausalLM.from_pretrained)."""
    dry_run: bool = False
    """Print what the run would load and do (backbone, data, LoRA entries, memory per device at
    the chosen dtype) and exit: nothing is downloaded, trained or written. --device/--dtype may
    name another machine's (e.g. cuda, bfloat16 on a laptop)."""


def main(args: Args) -> int:
    """Run the controller episode and the final run; write the run directory."""
    if args.agent not in AGENTS:
        raise ValueError(f"--agent {args.agent!r} is unknown; fix: use one of {sorted(AGENTS)}")
    if args.resume and args.overwrite:
        raise ValueError("--resume and --overwrite together; fix: pick one")
    preset = get_preset(args.preset)
    _check_before_any_work(args, preset)
    if args.dry_run:
        return _dry_run(args, preset)
    name = args.run_name or f"{args.agent}-{args.task}-{args.source}-{args.target}-s{args.seed}"
    flags = {**asdict(args), "out_dir": str(args.out_dir)}
    run_dir = _run_directory(args, name, flags)
    if run_dir is None:
        return 0
    ckpt_dir = run_dir / "checkpoint"
    t0 = time.perf_counter()

    # build: backbone, data, source/target adapters (cached), merge
    cfg = args.pipeline_config()
    prep = prepare(preset, cfg)
    t_prep = time.perf_counter() - t0
    config = {**flags, "backbone": prep.backbone}
    if not args.resume:
        write_json(run_dir / "config.json", config)

    # learn: one controller episode in GraspLoRA-v1
    finished = _controller_stage(args, prep, run_dir, ckpt_dir, config)

    # final run at p*, then save
    t2 = time.perf_counter()
    pstar, rounds = finished["learned_ratio"], finished["rounds"]
    run, resumed_s = _final_stage(args, prep, ckpt_dir, pstar, rounds)
    adapter = _save_adapter(args, prep, run, run_dir)
    final_s = time.perf_counter() - t2 + resumed_s
    timings = {"prepare_s": t_prep, **prep.timings, "controller_s": finished["controller_s"]}
    timings.update(final_s=final_s, total_s=t_prep + finished["controller_s"] + final_s)
    _write_results(args, preset, prep, run_dir, config, finished, run, adapter, timings)
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # the run is complete; nothing to resume
    if not dist.is_main():
        shutil.rmtree(run_dir, ignore_errors=True)  # this process's private copy
        return 0
    test = ", ".join(f"{k} {v:.2f}" for k, v in run.test.items())
    print(f"p* = {run.ratio:.4f}; test {test}; test NLL {run.test_loss:.4f}")
    print(
        f"time: prepare {t_prep:.1f} s, controller {finished['controller_s']:.1f} s, final "
        f"{final_s:.1f} s, total {timings['total_s']:.1f} s -> {run_dir}"
    )
    return 0


def _final_stage(args: Args, prep, ckpt_dir: Path, pstar: float, rounds: int):
    """The final run at p*, checkpointed after every dev evaluation; (run, resumed seconds).

    Under --protocol single-pass it continues the controller run's adapter, which the
    controller stage left in checkpoint/start.pt (`grasp_env.runs.protocol`).
    """
    lora, start = prep.cfg.final_lora, None
    start_ckpt = ckpt_dir / "start.pt"
    if args.protocol == "single-pass" and rounds > 0:
        if not start_ckpt.is_file():
            raise CheckpointError(
                f"{start_ckpt} is missing: --protocol single-pass continues the controller run's "
                "adapter, saved there when the controller stage ended; fix: delete controller.json "
                "to rerun the controller stage, or rerun with --overwrite"
            )
        saved = load_checkpoint(start_ckpt, "start", ("state", "max_steps"))
        lora, start = replace(lora, max_steps=int(saved["max_steps"])), saved["state"]
    final_ckpt = ckpt_dir / "final.pt"
    resume = None
    if args.resume and final_ckpt.is_file():
        resume = load_checkpoint(final_ckpt, "final", ("ratio", "step", "params", "seconds"))
    if resume is not None and resume["ratio"] != pstar:
        raise CheckpointError(
            f"{final_ckpt}: final run at ratio {resume['ratio']} but p* = {pstar}; fix: delete "
            "the file to restart the final run"
        )

    def on_final_checkpoint(state: dict) -> None:
        save_checkpoint(final_ckpt, {**state, "ratio": pstar}, "final")
        maybe_fault("final_checkpoint")

    run = final_run(
        prep,
        pstar,
        "merged",
        progress=True,
        keep_model=True,
        lora=lora,
        on_checkpoint=on_final_checkpoint,
        resume=resume,
        start=start,
    )
    return run, (resume["seconds"] if resume else 0.0)


def _save_adapter(args: Args, prep, run, run_dir: Path) -> dict:
    """adapter/ (PEFT format), optionally merged/; returns the adapter's stats."""
    save_adapter(run.model, run_dir / "adapter")
    adapter = adapter_stats(run.model, run_dir / "adapter")
    if args.export_merged:
        export_merged(run.model, run_dir / "merged", prep.tokenizer)
        adapter["merged_export"] = str(run_dir / "merged")
    return adapter


def _write_results(args, preset, prep, run_dir, config, finished, run, adapter, timings) -> None:
    """TensorBoard's eval/* and HPARAMS, then metrics.json (which marks the run finished)."""
    metrics = {
        "agent": args.agent,
        **args.identity(preset.name),
        "backbone": prep.backbone,
        "placement": asdict(prep.placement),
        "learned_ratio": run.ratio,
        "pstar_rule": args.controller.pstar_rule,
        "learned_ratio_by_rule": finished["learned_ratio_by_rule"],
        "test": run.test,
        "metric_conventions": args.metric_conventions(),
        "test_loss": run.test_loss,
        "dev_loss": run.dev_loss,
        "adapter": adapter,
        "peak_memory": peak_memory(prep.placement),
        "processes": dist.process_count(),
        "strategy": args.strategy if dist.process_count() > 1 else "single",
        "rounds": finished["rounds"],
        "termination": finished.get("termination", ""),
        "protocol": args.protocol,
        "final_steps": run.fit.steps,
        "resumed": bool(args.resume),
        "timings": timings,
    }
    logger = RoundLogger(run_dir, config, resume_rounds=finished["rounds_logged"])
    logger.final(
        {**run.test, "test_loss": run.test_loss, "learned_ratio": run.ratio},
        {k: v for k, v in config.items() if not isinstance(v, dict)},
        finished["steps_done"] + 1,
    )
    maybe_fault("final_logged")  # tests: a kill between the TensorBoard eval and metrics.json
    write_json(run_dir / "metrics.json", metrics)


def _run_directory(args: Args, name: str, flags: dict) -> Path | None:
    """The run directory this process writes (None: a finished run, nothing to do).

    Only the main process writes the real one. Every other process of a multi-process run
    writes an identical private copy in a temporary directory, removed at the end (so the
    stages need no guards); on --resume that copy starts from the real directory's files.
    """
    import tempfile

    real = None
    if dist.is_main():
        if args.resume:
            real = resume_run_dir(args.out_dir, name, flags)
        else:
            real = make_run_dir(args.out_dir, name, args.overwrite)
            _clear_stale_stages(real)
    dist.wait_for_everyone()
    done = (args.out_dir / name / "metrics.json").is_file() and args.resume
    if dist.is_main():
        run_dir = real
    else:
        run_dir = Path(tempfile.mkdtemp(prefix=f"grasp-rank{dist.rank()}-"))
        if args.resume:
            shutil.copytree(args.out_dir / name, run_dir, dirs_exist_ok=True)
    dist.wait_for_everyone()
    if done:
        if dist.is_main():
            print(f"{run_dir} already finished (metrics.json exists); nothing to resume")
        return None
    return run_dir


def _dry_run(args: Args, preset) -> int:
    """Print the run's plan (`grasp_env.lm.plan.describe_run`) as JSON; nothing else."""
    from grasp_env.lm.plan import describe_run, planned_placement

    cfg = args.pipeline_config()
    plan = describe_run(
        preset,
        cfg,
        args.controller,
        planned_placement(args.device, args.dtype),
        processes=int(os.environ.get("WORLD_SIZE", "1")),
        strategy=args.strategy,
        gradient_checkpointing=args.gradient_checkpointing,
    )
    print(json.dumps({"dry_run": True, "agent": args.agent, **plan}, indent=2))
    return 0


def _clear_stale_stages(run_dir: Path) -> None:
    """--overwrite: remove what an earlier run left that a later --resume would trust.

    Stage markers (controller.json, metrics.json), checkpoints and TensorBoard files of the
    old run would otherwise be read as this run's progress or mixed into its curves.
    """
    shutil.rmtree(run_dir / "checkpoint", ignore_errors=True)
    for name in ("controller.json", "metrics.json", "history.jsonl", "agent.json", "agent.zip"):
        (run_dir / name).unlink(missing_ok=True)
    for events in run_dir.glob("events.out.tfevents.*"):
        events.unlink()


def _check_before_any_work(args: Args, preset) -> None:
    """Flag combinations that would otherwise fail only after minutes of adapter training."""
    ctrl = args.controller
    if args.agent == "fixed" and not ctrl.p_min <= args.fixed_ratio <= ctrl.p_max:
        raise ValueError(
            f"--fixed-ratio {args.fixed_ratio} is outside [p_min, p_max] = [{ctrl.p_min}, "
            f"{ctrl.p_max}]; fix: pass a ratio inside the range (or widen --p-min/--p-max)"
        )
    wanted = args.grpo.num_generations
    if args.agent == "grpo" and wanted is not None and wanted != ctrl.group_size:
        raise ValueError(
            f"--grpo.num-generations {args.grpo.num_generations} differs from --group-size "
            f"{ctrl.group_size}; fix: make them equal (one policy update per round)"
        )
    check_probe_batch([args.agent], ctrl.probe_batch)
    args.check_protocol()
    check_before_work(args, preset, ctrl)


def _controller_stage(args: Args, prep, run_dir: Path, ckpt_dir: Path, config: dict) -> dict:
    """The controller episode, resumed from its last round checkpoint when there is one.

    Returns the finished-episode record (also written to controller.json, which marks the
    stage as done for a later --resume).
    """
    done_path = run_dir / "controller.json"
    if args.resume and done_path.is_file():
        try:
            finished = json.loads(done_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            finished = None
        needed = {
            "learned_ratio",
            "learned_ratio_by_rule",
            "rounds",
            "controller_s",
            "rounds_logged",
            "steps_done",
        }
        if not isinstance(finished, dict) or not needed <= set(finished):
            raise CheckpointError(
                f"{done_path} lacks {sorted(needed - set(finished or {}))}; fix: delete it to "
                "rerun the controller stage, or rerun with --overwrite"
            )
        print(f"controller: done before the interruption, p* = {finished['learned_ratio']:.4f}")
        return finished
    t1 = time.perf_counter()
    env = GraspLoRAEnv(prepared=prep, **asdict(args.controller))
    grpo = args.grpo if args.grpo.seed is not None else replace(args.grpo, seed=args.seed)
    agent = make_agent(args.agent, env, seed=args.seed, grpo=grpo, fixed_ratio=args.fixed_ratio)
    ckpt_path = ckpt_dir / "controller.pt"
    state = None
    if args.resume and ckpt_path.is_file() and resumable(agent):
        state = load_checkpoint(
            ckpt_path, "controller", ("env", "agent", "rounds_logged", "seen_losses")
        )
        env.load_state_dict(state["env"])
        agent.load_state_dict(state["agent"])
    elif args.resume and not resumable(agent):
        print(f"controller ({args.agent}): no round checkpoints for this agent; restarting it")
    rounds_before = state["rounds_logged"] if state else 0
    logger = RoundLogger(run_dir, config, resume_rounds=rounds_before if args.resume else None)
    recorder = RoundRecorder(logger, state["seen_losses"] if state else 0, rounds_before)
    elapsed_before = state["controller_s"] if state else 0.0
    checkpointer = RoundCheckpointer(ckpt_path, recorder, t1, elapsed_before)
    result = run_episode(
        env,
        agent,
        args.seed,
        [recorder, checkpointer],
        resume=state is not None,
        progress=True,
        rounds_before=rounds_before,
    )
    logger.writer.close()
    finished = {
        **result.to_dict(),
        "controller_s": elapsed_before + time.perf_counter() - t1,
        "rounds_logged": recorder.rounds_logged,
    }
    agent.save(run_dir / f"agent{agent.archive_suffix}")  # atomic: every agent renames it in
    process = env.unwrapped.process if result.rounds else None
    lora, start = start_of(
        args.protocol, process, result.learned_ratio, prep.cfg.final_lora, args.continue_steps
    )
    if start is not None:  # single-pass: the final stage continues this adapter, even on resume
        saved = {"state": start, "max_steps": lora.max_steps}
        save_checkpoint(ckpt_dir / "start.pt", saved, "start")
    env.close()
    write_json(done_path, finished)
    by_rule = ", ".join(f"{k} {v:.4f}" for k, v in finished["learned_ratio_by_rule"].items())
    print(
        f"controller ({args.agent}): {finished['rounds']} rounds, p* = "
        f"{finished['learned_ratio']:.4f}; {by_rule}  [{finished['controller_s']:.1f} s]"
    )
    return finished


if __name__ == "__main__":
    run_cli(main, Args)
