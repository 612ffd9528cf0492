"""Issue 15's lever tables: time per phase, both speedups (dev-select first) and paired quality.

    .venv/bin/python scripts/speed_report.py docs/results/speed/qa-en-ar \
        docs/results/speed/qa-en-ar-single ... --plot docs/img/speed-levers-qa-en-ar.png
    .venv/bin/python scripts/speed_report.py --goal docs/results/speed-final/*/

The first directory is the reference (the paper protocol with its own grid); every other one
is a lever run with --grid-from that grid. One row per run, for the 'grpo' agent: the ratio per
seed; the wall seconds of its controller run, of its final run (or continuation) without test
decoding, and of test decoding; the speedup over the grid under the dev-select and all-scored
accountings; the paired difference of the headline test metric (EM for QA, ROUGE-L for
summarisation) to the grid's dev-selected point and to the reference, mean +- std over seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def _load(directory: Path) -> dict:
    return json.loads((directory / "benchmark.json").read_text())


def _paired(a: list[float], b: list[float]) -> tuple[float, float]:
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    return statistics.mean(diffs), statistics.stdev(diffs) if len(diffs) > 1 else 0.0


def rows(dirs: list[Path], agent: str = "grpo") -> tuple[str, list[dict]]:
    """The metric name and one record per run directory (the first is the reference)."""
    ref = _load(dirs[0])
    metric = "em" if ref["config"]["task"] == "qa" else "rouge_l"
    grid = [r["test"][metric] for r in ref["methods"]["grid"]["per_seed"]]
    ref_q = [r["test"][metric] for r in ref["methods"][agent]["per_seed"]]
    out = []
    for d in dirs:
        bench = _load(d)
        res = bench["methods"][agent]
        per_seed = res["per_seed"]
        q = [r["test"][metric] for r in per_seed]
        out.append(
            {
                "name": d.name,
                "ratios": [r["ratio"] for r in per_seed],
                "quality": res["test"][metric],
                "controller_s": statistics.mean(r["controller_s"] for r in per_seed),
                "final_train_s": statistics.mean(r["final_train_s"] for r in per_seed),
                "decode_s": statistics.mean(r["final_eval_s"] for r in per_seed),
                "seconds": res["seconds"][0],
                "select": res["speedup_vs_grid_select"],
                "all": res["speedup_vs_grid"],
                "vs_grid": _paired(q, grid),
                "vs_ref": _paired(q, ref_q),
                "rounds": [r["rounds"] for r in per_seed],
            }
        )
    return metric, out


def table(metric: str, records: list[dict]) -> str:
    """Markdown: dev-select first, then all scored; paired differences mean +- std."""
    lines = [
        f"| run | p* per seed | rounds | controller s | final/continuation s | decoding s | "
        f"total s | speedup dev-select | speedup all scored | test {metric} | paired vs grid "
        "| paired vs paper protocol |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        ratios = ", ".join(f"{x:.2f}" for x in r["ratios"])
        rounds = ", ".join(str(x) for x in r["rounds"])
        lines.append(
            f"| {r['name']} | {ratios} | {rounds} | {r['controller_s']:.1f} | "
            f"{r['final_train_s']:.1f} | {r['decode_s']:.1f} | {r['seconds']:.1f} | "
            f"{r['select']:.2f}x | {r['all']:.2f}x | {r['quality'][0]:.2f} +- "
            f"{r['quality'][1]:.2f} | {r['vs_grid'][0]:+.2f} +- {r['vs_grid'][1]:.2f} | "
            f"{r['vs_ref'][0]:+.2f} +- {r['vs_ref'][1]:.2f} |"
        )
    return "\n".join(lines)


LABELS = {
    "": "paper protocol",
    "-single": "single pass",
    "-settle-single": "settle + single pass",
    "-fast-single": "fast + single pass",
    "-fast-settle-single": "fast + settle + single pass",
}
"""Run-name suffix (after the pair's reference name) -> the combination it ran."""


def _rank(suffix: str) -> int:
    """Table order of a run-name suffix (LABELS' order; unknown suffixes last)."""
    order = list(LABELS)
    return order.index(suffix) if suffix in order else len(order)


def verdict(mean: float, std: float) -> str:
    """'within' one paired std of the grid's selected point, or 'above' / 'below' it."""
    if abs(mean) <= std:
        return "within"
    return "above" if mean > 0 else "below"


def goal_rows(dirs: list[Path], agent: str = "grpo") -> list[dict]:
    """The four-pair table's records: runs grouped by pair, each against its pair's grid.

    The reference of a pair is its run with a grid of its own (no --grid-from); the others
    reused that grid. Goal met: dev-select >= 4x, all scored >= 8x and quality not below.
    """
    groups: dict[tuple[str, str], list[Path]] = {}
    for d in dirs:
        if not (d / "benchmark.json").is_file():
            print(f"note: {d} has no benchmark.json (unfinished run): left out", file=sys.stderr)
            continue
        config = _load(d)["config"]
        groups.setdefault((config["task"], config["target"]), []).append(d)
    out = []
    for (task, target), members in groups.items():
        refs = [d for d in members if not _load(d)["config"].get("grid_from")]
        if len(refs) != 1:
            raise SystemExit(f"{task} {target}: need exactly one run with its own grid")
        ref = refs[0]
        ordered = sorted(members, key=lambda d, ref=ref: _rank(d.name[len(ref.name) :]))
        metric, records = rows(ordered, agent)
        grid = _load(ref)["methods"]["grid"]
        for d, r in zip(ordered, records, strict=True):
            suffix = d.name[len(ref.name) :]
            judged = verdict(*r["vs_grid"])
            met = r["select"] >= 4 and r["all"] >= 8 and judged != "below"
            out.append(
                {
                    **r,
                    "pair": f"{'QA' if task == 'qa' else 'Sum'} en->{target}",
                    "label": LABELS.get(suffix, suffix.lstrip("-")),
                    "metric": "EM" if metric == "em" else "ROUGE-L",
                    "grid_s": (grid["seconds"][0], grid["seconds_select"][0]),
                    "verdict": judged,
                    "met": met,
                }
            )
    return out


def goal_table(records: list[dict]) -> str:
    """Markdown: pair, combination, both speedups (dev-select first), seconds, quality, goal."""
    lines = [
        "| pair | GRASP | speedup dev-select | speedup all scored | GRASP s per seed: "
        "controller / final or continuation / test scoring | grid s per seed: all scored / "
        "dev-select | paired vs grid's selected point | goal met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        mean, std = r["vs_grid"]
        lines.append(
            f"| {r['pair']} | {r['label']} | {r['select']:.2f}x | {r['all']:.2f}x | "
            f"{r['controller_s']:.1f} / {r['final_train_s']:.1f} / {r['decode_s']:.1f} | "
            f"{r['grid_s'][0]:.0f} / {r['grid_s'][1]:.0f} | {r['metric']} {mean:+.2f} +- "
            f"{std:.2f} ({r['verdict']}) | {'**yes**' if r['met'] else 'no'} |"
        )
    return "\n".join(lines)


def plot(metric: str, records: list[dict], out: Path) -> None:
    """Stacked seconds per phase per run, and the paired quality difference to the grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from grasp_env.runs.dirs import save_figure

    names = [r["name"] for r in records]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 0.5 * len(names) + 2.5), sharey=True)
    left = [0.0] * len(names)
    for key, label in (
        ("controller_s", "controller"),
        ("final_train_s", "final / continuation"),
        ("decode_s", "test scoring (NLL + decoding)"),
    ):
        values = [r[key] for r in records]
        ax1.barh(names, values, left=left, label=label)
        left = [a + b for a, b in zip(left, values, strict=True)]
    for i, r in enumerate(records):
        ax1.text(left[i], i, f" {r['select']:.1f}x / {r['all']:.1f}x", va="center", fontsize=8)
    ax1.set(xlabel="seconds per seed (speedup dev-select / all scored)")
    ax1.set_xlim(0, max(left) * 1.3)
    ax1.invert_yaxis()
    ax1.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, fontsize=8)
    means = [r["vs_grid"][0] for r in records]
    stds = [r["vs_grid"][1] for r in records]
    ax2.errorbar(means, names, xerr=stds, fmt="o", capsize=3)
    ax2.axvline(0, color="grey", lw=0.8)
    ax2.set(xlabel=f"test {metric}: GRASP - grid (mean +- std, seeds)")
    fig.tight_layout()
    save_figure(fig, out, dpi=110)


def main() -> int:
    """Print the table; draw the figure when asked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--agent", default="grpo")
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument(
        "--goal",
        action="store_true",
        help="the four-pair table: runs of several pairs, each pair's own-grid run its reference",
    )
    args = parser.parse_args()
    if args.goal:
        print(goal_table(goal_rows(args.dirs, args.agent)))
        return 0
    metric, records = rows(args.dirs, args.agent)
    print(table(metric, records))
    if args.plot:
        plot(metric, records, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
