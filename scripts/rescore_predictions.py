"""Re-score a benchmark's stored test decodings under the metrics before issue 12 (issue 12).

    .venv/bin/python scripts/rescore_predictions.py docs/results/benchmark-v1/qa-en-ar ...

Every benchmark run stores its greedy test decodings (predictions.json). This script scores
them twice: with today's `grasp_env.metrics` (MLQA v1 EM/F1, XL-Sum's ROUGE-L) and with the
metrics module as it was before issue 12 (commit 153facb: punctuation replaced by a space, F1 1
for empty/empty, CJK split in every language, unstemmed ROUGE-L), read from git history. It
prints, per benchmark, each method's headline metric under both conventions and the paired
difference of every agent to the grid's dev-selected point, so one can see whether a
conclusion depends on the convention.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

OLD_METRICS_COMMIT = "153facb"


def old_metrics():
    """The pre-issue-12 metrics module, loaded from git history."""
    source = subprocess.run(
        ["git", "show", f"{OLD_METRICS_COMMIT}:grasp_env/metrics.py"],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout
    path = Path(tempfile.mkdtemp()) / "old_metrics.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_metrics", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _test_rows(cfg: dict):
    """The test rows of a benchmark's config (the nested tree, or the flat flags of old files)."""
    from grasp_env.config import ExperimentConfig
    from grasp_env.data import load_target_splits

    if "data" in cfg:
        data = ExperimentConfig.from_dict(cfg).data
    else:  # benchmark.json written before the config tree: flat flags
        tree = ExperimentConfig.from_preset(cfg["preset"], task=cfg["task"])
        overrides = {"data.target": cfg["target"]}
        if cfg.get("target_data"):
            overrides["data.target_data"] = cfg["target_data"]
        from grasp_env.config import with_values

        data = with_values(tree, overrides).data
    splits = load_target_splits(
        data.target_data, data.task, data.target, cfg["seeds"][0], data.split_sizes, data.embedded
    )
    return splits.test


def _score(module, cfg: dict, rows, preds: list[str]) -> float:
    """The headline metric (EM or ROUGE-L) of `preds` under `module`'s default conventions."""
    from grasp_env.data.prompts import target_text

    lang = cfg["data"]["target"] if "data" in cfg else cfg["target"]
    task = cfg["data"]["task"] if "data" in cfg else cfg["task"]
    if task == "qa":
        answers = [r["answers"]["text"] for r in rows]
        return module.qa_metrics(preds, answers, lang)["em"]
    refs = [target_text(r, "summarization", lang).strip() for r in rows]
    return module.summary_metrics(preds, refs, lang)["rouge_l"]


def main() -> int:
    """Print one table per benchmark directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="benchmark run directories")
    args = parser.parse_args()
    from grasp_env import metrics as new_metrics

    old = old_metrics()
    for run in args.runs:
        bench = json.loads((run / "benchmark.json").read_text())
        cfg = bench["config"]
        preds = json.loads((run / "predictions.json").read_text())
        rows = _test_rows(cfg)
        metric = "EM" if cfg["task"] == "qa" else "ROUGE-L"
        scores: dict[str, dict[int, dict[float, tuple[float, float]]]] = {}
        for item in preds:
            pair = (
                _score(new_metrics, cfg, rows, item["predictions"]),
                _score(old, cfg, rows, item["predictions"]),
            )
            scores.setdefault(item["method"], {}).setdefault(item["seed"], {})[item["ratio"]] = pair
        grid_runs = bench["methods"]["grid"]["per_seed"]
        chosen = {s: r["ratio"] for s, r in zip(cfg["seeds"], grid_runs, strict=True)}
        grid = {s: scores["grid"][s][chosen[s]] for s in cfg["seeds"]}
        print(f"\n{run.name}: {metric} new (issue 12) / old (before), paired diff vs grid")
        print("| method | new | old | paired diff new | paired diff old |")
        print("|---|---|---|---|---|")
        for method, per_seed in scores.items():
            picks = {
                s: per_seed[s][chosen[s]] if method == "grid" else next(iter(per_seed[s].values()))
                for s in cfg["seeds"]
            }
            cells = []
            for k in (0, 1):
                vals = [picks[s][k] for s in cfg["seeds"]]
                cells.append(f"{statistics.mean(vals):.2f} +- {statistics.stdev(vals):.2f}")
            for k in (0, 1):
                diffs = [picks[s][k] - grid[s][k] for s in cfg["seeds"]]
                cells.append(f"{statistics.mean(diffs):+.2f} +- {statistics.stdev(diffs):.2f}")
            print(f"| {method} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
