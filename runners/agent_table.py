"""The agent table: every registered agent on the surrogate gym's test instances, in one command.

    python runners/agent_table.py                           # the table (docs/results/agent_table)
    python runners/agent_table.py --sb3 full                # SB3 agents on every instance too
    python runners/agent_table.py --agents grpo thompson --rounds 6 --out /tmp/t
    python runners/agent_table.py --grpo.learning-rate 0.5  # a GRPO setting, every episode
    python runners/agent_table.py --report-only             # tables and plot from the JSON
    python runners/agent_table.py --merge-from /tmp/a /tmp/b --out /tmp/ab

Every agent of the registry (`agents.AGENT_NAMES`, `fixed` excepted: the static ratios replace
it) and grpo-paper (the registry's grpo with `--method paper`'s config) runs whole controller
episodes of `grasp_env/GraspLoRASurrogate-v1` on each instance at 15 and 6 rounds (the paper's
150 steps, and a short budget), seeds 0 .. --seeds - 1. Reported: the regret of p* under
spline_recent, spline and best_reward (the paper's) and each agent's configured rule, two floors,
the static ratios 0.1 .. 0.8, the best of them in hindsight and the oracle, as mean +- standard
error per curve family, the paired difference to random, and wall time
(`grasp_env.runs.agent_table`). The SB3 agents run on the first instance of each family by
default (`--sb3 subset`: their episodes cost 5-30x the others'); `--sb3 full` runs them on all.

Flags of the config tree reach the agents: `--controller.*` (every agent's env), `--grpo.*`
(grpo), `--thompson.*` (thompson), `--method paper` (every agent in the paper's method). Flags
the table sets or nothing here reads (`--controller.train-steps`: --rounds sets the budget;
`--seed`: --seeds; `--preset`, `--task` and every LM flag) are errors (exit 2).

Writes <out>.json (every episode), <out>.md (the command and wall time at the top), <out>.png
and TensorBoard event files under <out>_tb/<agent>-<rounds>r/ (`regret/<rule>` per episode,
`family/<family>` at the end, the config as text first); prints the headline table.
"""

from __future__ import annotations

import os
import time

_STARTED = time.perf_counter()
"""The wall time the report records counts from here (before the heavy imports)."""

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    # Before numpy loads: the fits are small matrices, where BLAS threads only cost.
    os.environ.setdefault(_var, "1")

import shlex  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, Literal  # noqa: E402

import tyro  # noqa: E402

from grasp_env.config import (  # noqa: E402
    AdapterConfig,
    BackboneConfig,
    DataConfig,
    EvalConfig,
    ExperimentConfig,
    FinalConfig,
    MergeConfig,
    overrides,
)
from grasp_env.runs import agent_table as table  # noqa: E402
from grasp_env.runs.cli import experiment_of, run_cli  # noqa: E402
from grasp_env.surrogate import FAMILIES  # noqa: E402

TableAgent = Literal.__getitem__(table.TABLE_AGENTS)
Family = Literal.__getitem__(FAMILIES)
DEFAULT_OUT = Path("docs/results/agent_table")


@dataclass(frozen=True)
class Args(ExperimentConfig):
    """Regret of every agent's p* on the surrogate gym's instances: the agent table."""

    # The surrogate env trains no LM: the LM's groups are not flags here (a flag of theirs is
    # an unrecognised option, exit 2); --preset, --task and --seed are refused by name.
    data: Annotated[DataConfig, tyro.conf.Suppress] = field(default_factory=DataConfig)
    backbone: Annotated[BackboneConfig, tyro.conf.Suppress] = field(default_factory=BackboneConfig)
    source_lora: Annotated[AdapterConfig, tyro.conf.Suppress] = field(
        default_factory=lambda: ExperimentConfig().source_lora
    )
    target_lora: Annotated[AdapterConfig, tyro.conf.Suppress] = field(default_factory=AdapterConfig)
    merge: Annotated[MergeConfig, tyro.conf.Suppress] = field(default_factory=MergeConfig)
    final: Annotated[FinalConfig, tyro.conf.Suppress] = field(default_factory=FinalConfig)
    eval: Annotated[EvalConfig, tyro.conf.Suppress] = field(default_factory=EvalConfig)

    instances: Literal["test-final", "train-final", "test", "train", "smoke"] = "test-final"
    """Instance set (`grasp_env.surrogate.instance_set`): test-final (the report, since
    2026-12-07's seventh session), train-final (tuning): every instance's final run pays the
    capacity cost the live grids measured (`Instance.final_cost`; `real` instances with a
    measured final-run grid are scored on it); test / train: the same instances whose
    synthetic final runs meet the controller run's end curve (issue 22's first semantics);
    smoke (one per family)."""
    seeds: int = 10
    """Episodes per instance, agent and budget (seeds 0 .. seeds-1)."""
    rounds: tuple[int, ...] = (15, 6)
    """Budgets in rounds of --controller.update-interval optimizer steps."""
    agents: tuple[TableAgent, ...] = table.TABLE_AGENTS
    """Agents to run (default: all)."""
    sb3: Literal["subset", "full"] = "subset"
    """subset: the SB3 agents (ppo, a2c, sac, td3, tqc) on the first instance of each family
    only, every seed and budget; full: on every instance (about 3x the wall time)."""
    families: tuple[Family, ...] = ()
    """Only these curve families (default: all)."""
    processes: int = 1
    """Processes: 1 or 2 (2 only on an otherwise idle 2-core machine)."""
    out: Path = DEFAULT_OUT
    """Output stem: <out>.json, <out>.md, <out>.png, <out>_tb/."""
    report_only: bool = False
    """Rewrite <out>.md and <out>.png from <out>.json without running anything (the summary is
    recomputed from its episodes, so a changed summary rule re-renders old runs)."""
    merge_from: tuple[Path, ...] = ()
    """Combine these earlier outputs' episodes (e.g. one run per budget) into <out>.json/.md/
    .png and <out>_tb without running anything."""
    keep_probes: bool = False
    """Store every probe (round, ratio, loss) of every episode in the JSON."""


def command_line(argv: list[str]) -> str:
    """The command as recorded at the top of the report."""
    args = f" {shlex.join(argv)}" if argv else ""
    return f"nice -n 10 .venv/bin/python runners/agent_table.py{args}"


def main(args: Args, defaults: Args) -> int:
    """Run the table (or rewrite/merge earlier ones); write and print it."""
    if args.report_only and args.merge_from:
        raise ValueError("--report-only with --merge-from; fix: give one of them")
    if args.report_only or args.merge_from:
        if args.report_only:
            payload = table.load_payload(args.out)
            payload["summary"] = table.summarise_payload(payload)  # from its episodes
            text = table.report(payload, args.out)
        else:
            payload = table.merge([table.load_payload(p) for p in args.merge_from])
            payload["command"] += " && " + command_line(sys.argv[1:])
            text = table.write_outputs(payload, args.out)
        print(_headline(text))
        return 0
    cfg, base = experiment_of(args), experiment_of(defaults)
    table.check_settings(cfg, base, tuple(args.agents))
    spec = table.TableSpec(
        instances=args.instances,
        seeds=args.seeds,
        rounds=tuple(args.rounds),
        agents=tuple(args.agents),
        sb3=args.sb3,
        families=tuple(args.families),
        processes=args.processes,
        keep_probes=args.keep_probes,
    )
    spec.check()
    changed = overrides(cfg, base)
    paper = table.paper_config({k: v for k, v in changed.items() if k.startswith("controller.")})
    payload = table.run_table(
        spec,
        cfg,
        paper,
        command=command_line(sys.argv[1:]),
        overrides_given=changed,
        started=_STARTED,
    )
    text = table.write_outputs(payload, args.out)
    print(_headline(text))
    print(
        f"{payload['seconds']:.0f} s ({payload['seconds'] / 60:.1f} min), "
        f"{payload['n_episodes']} episodes -> {args.out}.json/.md/.png, {args.out}_tb/"
    )
    return 0


def _headline(text: str) -> str:
    """The report's top: command, wall time and the headline tables."""
    keep, seen = [], 0
    for line in text.splitlines():
        if line.startswith("## ") and "configured p* rule" not in line:
            break
        if line.startswith("- ") and not line.startswith("- †") and seen == 0:
            continue  # the how-to-read bullets stay in the file
        if line.startswith("## "):
            seen += 1
        keep.append(line)
    return "\n".join(keep)


if __name__ == "__main__":
    run_cli(main, Args, launchable=False)
