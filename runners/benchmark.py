"""GRASP against the 8-point grid (and any other agents), side by side, on the same seeds.

    python runners/benchmark.py --agents grpo random --seeds 42 1337 9001
    python runners/benchmark.py --preset tiny --agents grpo --seeds 0 --ratios 0.2 0.6
    python runners/benchmark.py --method paper --agents grpo   # the paper's method
    python runners/benchmark.py --baselines zero_shot source_only ties lorahub

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

    python runners/benchmark.py --agents grpo --controller.train-steps 60 \
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

import resource
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

from agents import AGENT_NAMES, check_probe_batch, make_agent
from grasp_env.config import (
    METHODS,
    ExperimentConfig,
    FanOutConfig,
    default_agent,
    with_values,
)
from grasp_env.env import GraspLoRAEnv
from grasp_env.lm.baselines import BASELINES, run_baseline
from grasp_env.lm.pipeline import check_experiment, final_run, prepare
from grasp_env.runs.checkpoint import maybe_fault
from grasp_env.runs.cli import RunDirArgs, check_used, config_record, experiment_of, run_cli
from grasp_env.runs.controller import run_episode
from grasp_env.runs.dirs import make_run_dir, read_config, save_figure, write_json
from grasp_env.runs.fanout import check_fanout, run_all
from grasp_env.runs.points import RunSpec, keep_prepared, prepared_for
from grasp_env.runs.protocol import continuation_of

AgentName = Literal.__getitem__(AGENT_NAMES)
BaselineName = Literal.__getitem__(BASELINES)


@dataclass(frozen=True)
class Args(RunDirArgs, FanOutConfig, ExperimentConfig):
    """Grid search against controller agents: quality, ratio and wall time."""

    agents: tuple[AgentName, ...] | None = None
    """Agents to compare with the grid (any registry name; default: the method's controller,
    thompson, or grpo under --method paper)."""
    paper_agents: tuple[AgentName, ...] = ()
    """Agents that also run under --method paper beside the grid of this run's method (the
    paper's controller settings, p* rule, committed mask and final-run allocator); reported
    as '<agent> (paper)'."""
    baselines: tuple[BaselineName, ...] = ()
    """The paper's baselines on the same prepared adapters (grasp_env.lm.baselines):
    zero_shot, source_only, target_only, merged_no_prune, ties, dare_linear, dare_ties,
    magnitude_prune (PEFT merges, density = 1 - ratio chosen on dev over --ratios), lorahub."""
    seeds: tuple[int, ...] = (42, 1337, 9001)
    """Seeds (target rows, adapters, data order, agents); --seed is not read."""
    ratios: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
    """The grid's ratios (the paper: 0.1 .. 0.8)."""
    grid_from: Path | None = None
    """Reuse the grid of an earlier benchmark.json with the same preset, task, languages,
    model, merge form, seeds and ratios (e.g. to compare controller settings without paying
    for the grid again). Its seconds are the earlier run's."""


GRID_GROUPS = ("data", "backbone", "source_lora", "target_lora", "merge", "final", "eval")
"""Config groups that shape the grid's points (the controller and GRPO settings do not)."""
AGENT_ONLY = ("final.protocol", "final.continue_steps")
"""Final-run settings only the agents' runs read."""


def _grid_settings(config: dict) -> dict:
    """The settings a grid's points depend on, as dotted paths (from a config record)."""
    flat = dict(leaves_of(config))
    keep = {
        k: v
        for k, v in flat.items()
        if k.split(".")[0] in GRID_GROUPS
        and k not in AGENT_ONLY
        and not k.startswith("data.embedded")
    }
    keep.update({"seeds": flat.get("seeds"), "ratios": flat.get("ratios")})
    return keep


def leaves_of(record: dict, prefix: str = "") -> list[tuple[str, object]]:
    """A nested config record (config.json, benchmark.json's config) as dotted paths."""
    out = []
    for key, value in record.items():
        if isinstance(value, dict):
            out.extend(leaves_of(value, f"{prefix}{key}."))
        else:
            out.append((f"{prefix}{key}", value))
    return out


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass(frozen=True)
class Task:
    """One independent run of the benchmark: a grid point, or an agent's episode + final run."""

    spec: RunSpec
    """The experiment (the seed's) and, for a grid point, the ratio."""
    agent: str | None = None
    """None: the grid point at spec.ratio (or a baseline); else this agent's two runs."""
    baseline: str | None = None
    """A baseline of grasp_env.lm.baselines (its ratios: `ratios`)."""
    ratios: tuple[float, ...] = ()
    """The grid's ratios (a PEFT merge baseline chooses its density over them)."""
    as_method: str | None = None
    """Run the agent under this method's values (--paper-agents) instead of the run's."""

    @property
    def method(self) -> str:
        """The benchmark.json method this task's result belongs to."""
        if self.agent and self.as_method:
            return f"{self.agent} ({self.as_method})"
        return self.agent or self.baseline or "grid"


def _run_task(task: Task) -> dict:
    """Run `task` (in this process or a Ray worker) on its seed's preparation (cached)."""
    prep = prepared_for(task.spec)
    if task.as_method is not None:
        # the preparation (backbone, adapters, splits) does not depend on the method's values
        cfg = with_values(prep.cfg, {"method": task.as_method, **METHODS[task.as_method]})
        prep = replace(prep, cfg=cfg)
    if task.baseline is not None:
        return {**run_baseline(prep, task.baseline, task.ratios), "peak_rss_mb": _peak_rss_mb()}
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
    return _agent(prep, task.agent)


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


def _agent(prep, name: str) -> dict:
    t0 = time.perf_counter()
    cfg = prep.cfg
    env = GraspLoRAEnv(prepared=prep)
    result = run_episode(env, make_agent(name, env, seed=cfg.seed, config=cfg), cfg.seed)
    process = env.unwrapped.process if result.rounds else None
    start = continuation_of(cfg.final, process, result.learned_ratio)
    env.close()
    controller_s = time.perf_counter() - t0
    maybe_fault("benchmark_agent")  # tests: a worker killed between the controller and final run
    run = final_run(prep, result.learned_ratio, "merged", start=start)
    return {
        "protocol": cfg.final.protocol,
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


def _load_grid(args: Args, record: dict) -> tuple[list[dict], list[float], list[str]]:
    """The grid of `--grid-from`, its preparation seconds and its per-seed fingerprints.

    Refused when any setting that shapes the grid differs from this run's, or when the file
    has no fingerprints to check this run's prepared adapters against (`_check_prepared`).
    """
    path = Path(args.grid_from)
    if not path.is_file():
        raise ValueError(f"--grid-from {path}: no such file; fix: give an earlier benchmark.json")
    try:
        earlier = read_config(path)
        config, grid = earlier["config"], earlier["methods"]["grid"]
        per_seed, prepare_s = grid["per_seed"], earlier["prepare_s"]
        fingerprints = earlier.get("fingerprints")
        if not isinstance(config, dict) or not per_seed or "points" not in per_seed[0]:
            raise TypeError("no grid points")
    except (KeyError, TypeError, IndexError, ValueError) as err:
        raise ValueError(
            f"--grid-from {path}: not a benchmark.json of this version ({type(err).__name__}: "
            f"{err}); fix: give one written by runners/benchmark.py, or run the grid again"
        ) from None
    if not fingerprints:
        raise ValueError(
            f"--grid-from {path}: written before benchmark.json recorded the fingerprints of "
            "its prepared adapters, so they cannot be checked against this run's (another "
            "install or cache can build other adapters from the same flags); fix: run the "
            "grid again"
        )
    theirs, mine = _grid_settings(config), _grid_settings(record)
    for key in sorted(set(theirs) | set(mine)):
        if theirs.get(key) != mine.get(key):
            raise ValueError(
                f"--grid-from {path}: its {key}={theirs.get(key)!r} differs from this run's "
                f"{mine.get(key)!r}; fix: use the same setting or run the grid again"
            )
    if earlier.get("metric_conventions") != experiment_of(args).metric_conventions():
        raise ValueError(
            f"--grid-from {path}: its test scores were computed under other metric conventions "
            f"({earlier.get('metric_conventions')}); fix: use the same --eval.rouge/"
            "--eval.bertscore-model or run the grid again"
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
        "ratios": [r.get("ratio") for r in per_seed],
        "test": {m: mean_std([r["test"][m] for r in per_seed]) for m in metrics},
        "test_loss": mean_std([r["test_loss"] for r in per_seed]),
        "seconds": mean_std([r["seconds"] for r in per_seed]),
        "peak_rss_mb": max(r.get("peak_rss_mb", 0.0) for r in per_seed),
        "per_seed": per_seed,
    }
    for key in (
        "seconds_select",
        "controller_s",
        "final_s",
        "final_train_s",
        "final_eval_s",
        "train_s",
        "search_s",
        "eval_s",
    ):
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


def main(args: Args, defaults: Args) -> int:
    """Run the grid and the agents on every seed; write benchmark.json and the plot."""
    started = time.perf_counter()
    if args.agents is None:  # the method's controller; recorded as a default, not an override
        args = replace(args, agents=(default_agent(args.method),))
        defaults = replace(defaults, agents=args.agents)
    if not args.seeds:
        raise ValueError("--seeds is empty; fix: give at least one seed")
    if args.seed != defaults.seed:
        raise ValueError(
            f"--seed {args.seed}: the benchmark runs every seed of --seeds and reads no --seed; "
            "fix: pass --seeds instead"
        )
    if not args.ratios or not all(0.0 <= r <= 1.0 for r in args.ratios):
        raise ValueError(f"--ratios {list(args.ratios)}; fix: give ratios in [0, 1]")
    check_used(args, defaults, tuple(args.agents) + tuple(args.paper_agents))
    check_probe_batch(args.agents, args.controller.probe_batch)
    if args.paper_agents and args.method == "paper":
        raise ValueError(
            "--paper-agents with --method paper: every agent already runs the paper's method; "
            "fix: list them in --agents"
        )
    args.check_run_dir()
    check_experiment(experiment_of(args))
    check_fanout(args)
    record = config_record(args, defaults)
    metric = "em" if args.data.task == "qa" else "rouge_l"
    earlier_grid, earlier_prepare, earlier_prints = (
        _load_grid(args, record) if args.grid_from else (None, None, None)
    )
    data = args.data
    name = args.run_name or f"benchmark-{data.task}-{data.source}-{data.target}"
    run_dir = make_run_dir(args.out_dir, name, args.overwrite)
    per_method, prepare_s, placement, prints = _run_seeds(args, earlier_grid, earlier_prints)
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
            "config": {**record, "grid_from": str(args.grid_from) if args.grid_from else None},
            "prepare_s": prepare_s,
            "fingerprints": prints,
            "placement": placement,
            "workers": {"workers": args.workers, "threads_per_run": args.threads_per_run}
            if not args.in_process
            else {"workers": 1},
            "grid_prepare_s": earlier_prepare,
            "wall_s": time.perf_counter() - started,
            "methods": results,
            "metric_conventions": experiment_of(args).metric_conventions(),
        },
    )
    if predictions:
        write_json(run_dir / "predictions.json", predictions)
    _plot(results, metric, run_dir / "benchmark.png")
    print(_table(results, metric))
    print(f"-> {run_dir / 'benchmark.json'}")
    return 0


def _run_seeds(
    args: Args, earlier_grid: list[dict] | None, earlier_prints: list[str] | None
) -> tuple[dict[str, list[dict]], list[float], dict, list[str]]:
    """Every seed's grid points and agent runs, spread as --workers says.

    Returns (results by method, preparation seconds per seed, placement, fingerprint per
    seed). Each seed is prepared here first (timed: the shared cost, built into the cache
    once) and, with a reused grid, checked against the grid's fingerprint before any of its
    runs. In-process that preparation serves the seed's runs in the earlier benchmark's order
    (grid points, then agents); with Ray each worker loads it from the cache, and this process
    keeps none.
    """
    done: list[tuple[Task, dict | None]] = []
    prepare_s, placement, prints = [], {}, []
    experiment = experiment_of(args)
    for i, seed in enumerate(args.seeds):
        cfg = replace(experiment, seed=seed)
        t0 = time.perf_counter()
        prep = prepare(cfg, progress=False)
        prepare_s.append(time.perf_counter() - t0)
        placement = asdict(prep.placement)
        prints.append(prep.fingerprint())
        if earlier_prints is not None:
            _check_prepared(args, seed, prints[-1], earlier_prints[i])
        tasks = [] if earlier_grid else [Task(RunSpec(cfg, r)) for r in args.ratios]
        tasks += [Task(RunSpec(cfg, 0.0), a) for a in args.agents]
        tasks += [Task(RunSpec(cfg, 0.0), a, as_method="paper") for a in args.paper_agents]
        tasks += [Task(RunSpec(cfg, 0.0), None, b, args.ratios) for b in args.baselines]
        if args.in_process:
            keep_prepared(tasks[0].spec, prep)
            done += zip(tasks, run_all(_run_task, tasks, args), strict=True)
        else:
            done += [(t, None) for t in tasks]
        del prep
    if not args.in_process:
        tasks = [t for t, _ in done]
        done = list(zip(tasks, run_all(_run_task, tasks, args), strict=True))
    per_method: dict[str, list[dict]] = {"grid": []}
    for i, seed in enumerate(args.seeds):
        mine = [(t, r) for t, r in done if t.spec.cfg.seed == seed]
        if earlier_grid is None:
            per_method["grid"].append(_grid([r for t, r in mine if t.method == "grid"]))
        else:
            per_method["grid"].append(earlier_grid[i])
        for t, r in mine:
            if t.method != "grid":
                per_method.setdefault(t.method, []).append(r)
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
                            "ratio": point.get("ratio"),
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
        ratios = ", ".join("-" if r is None else f"{r:.3f}" for r in res["ratios"])
        lines.append(
            f"| {m} | {ratios} | {q[0]:.2f} +- {q[1]:.2f} | {nll[0]:.3f} +- {nll[1]:.3f} | "
            f"{sec[0]:.1f} | {res['speedup_vs_grid_select']:.2f}x | "
            f"{res['speedup_vs_grid']:.2f}x | {res['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    run_cli(main, Args, launchable=False)
