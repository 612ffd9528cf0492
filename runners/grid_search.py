"""The baseline GRASP replaces: one final run per prune ratio, the best chosen on dev.

    python runners/grid_search.py                                   # default preset, QA en->ar
    python runners/grid_search.py --preset tiny --ratios 0.2 0.6 --baselines target_only

For each ratio: fine-tune the merged adapter with pruning fixed at that ratio, keep the best dev
checkpoint, score it on the test split. The chosen ratio is the one with the lowest dev loss
(answer NLL on the 50-row dev split). Baselines (--baselines): `target_only` (the target LoRA
fine-tuned further, no merge), `target_only_pruned` (the same at every grid ratio: the control
that separates regularisation from transfer) and `merged_no_prune` (the merge at ratio 0).
Writes <out-dir>/<run-name>/metrics.json.
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass
from typing import Literal

from grasp_env.config import ExperimentConfig, FanOutConfig
from grasp_env.lm.pipeline import check_experiment, final_run, prepare
from grasp_env.runs.cli import RunDirArgs, check_used, config_record, experiment_of, run_cli
from grasp_env.runs.dirs import make_run_dir, write_json
from grasp_env.runs.fanout import check_fanout, run_all
from grasp_env.runs.points import RunSpec, final_run_point, keep_prepared

Baseline = Literal["target_only", "target_only_pruned", "merged_no_prune"]


@dataclass(frozen=True)
class Args(RunDirArgs, FanOutConfig, ExperimentConfig):
    """8-point grid search over the prune ratio of the merged adapter."""

    ratios: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
    """Prune ratios of the grid (the paper: 0.1 .. 0.8)."""
    baselines: tuple[Baseline, ...] = ()
    """Extra arms: target_only, target_only_pruned, merged_no_prune."""


def validate(args: Args, defaults: Args) -> None:
    """Reject bad values before any work, naming the flag and the fix."""
    for r in args.ratios:
        if not 0.0 <= r <= 1.0:
            raise ValueError(f"--ratios contains {r}; fix: use fractions in [0, 1]")
    if not args.ratios:
        raise ValueError("--ratios is empty; fix: give at least one ratio")
    check_used(args, defaults, ())
    args.check_run_dir()
    check_experiment(experiment_of(args))
    check_fanout(args)


def main(args: Args, defaults: Args) -> int:
    """Grid search plus the requested baselines; writes metrics.json."""
    validate(args, defaults)
    cfg = experiment_of(args)
    data = cfg.data
    name = args.run_name or f"grid-{data.task}-{data.source}-{data.target}-s{cfg.seed}"
    run_dir = make_run_dir(args.out_dir, name, args.overwrite)
    t0 = time.perf_counter()
    prep = prepare(cfg)
    prep_s = time.perf_counter() - t0

    specs = [RunSpec(cfg, ratio) for ratio in args.ratios]
    keep_prepared(specs[0], prep)  # the in-process path reuses this preparation
    point = functools.partial(final_run_point, progress=args.in_process)
    points = run_all(point, specs, args)
    for p in points:
        print(
            f"merged  ratio {p['ratio']:.2f}: dev loss {p['dev_loss']:.4f}  test {p['test']}  "
            f"({p['seconds']:.1f} s)"
        )
    grid_wall_s = time.perf_counter() - t0 - prep_s
    best = min(points, key=lambda p: p["dev_loss"])
    grid_s = sum(p["seconds"] for p in points)

    baselines: dict[str, list[dict]] = {}
    if "merged_no_prune" in args.baselines:
        baselines["merged_no_prune"] = [final_run(prep, 0.0, "merged").summary()]
    if "target_only" in args.baselines:
        baselines["target_only"] = [final_run(prep, 0.0, "target_only").summary()]
    if "target_only_pruned" in args.baselines:
        baselines["target_only_pruned"] = [
            final_run(prep, r, "target_only").summary() for r in args.ratios
        ]
    for arm, runs in baselines.items():
        for run in runs:
            print(
                f"{arm:<20} ratio {run['ratio']:.2f}: dev loss {run['dev_loss']:.4f}  "
                f"test {run['test']}"
            )

    metrics = {
        "agent": "grid",
        **cfg.identity(),
        "backbone": prep.backbone,
        "placement": asdict(prep.placement),
        "selected_ratio": best["ratio"],
        "selection": "lowest dev loss",
        "test": best["test"],
        "metric_conventions": cfg.metric_conventions(),
        "test_loss": best["test_loss"],
        "points": points,
        "baselines": baselines,
        "timings": {
            **prep.timings,
            "prepare_s": prep_s,
            "grid_s": grid_s,
            "per_run_s": [p["seconds"] for p in points],
            "grid_wall_s": grid_wall_s,
            "total_s": time.perf_counter() - t0,
        },
        "config": config_record(args, defaults),
        "workers": {"workers": args.workers, "threads_per_run": args.threads_per_run}
        if not args.in_process
        else {"workers": 1},
    }
    write_json(run_dir / "metrics.json", metrics)
    print(f"selected ratio {best['ratio']} (dev loss {best['dev_loss']:.4f}); test {best['test']}")
    print(
        f"grid of {len(points)} runs: {grid_s:.1f} s of runs, {grid_wall_s:.1f} s wall; total "
        f"{metrics['timings']['total_s']:.1f} s"
        f" -> {run_dir / 'metrics.json'}"
    )
    return 0


if __name__ == "__main__":
    run_cli(main, Args, launchable=False)
