"""Main job: learn the prune ratio with a controller, then the final run at the learned ratio.

    python runners/train_agent.py                                   # embedded default, QA en->ar
    python runners/train_agent.py --preset tiny --task summarization --target zh
    python runners/train_agent.py --method paper                    # the paper's method

Sections: parse config, seed, build (backbone, adapters, merge: cached), controller episode in
GraspLoRA-v1, choose p*, final run at p*, evaluate on the target test split, save, close.
Writes runs/<run-name>/: TensorBoard events, config.json (the resolved config tree and the flags
that override the preset and method), history.jsonl (one object per round), metrics.json and
adapter/ (loadable with peft's AutoPeftModelForCausalLM.from_pretrained).

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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

from agents import AGENT_NAMES, check_probe_batch, make_agent
from grasp_env.config import ExperimentConfig, default_agent, leaves
from grasp_env.env import GraspLoRAEnv
from grasp_env.lm import dist
from grasp_env.lm.device import peak_memory
from grasp_env.lm.export import adapter_stats, export_merged, save_adapter
from grasp_env.lm.pipeline import Continuation, final_run, prepare
from grasp_env.runs.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from grasp_env.runs.cli import (
    RunDirArgs,
    check_used,
    config_record,
    experiment_of,
    run_cli,
)
from grasp_env.runs.controller import RoundCheckpointer, RoundRecorder, run_episode
from grasp_env.runs.dirs import RoundLogger, make_run_dir, read_config, resume_run_dir, write_json
from grasp_env.runs.protocol import continuation_of

AgentName = Literal.__getitem__(AGENT_NAMES)


@dataclass(frozen=True)
class Args(RunDirArgs, ExperimentConfig):
    """Learn the prune ratio of a merged cross-lingual LoRA online, then prune at it."""

    agent: AgentName | None = None
    """Controller (default: thompson; grpo under --method paper): grpo (the GRPO controller),
    thompson, amortised, an SB3 algorithm, random, optuna, or fixed (no controller run:
    --fixed-ratio)."""
    fixed_ratio: float = 0.4
    """--agent fixed only: the ratio of the final run."""
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


def main(args: Args, defaults: Args) -> int:
    """Run the controller episode and the final run; write the run directory."""
    if args.agent is None:  # the method's controller; recorded as a default, not an override
        args = replace(args, agent=default_agent(args.method))
        defaults = replace(defaults, agent=args.agent)
    _check_before_any_work(args, defaults)
    if args.dry_run:
        return _dry_run(args)
    cfg = experiment_of(args)
    name = (
        args.run_name
        or f"{args.agent}-{cfg.data.task}-{cfg.data.source}-{cfg.data.target}-s{cfg.seed}"
    )
    record = config_record(args, defaults)
    run_dir = _run_directory(args, name, record)
    if run_dir is None:
        return 0
    ckpt_dir = run_dir / "checkpoint"
    t0 = time.perf_counter()

    # build: backbone, data, source/target adapters (cached), merge
    prep = prepare(cfg)
    t_prep = time.perf_counter() - t0
    config = {**record, "backbone_path": prep.backbone}
    if not args.resume:
        write_json(run_dir / "config.json", config)

    # learn: one controller episode in GraspLoRA-v1
    finished = _controller_stage(args, prep, run_dir, ckpt_dir, config)

    # final run at p*, then save
    t2 = time.perf_counter()
    run = _final_stage(args, prep, ckpt_dir, finished)
    adapter = _save_adapter(args, prep, run, run_dir)
    final_s = time.perf_counter() - t2 + run.fit.resumed_seconds
    timings = {"prepare_s": t_prep, **prep.timings, "controller_s": finished["controller_s"]}
    timings.update(final_s=final_s, total_s=t_prep + finished["controller_s"] + final_s)
    _write_results(args, prep, run_dir, config, finished, run, adapter, timings)
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


def _final_stage(args: Args, prep, ckpt_dir: Path, finished: dict):
    """The final run at p*, crash-safe through the Trainer's checkpoints (checkpoint/final/).

    Under --final.protocol single-pass it continues the controller run, whose state the
    controller stage left in checkpoint/start.pt.
    """
    start = None
    start_ckpt = ckpt_dir / "start.pt"
    if args.final.protocol == "single-pass" and finished["rounds"] > 0:
        if not start_ckpt.is_file():
            raise CheckpointError(
                f"{start_ckpt} is missing: --final.protocol single-pass continues the controller "
                "run, saved there when the controller stage ended; fix: delete controller.json "
                "to rerun the controller stage, or rerun with --overwrite"
            )
        saved = load_checkpoint(start_ckpt, "start", ("continuation",))
        start = Continuation(**saved["continuation"])
    return final_run(
        prep,
        finished["learned_ratio"],
        "merged",
        progress=True,
        keep_model=True,
        checkpoint_dir=ckpt_dir / "final",
        resume=args.resume,
        start=start,
    )


def _save_adapter(args: Args, prep, run, run_dir: Path) -> dict:
    """adapter/ (PEFT format, naming its backbone), optionally merged/; the adapter's stats."""
    save_adapter(run.model, run_dir / "adapter", base_model=prep.backbone)
    adapter = adapter_stats(run.model, run_dir / "adapter")
    if args.export_merged:
        export_merged(run.model, run_dir / "merged", prep.tokenizer)
        adapter["merged_export"] = str(run_dir / "merged")
    return adapter


def _write_results(args, prep, run_dir, config, finished, run, adapter, timings) -> None:
    """TensorBoard's eval/* and HPARAMS, then metrics.json (which marks the run finished)."""
    from grasp_env.runs.checkpoint import maybe_fault

    cfg = prep.cfg
    metrics = {
        "agent": args.agent,
        **cfg.identity(),
        "backbone": prep.backbone,
        "target_modules": list(prep.target_modules),
        "placement": asdict(prep.placement),
        "learned_ratio": run.ratio,
        "pstar_rule": cfg.controller.pstar_rule,
        "learned_ratio_by_rule": finished["learned_ratio_by_rule"],
        "test": run.test,
        "metric_conventions": cfg.metric_conventions(),
        "test_loss": run.test_loss,
        "dev_loss": run.dev_loss,
        "adapter": adapter,
        "peak_memory": peak_memory(prep.placement),
        "processes": dist.process_count(),
        "strategy": cfg.backbone.strategy if dist.process_count() > 1 else "single",
        "rounds": finished["rounds"],
        "termination": finished.get("termination", ""),
        "protocol": cfg.final.protocol,
        "final_steps": run.fit.steps,
        "overrides": config["overrides"],
        "resumed": bool(args.resume),
        "timings": timings,
    }
    logger = RoundLogger(run_dir, config, resume_rounds=finished["rounds_logged"])
    hparams = {k: v for k, v in leaves(experiment_of(args)).items() if k != "backbone.tiny"}
    hparams["agent"] = args.agent
    logger.final(
        {**run.test, "test_loss": run.test_loss, "learned_ratio": run.ratio},
        {k: v for k, v in hparams.items() if not k.startswith(("data.embedded", "backbone.tiny"))},
        finished["steps_done"] + 1,
    )
    maybe_fault("final_logged")  # tests: a kill between the TensorBoard eval and metrics.json
    write_json(run_dir / "metrics.json", metrics)


def _finished_before(path: Path) -> bool:
    """Whether metrics.json holds a finished run (a torn or foreign file does not)."""
    if not path.is_file():
        return False
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(metrics, dict) and {"learned_ratio", "test", "timings"} <= set(metrics)


def _run_directory(args: Args, name: str, record: dict) -> Path | None:
    """The run directory this process writes (None: a finished run, nothing to do).

    Only the main process writes the real one. Every other process of a multi-process run
    writes an identical private copy in a temporary directory, removed at the end (so the
    stages need no guards); on --resume that copy starts from the real directory's files.
    """
    import tempfile

    real = None
    if dist.is_main():
        if args.resume:
            real = resume_run_dir(args.out_dir, name, record)
        else:
            real = make_run_dir(args.out_dir, name, args.overwrite)
            _clear_stale_stages(real)
    dist.wait_for_everyone()
    done = args.resume and _finished_before(args.out_dir / name / "metrics.json")
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


def _dry_run(args: Args) -> int:
    """Print the run's plan (`grasp_env.lm.plan.describe_run`) as JSON; nothing else."""
    from grasp_env.lm.plan import describe_run, planned_placement

    cfg = experiment_of(args)
    plan = describe_run(
        cfg,
        planned_placement(cfg.backbone.device, cfg.backbone.dtype),
        processes=int(os.environ.get("WORLD_SIZE", "1")),
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


def _check_before_any_work(args: Args, defaults: Args) -> None:
    """Flag combinations that would otherwise fail only after minutes of adapter training."""
    from grasp_env.lm.pipeline import check_experiment

    if args.resume and args.overwrite:
        raise ValueError("--resume and --overwrite together; fix: pick one")
    ctrl = args.controller
    if args.agent == "fixed" and not ctrl.p_min <= args.fixed_ratio <= ctrl.p_max:
        raise ValueError(
            f"--fixed-ratio {args.fixed_ratio} is outside [p_min, p_max] = [{ctrl.p_min}, "
            f"{ctrl.p_max}]; fix: pass a ratio inside the range (or widen --controller.p-min/"
            "--controller.p-max)"
        )
    if args.agent != "fixed" and args.fixed_ratio != defaults.fixed_ratio:
        raise ValueError(
            f"--fixed-ratio {args.fixed_ratio} with --agent {args.agent}: only --agent fixed "
            "reads it; fix: drop --fixed-ratio, or pass --agent fixed"
        )
    check_used(args, defaults, (args.agent,))
    check_probe_batch([args.agent], ctrl.probe_batch)
    args.check_run_dir()
    check_experiment(experiment_of(args))


def _controller_stage(args: Args, prep, run_dir: Path, ckpt_dir: Path, config: dict) -> dict:
    """The controller episode, resumed from its last round checkpoint when there is one.

    Returns the finished-episode record (also written to controller.json, which marks the
    stage as done for a later --resume).
    """
    done_path = run_dir / "controller.json"
    needed = {
        "learned_ratio",
        "learned_ratio_by_rule",
        "rounds",
        "controller_s",
        "rounds_logged",
        "steps_done",
    }
    if args.resume and done_path.is_file():
        try:
            finished = read_config(done_path)
        except ValueError:
            finished = None
        if isinstance(finished, dict) and needed <= set(finished):
            print(f"controller: done before the interruption, p* = {finished['learned_ratio']:.4f}")
            return finished
        print(f"controller: {done_path} is torn or incomplete; redoing the controller stage")
    t1 = time.perf_counter()
    env = GraspLoRAEnv(prepared=prep)
    agent = make_agent(
        args.agent, env, seed=prep.cfg.seed, config=prep.cfg, fixed_ratio=args.fixed_ratio
    )
    ckpt_path = ckpt_dir / "controller.pt"
    state = None
    if args.resume and ckpt_path.is_file():
        state = load_checkpoint(
            ckpt_path, "controller", ("env", "agent", "rounds_logged", "seen_losses")
        )
        env.load_state_dict(state["env"])
        agent.load_state_dict(state["agent"])
    rounds_before = state["rounds_logged"] if state else 0
    logger = RoundLogger(run_dir, config, resume_rounds=rounds_before if args.resume else None)
    recorder = RoundRecorder(logger, state["seen_losses"] if state else 0, rounds_before)
    elapsed_before = state["controller_s"] if state else 0.0
    checkpointer = RoundCheckpointer(ckpt_path, recorder, t1, elapsed_before)
    result = run_episode(
        env,
        agent,
        prep.cfg.seed,
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
    start = continuation_of(prep.cfg.final, process, result.learned_ratio)
    if start is not None:  # single-pass: the final stage continues this run, even on resume
        save_checkpoint(ckpt_dir / "start.pt", {"continuation": asdict(start)}, "start")
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
