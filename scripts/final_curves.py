"""Real final-run curves: the loss of a final run at each grid ratio, from the live grids.

    .venv/bin/python scripts/final_curves.py        # -> grasp_env/data/final_curves.json
    .venv/bin/python scripts/final_curves.py --live docs/results/live --out /tmp/final.json

Why: the surrogate's `real` instances replay the controller run's probe curves, and regret
used to be scored on that run's last curve. The final run meets another curve: it reloads the
merged adapter and trains with pruning fixed at p*, and on the embedded pairs its loss rises
from the lowest ratio on, where the controller's end curves are flat to 0.5
(docs/SURROGATE.md, "What regret is scored on"). The live benchmark's 8-point grid is that
curve, measured: one final run per ratio, per pair and seed. This script copies, for every
pair and seed of `runners/benchmark.py`'s output under --live, the grid's ratios with each
final run's dev loss (50 rows: what the grid selects by) and test loss (300 rows: what the
user gets), and the fingerprint of the prepared state, so that a `real` instance takes a final
curve only from the same prepared state as its probe data (`grasp_env.surrogate`).

No training: it reads benchmark.json files (rebuild them with scripts/live_benchmarks.sh).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from grasp_env.runs.grid_rows import grid_curve

LIVE = Path("docs/results/live")
OUT = Path("grasp_env/data/final_curves.json")


def runs_of(benchmark: dict) -> list[dict]:
    """One record per seed of a live benchmark's grid: ratios, dev and test loss per final run."""
    cfg = benchmark["config"]
    data = cfg["data"]
    seeds, prints = cfg["seeds"], benchmark["fingerprints"]
    rows = benchmark["methods"]["grid"]["per_seed"]
    if not len(seeds) == len(prints) == len(rows):
        raise ValueError(
            f"seeds {seeds}, fingerprints {prints} and grid rows ({len(rows)}) differ in length; "
            "fix: rerun the live benchmark so that every seed has its grid"
        )
    out = []
    for seed, fingerprint, row in zip(seeds, prints, rows, strict=True):
        ratios, dev, test = grid_curve(row, "dev_loss", "test_loss")
        out.append(
            {
                "task": data["task"],
                "source": data["source"],
                "target": data["target"],
                "seed": int(seed),
                "fingerprint": fingerprint,
                "ratios": ratios.tolist(),
                "dev_loss": dev.tolist(),
                "test_loss": test.tolist(),
            }
        )
    return out


def build(live: Path) -> dict:
    """Every pair's grid under `live` (one benchmark.json per pair folder)."""
    files = sorted(live.glob("*/benchmark.json"))
    if not files:
        raise FileNotFoundError(
            f"no */benchmark.json under {live}; fix: point --live at runners/benchmark.py's "
            "output folder (scripts/live_benchmarks.sh writes docs/results/live)"
        )
    runs = [r for f in files for r in runs_of(json.loads(f.read_text(encoding="utf-8")))]
    return {
        "made_by": "scripts/final_curves.py",
        "command": f".venv/bin/python scripts/final_curves.py --live {live}",
        "sources": [str(f) for f in files],
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> None:
    """Write the final-run curves of --live into --out."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--live", type=Path, default=LIVE, help="live benchmark folder")
    parser.add_argument("--out", type=Path, default=OUT, help="output JSON")
    args = parser.parse_args(argv)
    bundle = build(args.live)
    args.out.write_text(json.dumps(bundle, indent=1) + "\n", encoding="utf-8")
    print(f"{len(bundle['runs'])} final-run curves -> {args.out}")


if __name__ == "__main__":
    main()
