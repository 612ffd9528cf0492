"""Which instances make a family's mean: the agent table's regret per test instance.

    .venv/bin/python scripts/agent_table_instances.py                      # the default misses
    .venv/bin/python scripts/agent_table_instances.py --families cliff kink --agents thompson

Reads the episodes of `runners/agent_table.py` (docs/results/agent_table.json, written by
its last run) and prints, per family, budget and instance, each agent's mean and worst regret
of its configured p* rule beside the two floors on the same episodes: `floor` (the true family's
form fitted to that agent's probes) and `view` (the true end curve's argmin plus the episode's
fixed micro-dev bias: what no rule that sees only micro-dev losses can beat). A family mean
that misses its target is often one or two instances; this says which, and whether the bias
or the agent's probes are to blame. Nothing is run: seconds.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

import tyro


@dataclass(frozen=True)
class Args:
    """Per-instance regret from an agent table's episodes."""

    table: Path = Path("docs/results/agent_table.json")
    """The agent table's JSON (runners/agent_table.py --out)."""
    families: tuple[str, ...] = ("flat_left", "moving", "morphing", "two_minima")
    """Families to list (the default controller's misses in docs/results/agent_table.md)."""
    agents: tuple[str, ...] = ("thompson", "random")
    """Agents to list, each scored by its configured rule."""
    out: Path | None = None
    """Also write the markdown here."""


def rows(payload: dict, families: tuple[str, ...], agents: tuple[str, ...]) -> list[str]:
    """Markdown table lines: family, rounds, instance, then per agent mean/max, floor, view."""
    names = {i["index"]: i["name"] for i in payload["instances"]}
    rule_of = payload["configured_rule"]
    known = {e["family"] for e in payload["episodes"]}
    for fam in families:
        if fam not in known:
            raise SystemExit(
                f"--families {fam!r} has no episodes in the table; fix: one of {sorted(known)}"
            )
    for agent in agents:
        if agent not in rule_of:
            raise SystemExit(
                f"--agents {agent!r} is not in the table; fix: one of {sorted(rule_of)}"
            )
    head = "| family | rounds | instance | " + " | ".join(
        f"{a} mean (max) | {a} floor | {a} view" for a in agents
    )
    lines = [head + " |", "|" + "---|" * (3 + 3 * len(agents))]
    by_key: dict[tuple, list[dict]] = {}
    for e in payload["episodes"]:
        by_key.setdefault((e["family"], e["rounds"], e["instance"], e["agent"]), []).append(e)
    for fam in families:
        for rounds in payload["config"]["rounds"]:
            for index in sorted({k[2] for k in by_key if k[0] == fam and k[1] == rounds}):
                cells = []
                for agent in agents:
                    eps = by_key.get((fam, rounds, index, agent), [])
                    if not eps:
                        cells += ["-", "-", "-"]
                        continue
                    regret = [100 * e["regret"][rule_of[agent]] for e in eps]
                    floor = statistics.mean(100 * e["regret"]["floor"] for e in eps)
                    view = statistics.mean(100 * e["regret"]["bias_floor"] for e in eps)
                    mean = statistics.mean(regret)
                    cells += [f"{mean:.2f} ({max(regret):.1f})", f"{floor:.2f}", f"{view:.2f}"]
                lines.append(f"| {fam} | {rounds} | `{names[index]}` | " + " | ".join(cells) + " |")
    return lines


def main(args: Args) -> None:
    """Print (and with --out write) the per-instance table."""
    if not args.table.is_file():
        raise SystemExit(
            f"--table {args.table} does not exist; fix: run "
            "`.venv/bin/python runners/agent_table.py` first"
        )
    payload = json.loads(args.table.read_text())
    text = "\n".join(rows(payload, args.families, args.agents)) + "\n"
    print(text, end="")
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main(tyro.cli(Args))
