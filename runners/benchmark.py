"""GRASP against the 8-point grid (and any other agents), side by side, on the same seeds.

    python runners/benchmark.py --agents grpo random --seeds 42 1337 9001
    python runners/benchmark.py --preset tiny --agents grpo --seeds 0 --ratios 0.2 0.6

Per seed, the shared preparation (backbone, adapters, merge: cached) is done once and timed
apart. Then the grid: one final run per ratio, the lowest dev loss chosen; and every agent: one
controller episode in GraspLoRA-v0 plus one final run at its learned ratio. Per method: the
chosen ratio per seed, test metrics mean +- std over seeds, wall time (grid: all its final runs;
agent: controller episode + final run), the process's peak RSS after the method, and the
speedup grid / method. Writes <out-dir>/<run-name>/benchmark.json and benchmark.png
(quality against wall time) and prints a table.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents import AGENTS, make_agent  # noqa: E402
from grasp_env.cli import ExperimentArgs, run_cli  # noqa: E402
from grasp_env.env import GraspLoRAEnv  # noqa: E402
from grasp_env.pipeline import final_run, prepare  # noqa: E402
from grasp_env.presets import get_preset  # noqa: E402
from grasp_env.runs import make_run_dir, write_json  # noqa: E402


@dataclass(frozen=True)
class Args(ExperimentArgs):
    """Grid search against controller agents: quality, ratio and wall time."""

    agents: tuple[str, ...] = ("grpo",)
    """Agents to compare with the grid (any registry name)."""
    seeds: tuple[int, ...] = (42, 1337, 9001)
    """Seeds (target rows, adapters, data order, agents)."""
    ratios: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
    """The grid's ratios (the paper: 0.1 .. 0.8)."""


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _grid(prep, ratios) -> dict:
    t0 = time.perf_counter()
    runs = [final_run(prep, r, "merged") for r in ratios]
    best = min(runs, key=lambda r: r.dev_loss)
    return {
        "ratio": best.ratio,
        "test": best.test,
        "test_loss": best.test_loss,
        "seconds": time.perf_counter() - t0,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _agent(prep, name: str, seed: int) -> dict:
    t0 = time.perf_counter()
    env = GraspLoRAEnv(prepared=prep)
    agent = make_agent(name, env, seed=seed).learn(seed=seed)
    finished = getattr(agent, "finished", None)
    ratio = finished["learned_ratio"] if finished else env.learned_ratio()
    controller_s = time.perf_counter() - t0
    run = final_run(prep, ratio, "merged")
    return {
        "ratio": ratio,
        "test": run.test,
        "test_loss": run.test_loss,
        "controller_s": controller_s,
        "seconds": time.perf_counter() - t0,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _summary(per_seed: list[dict]) -> dict:
    def mean_std(values: list[float]) -> list[float]:
        return [statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0]

    metrics = per_seed[0]["test"].keys()
    return {
        "ratios": [r["ratio"] for r in per_seed],
        "test": {m: mean_std([r["test"][m] for r in per_seed]) for m in metrics},
        "test_loss": mean_std([r["test_loss"] for r in per_seed]),
        "seconds": mean_std([r["seconds"] for r in per_seed]),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in per_seed),
        "per_seed": per_seed,
    }


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
    fig.savefig(out, dpi=110)


def main(args: Args) -> int:
    """Run the grid and the agents on every seed; write benchmark.json and the plot."""
    unknown = [a for a in args.agents if a not in AGENTS]
    if unknown:
        raise ValueError(f"--agents {unknown} unknown; fix: use any of {sorted(AGENTS)}")
    if not args.seeds:
        raise ValueError("--seeds is empty; fix: give at least one seed")
    preset = get_preset(args.preset)
    name = args.run_name or f"benchmark-{args.task}-{args.source}-{args.target}"
    run_dir = make_run_dir(args.out_dir, name, args.overwrite)
    per_method: dict[str, list[dict]] = {"grid": []}
    prepare_s = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        cfg = args.pipeline_config(seed=seed)
        prep = prepare(preset, cfg, progress=False)
        prepare_s.append(time.perf_counter() - t0)
        per_method["grid"].append(_grid(prep, args.ratios))
        for agent in args.agents:
            per_method.setdefault(agent, []).append(_agent(prep, agent, seed))
    results = {m: _summary(v) for m, v in per_method.items()}
    grid_s = results["grid"]["seconds"][0]
    for res in results.values():
        res["speedup_vs_grid"] = grid_s / res["seconds"][0]
    metric = "em" if args.task == "qa" else "rouge_l"
    write_json(
        run_dir / "benchmark.json",
        {
            "config": {**asdict(args), "out_dir": str(args.out_dir)},
            "prepare_s": prepare_s,
            "methods": results,
        },
    )
    _plot(results, metric, run_dir / "benchmark.png")
    print(
        f"| method | ratio per seed | test {metric} | test NLL | wall s / seed | speedup "
        "| peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|")
    for m, res in results.items():
        q, nll, sec = res["test"][metric], res["test_loss"], res["seconds"]
        ratios = ", ".join(f"{r:.3f}" for r in res["ratios"])
        print(
            f"| {m} | {ratios} | {q[0]:.2f} +- {q[1]:.2f} | {nll[0]:.3f} +- {nll[1]:.3f} | "
            f"{sec[0]:.1f} | {res['speedup_vs_grid']:.2f}x | {res['peak_rss_mb']:.0f} |"
        )
    print(f"-> {run_dir / 'benchmark.json'}")
    return 0


if __name__ == "__main__":
    run_cli(main, Args)
