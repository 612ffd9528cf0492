"""Write docs/RESULTS.md, the page of current numbers, from the result files.

    .venv/bin/python scripts/results_page.py

Reads the live benchmarks (docs/results/live/<pair>/benchmark.json, written by
scripts/live_benchmarks.sh), the re-runs of a changed default controller on the same prepared
state (RERUNS: docs/results/live-bracket/<pair>/benchmark.json, `runners/benchmark.py
--grid-from`; applied in order, their controller rows replace the older ones, which stay on the
page under a suffix that names what changed), the live runs of options that did not become the
default (ALTERNATIVES: docs/results/live-rule/, added under a suffix) and the surrogate agent
table (docs/results/agent_table.json, written by
runners/agent_table.py), and writes docs/RESULTS.md and
docs/img/results-quality-cost.png. Every number on the page comes from those files; the
commands that made them are on the page.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from grasp_env.config import DEFAULT_PAIRS

ROOT = Path(__file__).resolve().parents[1]
LIVE = ROOT / "docs" / "results" / "live"
RERUNS: tuple[tuple[Path, str], ...] = (
    (ROOT / "docs" / "results" / "live-bracket", " (before bracketing)"),
)
"""Re-runs of the default controller, oldest first, each with the suffix its predecessor's rows
get: bracketing probes became Thompson's default."""
ALTERNATIVES: tuple[tuple[Path, str], ...] = (
    (ROOT / "docs" / "results" / "live-rule", " (final ratio by spline_recent)"),
)
"""Live runs of an option that did not become the default, on the same prepared state: their
controller rows are added under the suffix (every agent's final ratio read by spline_recent,
`--controller.pstar-rule spline_recent`)."""
RERUN_SUFFIX = RERUNS[-1][1]
PAIRS = tuple(DEFAULT_PAIRS)
ORDER = (
    "grid",
    "grid-best-test",
    "thompson",
    "thompson (final ratio by spline_recent)",
    "thompson (before bracketing)",
    "grpo",
    "grpo (final ratio by spline_recent)",
    "grpo (paper)",
    "amortised",
    "amortised (final ratio by spline_recent)",
    "random",
    "random (final ratio by spline_recent)",
    "zero_shot",
    "source_only",
    "target_only",
    "merged_no_prune",
    "ties",
    "dare_linear",
    "dare_ties",
    "magnitude_prune",
    "lorahub",
)
LABELS = {
    "grid": "8-point grid, dev-selected",
    "grid-best-test": "grid point with the best mean test score (oracle)",
    "grpo": "GRASP, GRPO controller (default method's settings)",
    "grpo (paper)": "GRASP, `--method paper`",
    "thompson": "GRASP, Thompson controller (the default)",
    "thompson (final ratio by spline_recent)": "GRASP, Thompson controller, final ratio read "
    "by `spline_recent` (not the default)",
    "thompson (before bracketing)": "GRASP, Thompson controller, plain draws (default until "
    "2026-12-07)",
    "grpo (final ratio by spline_recent)": "GRASP, GRPO controller, final ratio read by "
    "`spline_recent`",
    "amortised (final ratio by spline_recent)": "GRASP, amortised controller, final ratio read "
    "by `spline_recent`",
    "random (final ratio by spline_recent)": "GRASP loop, random proposals, final ratio read by "
    "`spline_recent`",
    "amortised": "GRASP, amortised controller (PPO policy trained on the surrogate)",
    "random": "GRASP loop, random proposals",
    "zero_shot": "zero-shot (no adapter)",
    "source_only": "source adapter only",
    "target_only": "target-only LoRA",
    "merged_no_prune": "merge without pruning",
    "ties": "TIES merge (PEFT)",
    "dare_linear": "DARE linear (PEFT)",
    "dare_ties": "DARE TIES (PEFT)",
    "magnitude_prune": "magnitude-prune merge (PEFT)",
    "lorahub": "LoRAHub",
}


def _ms(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _phases(method: str, run: dict) -> tuple[float, float, float]:
    """(training, search/probing, decoding) seconds of one seed's run of `method`."""
    if method == "grid":  # choosing needs every point trained, the chosen one decoded
        points = run["points"]
        chosen = min(points, key=lambda p: p["dev_loss"])
        return sum(p["train_s"] for p in points), 0.0, chosen["eval_s"]
    if method == "grid-best-test":  # an oracle: every point trained and decoded
        return run["seconds"] - run["eval_s"], 0.0, run["eval_s"]
    if "controller_s" in run:
        return run["final_train_s"], run["controller_s"], run["final_eval_s"]
    return run.get("train_s", 0.0), run.get("search_s", 0.0), run.get("eval_s", 0.0)


def pair_table(pair: str, bench: dict) -> tuple[list[str], list[dict]]:
    """The markdown rows of one pair and the points of the plot."""
    methods = bench["methods"]
    metric = "em" if pair.startswith("qa") else "rouge_l"
    grid = [run["test"][metric] for run in methods["grid"]["per_seed"]]
    lines = [
        f"### {pair.replace('-', ' en->')} ({metric}, {len(grid)} seeds)",
        "",
        f"| method | ratio per seed | test {metric} | paired diff to the grid's choice | "
        "vs grid | training s | search / probing s | decoding s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    points = []
    for method in [m for m in ORDER if m in methods] + [m for m in methods if m not in ORDER]:
        runs = methods[method]["per_seed"]
        scores = [run["test"][metric] for run in runs]
        diffs = [s - g for s, g in zip(scores, grid, strict=True)]
        if method == "grid":
            verdict, shown = "", ""
        else:
            mean = statistics.mean(diffs)
            sd = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
            verdict = "better" if mean > sd else "worse" if mean < -sd else "tied"
            shown = f"{mean:+.2f} ± {sd:.2f}"
        phases = [_phases(method, run) for run in runs]
        train, search, decode = (statistics.mean(p[i] for p in phases) for i in range(3))
        ratios = ", ".join(
            "-" if run.get("ratio") is None else f"{run['ratio']:.2f}" for run in runs
        )
        lines.append(
            f"| {LABELS.get(method, method)} | {ratios} | {_ms(scores)} | {shown} | {verdict} | "
            f"{train:.1f} | {search:.1f} | {decode:.1f} |"
        )
        points.append(
            {
                "method": method,
                "quality": statistics.mean(scores),
                "seconds": train + search + decode,
            }
        )
    lines += ["", *grasp_against_each(methods, metric)]
    return lines, points


def _verdict(diffs: list[float]) -> str:
    """Paired difference mean ± std and better / tied / worse beyond one paired std."""
    mean = statistics.mean(diffs)
    sd = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
    word = "better" if mean > sd else "worse" if mean < -sd else "tied"
    return f"{mean:+.2f} ± {sd:.2f} ({word})"


def grasp_against_each(methods: dict, metric: str) -> list[str]:
    """GRASP (Thompson, the default; GRPO; the paper's method) minus every row, seed by seed."""
    mine = [m for m in ("thompson", "grpo", "grpo (paper)") if m in methods]
    if not mine:
        return []
    score = {m: [r["test"][metric] for r in methods[m]["per_seed"]] for m in methods}
    lines = [
        "| GRASP minus ... (paired over seeds) | "
        + " | ".join(LABELS.get(m, m) for m in mine)
        + " |",
        "|---" * (len(mine) + 1) + "|",
    ]
    for other in [m for m in ORDER if m in methods] + [m for m in methods if m not in ORDER]:
        if other in mine:
            continue
        cells = [
            _verdict([a - b for a, b in zip(score[m], score[other], strict=True)]) for m in mine
        ]
        lines.append(f"| {LABELS.get(other, other)} | " + " | ".join(cells) + " |")
    return lines


def plot(per_pair: dict[str, list[dict]], out: Path) -> None:
    """Quality against cost, one panel per pair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(per_pair), figsize=(4.6 * len(per_pair), 4), squeeze=False)
    for ax, (pair, points) in zip(axes[0], per_pair.items(), strict=True):
        for k, p in enumerate(points):
            marker = "*" if p["method"].startswith(("grpo", "thompson")) else "o"
            ax.scatter(p["seconds"], p["quality"], marker=marker, s=60, color=f"C{k % 10}")
            ax.annotate(p["method"], (p["seconds"], p["quality"]), fontsize=6)
        ax.set(xscale="log", xlabel="seconds per seed (training + search + decoding)")
        ax.set(ylabel="EM" if pair.startswith("qa") else "ROUGE-L", title=pair)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def with_rerun(
    bench: dict,
    rerun: dict,
    pair: str,
    suffix: str = RERUN_SUFFIX,
    folder: str = "live-bracket",
    replace_rows: bool = True,
) -> dict:
    """`bench` with the controller rows of `rerun` (same prepared state) in place of its own.

    The replaced rows stay, renamed with `suffix`; with `replace_rows` False the re-run's rows
    are added under `suffix` instead (an option that did not become the default). The prepared
    state's per-seed fingerprints must agree (what `--grid-from` checked when the re-run was
    made).
    """
    if rerun.get("fingerprints") != bench.get("fingerprints"):
        raise SystemExit(
            f"{folder}/{pair}: its prepared state's fingerprints differ from "
            f"{LIVE.name}/{pair}'s; fix: re-run it with "
            f"--grid-from docs/results/{LIVE.name}/{pair}/benchmark.json"
        )
    methods = dict(bench["methods"])
    for name, row in rerun["methods"].items():
        if name in ("grid", "grid-best-test"):
            continue  # the re-run's grid is the live run's, read back by --grid-from
        if not replace_rows:
            methods[name + suffix] = row
            continue
        if name in methods:
            methods[name + suffix] = methods[name]
        methods[name] = row
    return {**bench, "methods": methods}


def main() -> int:
    """Write docs/RESULTS.md and its plot."""
    sections, per_pair = [], {}
    for pair in PAIRS:
        path = LIVE / pair / "benchmark.json"
        if not path.is_file():
            sections += [f"### {pair}", "", f"Not measured yet (`{path.relative_to(ROOT)}`).", ""]
            continue
        bench = json.loads(path.read_text())
        for folder, suffix in RERUNS:
            rerun = folder / pair / "benchmark.json"
            if rerun.is_file():
                bench = with_rerun(bench, json.loads(rerun.read_text()), pair, suffix, folder.name)
        for folder, suffix in ALTERNATIVES:
            extra = folder / pair / "benchmark.json"
            if extra.is_file():
                bench = with_rerun(
                    bench, json.loads(extra.read_text()), pair, suffix, folder.name, False
                )
        lines, points = pair_table(pair, bench)
        sections += lines + [""]
        per_pair[pair] = points
    if per_pair:
        plot(per_pair, ROOT / "docs" / "img" / "results-quality-cost.png")
    table = ROOT / "docs" / "results" / "agent_table.md"
    head = (ROOT / "docs" / "results" / "RESULTS_HEAD.md").read_text()
    summary_path = ROOT / "docs" / "results" / "RESULTS_SUMMARY.md"
    summary_text = summary_path.read_text().strip() if summary_path.is_file() else ""
    text = head.replace("{{LIVE}}", "\n".join(sections)).replace("{{SUMMARY}}", summary_text)
    if table.is_file():
        summary = table.read_text().split("\n## ", 2)
        rest = "\n## " + summary[1] if len(summary) > 1 else ""
        text = text.replace("{{SURROGATE}}", summary[0] + rest)
    (ROOT / "docs" / "RESULTS.md").write_text(text)
    print("-> docs/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
