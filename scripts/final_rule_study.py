"""Which reading of the probes points the final run to its best ratio? Candidate readings.

    T="--agents thompson random --instances train --seeds 10 --keep-probes --out /tmp/tp"
    .venv/bin/python runners/agent_table.py $T        # 2 min: the episodes with their probes
    .venv/bin/python scripts/final_rule_study.py /tmp/tp.json   # 2 min: the table

Why: on the live pairs the final run meets another curve than the controller run's probes show
(docs/SURROGATE.md, "What regret is scored on"): its loss rises from the lowest ratio on, while
the probe curves are flat up to 0.3-0.5, and the first rounds' curves point closer to the final
runs' best ratio than the last round's. Two readings follow from that, and this script scores
them on stored episodes (no new episode: every rule reads the same probes):

- the round-aware spline's curve at the FIRST round instead of the last
  (`grasp_env.pstar.spline_posterior(..., ahead=-1)`), or pooled over every round (no drift);
- the LOW edge of the near-minimal stretch (the least pruning within kappa posterior sds of the
  minimum) instead of its centre: among ratios the probes cannot tell apart, the final run,
  which trains under the mask from its first step, pays least at the smallest;
- the curve plus the final run's measured capacity cost (`FINAL_COST` of the fitted curve's
  range, rising over the grid): the decision if the final run meets end curve + cost.

Regret is each instance's own (`Instance.regret`): the final-run curve on `real` instances that
have one, the end curve elsewhere (`--score-on train-final`: plus the final run's capacity
cost, `grasp_env.surrogate.FINAL_COST`, on the same episodes). Families are grouped: real with
a final-run curve, real without, moving (moving, morphing, two_minima) and static (the rest).
Printed: mean regret (%) per agent, budget, group and reading; nothing is written. A study,
not a rule: a reading becomes a `--controller.pstar-rule` only after it wins here AND on the
live pairs.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from grasp_env.pstar import PESSIMISM, Probes, SplinePosterior, spline_posterior, with_final_cost
from grasp_env.runs.agent_table import stored_probes
from grasp_env.surrogate import FINAL_COST, Instance, instance_set

KAPPAS = (0.5, 1.0, 2.0)
"""Widths (posterior sds) of the near-minimal stretch whose low edge is read."""


def low_edge(post: SplinePosterior, kappa: float) -> float:
    """The smallest ratio of the contiguous stretch around the argmin within kappa sds."""
    score = post._searched_score(PESSIMISM)
    i0 = int(np.argmin(score))
    near = score <= score[i0] + kappa * float(post.shape_sd[i0])
    lo = i0
    while lo > 0 and near[lo - 1]:
        lo -= 1
    return float(post.grid[lo])


def scored_on(ran: str, score: str) -> list[Instance]:
    """The instances of `score`, checked to be `ran`'s (an episode's `instance` is an index).

    The probes of an episode do not depend on the true curve (the noise unit is the end
    curve's range), so the episodes of `ran` can be scored on a set that differs only there.
    """
    a, b = instance_set(ran), instance_set(score)
    same = len(a) == len(b) and all(
        (x.family, x.params, x.seed) == (y.family, y.params, y.seed)
        for x, y in zip(a, b, strict=False)
    )
    if not same:
        raise SystemExit(
            f"--score-on {score}: its instances are not {ran}'s with another true curve; fix: "
            f"use {ran} or {ran}-final"
        )
    return b


def with_cost(post: SplinePosterior, cost: float = FINAL_COST) -> float:
    """The minimiser of the mean curve plus the final run's capacity cost (`with_final_cost`).

    The decision if the final run meets the end curve plus that cost, as the live grids
    measured.
    """
    return with_final_cost(post, cost, post.grid[0], post.grid[-1]).pessimistic_ratio(0.0)


def group(inst: Instance) -> str:
    """The family group a row of the table is reported under."""
    if inst.family == "real":
        return "real, final-run curve" if "final" in inst.p else "real, end curve"
    return "moving" if inst.family in ("moving", "morphing", "two_minima") else "static"


def readings(probes: Probes, p_min: float, p_max: float) -> dict[str, float]:
    """p* of every candidate reading of one episode's probes."""
    out: dict[str, float] = {}
    posts = {
        "last": spline_posterior(probes, p_min, p_max),
        "first": spline_posterior(probes, p_min, p_max, ahead=-1.0),
        "pooled": spline_posterior(probes, p_min, p_max, drift=False),
    }
    for name, post in posts.items():
        if post is None:
            continue
        out[f"{name}, centre"] = post.ratio
        out[f"{name}, + cost"] = with_cost(post)
        for kappa in KAPPAS:
            out[f"{name}, low edge {kappa:g} sd"] = low_edge(post, kappa)
    return out


def main(argv: list[str] | None = None) -> None:
    """Print the table for an agent-table JSON written with --keep-probes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("table", type=Path, help="runners/agent_table.py --keep-probes JSON")
    parser.add_argument(
        "--score-on",
        default=None,
        help="score the same episodes on this instance set instead (e.g. train-final: the same "
        "instances and probes, the final run's capacity cost on the true curve)",
    )
    args = parser.parse_args(argv)
    payload = json.loads(args.table.read_text(encoding="utf-8"))
    cfg = payload["config"]
    instances = scored_on(cfg["instances"], args.score_on or cfg["instances"])
    ctrl = cfg["experiment"]["controller"]
    scores: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for e, inst, probes in stored_probes(payload, instances, args.table):
        row = scores[(e["agent"], e["rounds"], group(inst))]
        for rule in ("spline", "spline_recent"):
            row[f"rule {rule}"].append(inst.regret(e["pstar"][rule]))
        for name, ratio in readings(probes, ctrl["p_min"], ctrl["p_max"]).items():
            row[name].append(inst.regret(ratio))
    names = list(next(iter(scores.values())))
    where = args.score_on or cfg["instances"]
    print(f"Mean regret (%) on `{where}`, {cfg['seeds']} seeds, from {args.table}")
    print()
    print("| agent | rounds | group | " + " | ".join(names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for (agent, rounds, grp), row in sorted(scores.items()):
        cells = " | ".join(f"{100 * np.mean(row[n]):.2f}" if row[n] else "-" for n in names)
        print(f"| {agent} | {rounds} | {grp} | {cells} |")


if __name__ == "__main__":
    main()
