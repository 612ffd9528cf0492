"""GRASP against the 8-point grid (and any other agents), side by side, on the same seeds.

    python runners/benchmark.py --agents grpo random --seeds 42 1337 9001
    python runners/benchmark.py --preset tiny --agents grpo --seeds 0 --ratios 0.2 0.6

Per seed, the shared preparation (backbone, adapters, merge: cached) is done once and timed
apart. Then the grid: one final run per ratio, the lowest dev loss chosen; and every agent: one
controller episode in GraspLoRA-v1 plus one final run at its learned ratio. Per method: the
chosen ratio per seed, test metrics mean +- std over seeds, wall time, the process's peak RSS
after the method, and the speedup grid / method under two accountings of the grid's cost:
"all scored" (every grid point trained and scored on test: a ratio sweep, the paper's
protocol) and "dev-select" (every point trained with its dev evaluations, only the chosen one
scored on test: the least a grid needs to choose). An agent's time is its controller episode
plus its final run, test scoring included. "grid-best-test" is the grid point with the best
mean test metric: an oracle to compare quality with, not a method.

    python runners/benchmark.py --agents grpo --train-steps 60 \
        --grid-from runs/benchmark-qa-en-ar/benchmark.json --run-name qa-en-ar-60

reuses an earlier grid to compare controller settings.

    python runners/benchmark.py --workers 2 --threads 1      # runs spread over 2 Ray workers

spreads the runs (each grid point, each agent's controller episode with its final run) over Ray
tasks (`grasp_env.runs.fanout`): the same numbers as one worker at equal --threads, every
run's seconds measured inside its task (so the speedups keep their meaning), a task whose worker
dies retried from its start. Writes <out-dir>/<run-name>/benchmark.json and benchmark.png
(quality against wall time) and prints a table.
"""

from __future__ import annotations

import json
import resource
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from agents import AGENTS, GRPOConfig, check_probe_batch, make_agent
from grasp_env.env import ControllerConfig, GraspLoRAEnv
from grasp_env.lm.pipeline import final_run, prepare
from grasp_env.lm.presets import get_preset
from grasp_env.runs.checkpoint import maybe_fault
from grasp_env.runs.cli import ExperimentArgs, check_before_work, run_cli
from grasp_env.runs.controller import run_episode
from grasp_env.runs.dirs import make_run_dir, save_figure, write_json
from grasp_env.runs.fanout import FanOutArgs, prepared, run_all
from grasp_env.runs.points import RunSpec, keep_prepared
from grasp_env.runs.protocol import ProtocolArgs, start_of


@dataclass(frozen=True)
class Args(ExperimentArgs, FanOutArgs, ProtocolArgs):
    """Grid search against controller agents: quality, ratio and wall time."""

    agents: tuple[str, ...] = ("grpo",)
    """Agents to compare with the grid (any registry name)."""
    seeds: tuple[int, ...] = (42, 1337, 9001)
    """Seeds (target rows, adapters, data order, agents)."""
    ratios: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
    """The grid's ratios (the paper: 0.1 .. 0.8)."""
    controller: Annotated[ControllerConfig, tyro.conf.OmitArgPrefixes] = field(
        default_factory=ControllerConfig
    )
    """Controller-run knobs of every agent (the env's), e.g. --train-steps for the budget."""
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    """GRPO settings of the 'grpo' agent (its seed is each run's seed unless set)."""
    grid_from: Path | None = None
    """Reuse the grid of an earlier benchmark.json with the same preset, task, languages,
    model, merge form, seeds and ratios (e.g. to compare controller settings without paying
    for the grid again). Its seconds are the earlier run's."""


GRID_KEYS = (
    "preset",
    "task",
    "source",
    "target",
    "model",
    "merge_form",
    "source_data",
    "target_data",
    "seeds",
    "ratios",
    "final_importance",
    "final_rebuild_every",
    "decode_batch_size",
    "decode_order",
)
GRID_KEY_DEFAULTS = {"decode_batch_size": 16, "decode_order": "given"}
"""What a benchmark.json written before a key existed ran with."""


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass(frozen=True)
class Task:
    """One independent run of the benchmark: a grid point, or an agent's episode + final run."""

    spec: RunSpec
    """Preset, pipeline config (the seed's) and, for a grid point, the ratio."""
    agent: str | None = None
    """None: the grid point at spec.ratio; else this agent's controller run and final run."""
    args: Args | None = None
    """The benchmark's flags (controller and GRPO settings) for an agent task."""


def _run_task(task: Task) -> dict:
    """Run `task` (in this process or a Ray worker) on its seed's preparation (cached)."""
    prep = prepared(
        task.spec.prep_key(),
        lambda: prepare(get_preset(task.spec.preset), task.spec.cfg, progress=False),
    )
    if task.agent is None:
        run = final_run(prep, task.spec.ratio, "merged")
        return {
            "ratio": run.ratio,
            "dev_loss": run.dev_loss,
            "test": run.test,
            "test_loss": run.test_loss,
            "train_s": run.seconds - run.eval_seconds,
            "eval_s": run.eval_seconds,
            "seconds": run.seconds,
            "predictions": run.predictions,
            "peak_rss_mb": _peak_rss_mb(),
        }
    return _agent(prep, task.agent, task.spec.cfg.seed, task.args)


def _grid(points: list[dict]) -> dict:
    """The grid of one seed from its points: the dev-loss choice and its cost, two ways.

    `seconds` scores every grid point on the test split (what a ratio sweep reports);
    `seconds_select` is what a grid needs to *choose*: every point's training with its dev
    evaluations, and the test scoring of the chosen point only.
    """
    best = min(points, key=lambda r: r["dev_loss"])
    return {
        "ratio": best["ratio"],
        "test": best["test"],
        "test_loss": best["test_loss"],
        "seconds": sum(p["seconds"] for p in points),
        "seconds_select": sum(p["train_s"] for p in points) + best["eval_s"],
        "peak_rss_mb": max(p["peak_rss_mb"] for p in points),
        "points": [
            {k: v for k, v in p.items() if k not in ("seconds", "peak_rss_mb")} for p in points
        ],
    }


def _agent(prep, name: str, seed: int, args: Args) -> dict:
    t0 = time.perf_counter()
    env = GraspLoRAEnv(prepared=prep, **asdict(args.controller))
    result = run_episode(env, make_agent(name, env, seed=seed, grpo=args.grpo), seed)
    process = env.unwrapped.process if result.rounds else None
    lora, start = start_of(
        args.protocol, process, result.learned_ratio, prep.cfg.final_lora, args.continue_steps
    )
    env.close()
    controller_s = time.perf_counter() - t0
    maybe_fault("benchmark_agent")  # tests: a worker killed between the controller and final run
    run = final_run(prep, result.learned_ratio, "merged", lora=lora, start=start)
    return {
        "protocol": args.protocol,
        "final_steps": run.fit.steps,
        "ratio": result.learned_ratio,
        "learned_ratio_by_rule": result.learned_ratio_by_rule,
        "test": run.test,
        "test_loss": run.test_loss,
        "controller_s": controller_s,
        "rounds": result.rounds,
        "termination": result.termination,
        "final_s": run.seconds,
        "final_train_s": run.seconds - run.eval_seconds,
        "final_eval_s": run.eval_seconds,
        "predictions": run.predictions,
        "seconds": time.perf_counter() - t0,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _best_point(grid_per_seed: list[dict], metric: str) -> list[dict]:
    """The grid point with the best mean test `metric` over seeds (an oracle: uses test)."""
    n = len(grid_per_seed[0]["points"])
    means = [
        statistics.mean(g["points"][i]["test"][metric] for g in grid_per_seed) for i in range(n)
    ]
    i = max(range(n), key=means.__getitem__)
    return [
        {**g["points"][i], "seconds": g["seconds"], "peak_rss_mb": g["peak_rss_mb"]}
        for g in grid_per_seed
    ]


def _load_grid(args: Args) -> tuple[list[dict], list[float], list[str]]:
    """The grid of `--grid-from`, its preparation seconds and its per-seed fingerprints.

    Refused when any setting that shapes the grid differs from this run's, or when the file
    has no fingerprints to check this run's prepared adapters against (`_check_prepared`).
    """
    path = Path(args.grid_from)
    if not path.is_file():
        raise ValueError(f"--grid-from {path}: no such file; fix: give an earlier benchmark.json")
    try:
        earlier = json.loads(path.read_text())
        config, grid = earlier["config"], earlier["methods"]["grid"]
        per_seed, prepare_s = grid["per_seed"], earlier["prepare_s"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(
            f"--grid-from {path}: not a benchmark.json ({type(err).__name__}: {err}); fix: give "
            "one written by runners/benchmark.py"
        ) from None
    ours = asdict(args)
    for key in GRID_KEYS:
        mine = list(ours[key]) if isinstance(ours[key], tuple) else ours[key]
        theirs = config.get(key, GRID_KEY_DEFAULTS.get(key))
        if theirs != mine:
            raise ValueError(
                f"--grid-from {path}: its {key}={theirs!r} differs from this run's "
                f"{mine!r}; fix: use the same {key} or run the grid again"
            )
    # written before issue 13, when every adapter was trained by the loop
    theirs, mine = config.get("adapter_trainer", "loop"), args.adapter_trainer
    if theirs != mine:
        raise ValueError(
            f"--grid-from {path}: its adapters were trained with adapter_trainer={theirs!r}, "
            f"this run's with {mine!r} (other adapters, another grid); fix: pass "
            f"--adapter-trainer {theirs} or run the grid again"
        )
    mine = args.mask_scope
    theirs = config.get("mask_scope", config.get("controller", {}).get("mask_scope"))
    if theirs != mine:
        raise ValueError(
            f"--grid-from {path}: its mask_scope={theirs!r} differs from this run's {mine!r}; "
            "fix: use the same --mask-scope or run the grid again"
        )
    if earlier.get("metric_conventions") != args.metric_conventions():
        raise ValueError(
            f"--grid-from {path}: its test scores were computed under other metric conventions "
            f"({earlier.get('metric_conventions')} vs {args.metric_conventions()}); fix: use "
            "the same --rouge/--bertscore-model or run the grid again"
        )
    if not per_seed or "points" not in per_seed[0]:
        raise ValueError(
            f"--grid-from {path}: written by an older benchmark.py without per-point timings; "
            "fix: run the grid again"
        )
    fingerprints = earlier.get("fingerprints")
    if not fingerprints:
        raise ValueError(
            f"--grid-from {path}: written before benchmark.json recorded the fingerprints of "
            "its prepared adapters, so they cannot be checked against this run's (another "
            "install or cache can build other adapters from the same flags); fix: run the "
            "grid again"
        )
    return per_seed, prepare_s, fingerprints


def _check_prepared(args: Args, seed: int, mine: str, theirs: str) -> None:
    """Refuse to pair this run with a reused grid prepared from other weights or rows."""
    if mine != theirs:
        raise ValueError(
            f"--grid-from {args.grid_from}: seed {seed} prepared other adapters or data than "
            f"the grid's (fingerprint {mine} vs {theirs}; another install, library version or "
            "cache trains other weights from the same flags), so the grid is not comparable; "
            "fix: run the grid again in this install (drop --grid-from)"
        )


def _summary(per_seed: list[dict]) -> dict:
    def mean_std(values: list[float]) -> list[float]:
        return [statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0]

    metrics = per_seed[0]["test"].keys()
    out = {
        "ratios": [r["ratio"] for r in per_seed],
        "test": {m: mean_std([r["test"][m] for r in per_seed]) for m in metrics},
        "test_loss": mean_std([r["test_loss"] for r in per_seed]),
        "seconds": mean_std([r["seconds"] for r in per_seed]),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in per_seed),
        "per_seed": per_seed,
    }
    for key in ("seconds_select", "controller_s", "final_s", "final_train_s", "final_eval_s"):
        if key in per_seed[0]:
            out[key] = mean_std([r[key] for r in per_seed])
    return out


def _plot(results: dict, metric: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, res in results.items():
        (q, q_std), (t, t_std) = res["test"][metric], res["seconds"]
        ax.errorbar([t], [q], xerr=[t_std], yerr=[q_std], fmt="o", capsize=3, label=name)
    ax.set(
        xlabel="wall time per seed (s)",
        ylabel=f"test {metric} (mean +- std)",
        title="quality against cost",
    )
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out, dpi=110)


def main(args: Args) -> int:
    """Run the grid and the agents on every seed; write benchmark.json and the plot."""
    started = time.perf_counter()
    unknown = [a for a in args.agents if a not in AGENTS]
    if unknown:
        raise ValueError(f"--agents {unknown} unknown; fix: use any of {sorted(AGENTS)}")
    args.check_protocol()
    if not args.seeds:
        raise ValueError("--seeds is empty; fix: give at least one seed")
    if not args.ratios or not all(0.0 <= r <= 1.0 for r in args.ratios):
        raise ValueError(f"--ratios {list(args.ratios)}; fix: give ratios in [0, 1]")
    check_probe_batch(args.agents, args.controller.probe_batch)
    preset = get_preset(args.preset)
    check_before_work(args, preset, args.controller)
    metric = "em" if args.task == "qa" else "rouge_l"
    earlier_grid, earlier_prepare, earlier_prints = (
        _load_grid(args) if args.grid_from else (None, None, None)
    )
    fan = args.fanout()  # --workers, --threads, Ray installed: before the run dir
    name = args.run_name or f"benchmark-{args.task}-{args.source}-{args.target}"
    run_dir = make_run_dir(args.out_dir, name, args.overwrite)
    per_method, prepare_s, placement, prints = _run_seeds(
        args, preset.name, earlier_grid, earlier_prints, fan
    )
    predictions = _take_predictions(per_method, args.seeds)
    per_method["grid-best-test"] = _best_point(per_method["grid"], metric)
    results = {m: _summary(v) for m, v in per_method.items()}
    grid_all = results["grid"]["seconds"][0]
    grid_select = results["grid"]["seconds_select"][0]
    for res in results.values():
        res["speedup_vs_grid"] = grid_all / res["seconds"][0]
        res["speedup_vs_grid_select"] = grid_select / res["seconds"][0]
    write_json(
        run_dir / "benchmark.json",
        {
            "config": {
                **asdict(args),
                "out_dir": str(args.out_dir),
                "grid_from": str(args.grid_from) if args.grid_from else None,
            },
            "prepare_s": prepare_s,
            "fingerprints": prints,
            "placement": placement,
            "workers": {"workers": fan.workers, "threads_per_run": fan.threads_per_run}
            if not fan.in_process
            else {"workers": 1},
            "grid_prepare_s": earlier_prepare,
            "wall_s": time.perf_counter() - started,
            "methods": results,
            "metric_conventions": args.metric_conventions(),
        },
    )
    if predictions:
        write_json(run_dir / "predictions.json", predictions)
    _plot(results, metric, run_dir / "benchmark.png")
    print(_table(results, metric))
    print(f"-> {run_dir / 'benchmark.json'}")
    return 0


def _run_seeds(
    args: Args,
    preset: str,
    earlier_grid: list[dict] | None,
    earlier_prints: list[str] | None,
    fan,
) -> tuple[dict[str, list[dict]], list[float], dict, list[str]]:
    """Every seed's grid points and agent runs, spread as `fan` says.

    Returns (results by method, preparation seconds per seed, placement, fingerprint per
    seed). Each seed is prepared here first (timed: the shared cost, built into the cache
    once) and, with a reused grid, checked against the grid's fingerprint before any of its
    runs. In-process that preparation serves the seed's runs in the earlier benchmark's order
    (grid points, then agents); with Ray each worker loads it from the cache, and this process
    keeps none.
    """
    done: list[tuple[Task, dict | None]] = []
    prepare_s, placement, prints = [], {}, []
    for i, seed in enumerate(args.seeds):
        cfg = args.pipeline_config(seed=seed)
        t0 = time.perf_counter()
        prep = prepare(get_preset(preset), cfg, progress=False)
        prepare_s.append(time.perf_counter() - t0)
        placement = asdict(prep.placement)
        prints.append(prep.fingerprint())
        if earlier_prints is not None:
            _check_prepared(args, seed, prints[-1], earlier_prints[i])
        tasks = [] if earlier_grid else [Task(RunSpec(preset, cfg, r)) for r in args.ratios]
        tasks += [Task(RunSpec(preset, cfg, 0.0), a, args) for a in args.agents]
        if fan.in_process:
            keep_prepared(tasks[0].spec, prep)
            done += zip(tasks, run_all(_run_task, tasks, fan), strict=True)
        else:
            done += [(t, None) for t in tasks]
        del prep
    if not fan.in_process:
        tasks = [t for t, _ in done]
        done = list(zip(tasks, run_all(_run_task, tasks, fan), strict=True))
    per_method: dict[str, list[dict]] = {"grid": []}
    for i, seed in enumerate(args.seeds):
        mine = [(t, r) for t, r in done if t.spec.cfg.seed == seed]
        if earlier_grid is None:
            per_method["grid"].append(_grid([r for t, r in mine if t.agent is None]))
        else:
            per_method["grid"].append(earlier_grid[i])
        for t, r in mine:
            if t.agent is not None:
                per_method.setdefault(t.agent, []).append(r)
    return per_method, prepare_s, placement, prints


def _take_predictions(per_method: dict[str, list[dict]], seeds: tuple[int, ...]) -> list[dict]:
    """Move the test decodings out of the per-seed records (predictions.json holds them).

    Stored so that a benchmark can be re-scored under other metric conventions without
    decoding again; a grid reused with --grid-from brings none.
    """
    out = []
    for method, runs in per_method.items():
        for seed, run in zip(seeds, runs, strict=True):
            points = run.get("points", [run])
            for point in points:
                if "predictions" in point:
                    out.append(
                        {
                            "method": method,
                            "seed": seed,
                            "ratio": point["ratio"],
                            "predictions": point.pop("predictions"),
                        }
                    )
    return out


def _table(results: dict, metric: str) -> str:
    """Markdown table: one row per method; both grid accountings as speedups."""
    lines = [
        f"| method | ratio per seed | test {metric} | test NLL | wall s / seed "
        "| speedup vs grid (dev-select) | vs grid (all scored) | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m, res in results.items():
        q, nll, sec = res["test"][metric], res["test_loss"], res["seconds"]
        ratios = ", ".join(f"{r:.3f}" for r in res["ratios"])
        lines.append(
            f"| {m} | {ratios} | {q[0]:.2f} +- {q[1]:.2f} | {nll[0]:.3f} +- {nll[1]:.3f} | "
            f"{sec[0]:.1f} | {res['speedup_vs_grid_select']:.2f}x | "
            f"{res['speedup_vs_grid']:.2f}x | {res['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    run_cli(main, Args, launchable=False)
