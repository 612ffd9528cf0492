"""Summarise the runs of scripts/gpu_check.sh (or any run directories) as a markdown table.

    python scripts/gpu_report.py runs/gpu-check

One row per run directory with a metrics.json: preset, processes and strategy, device and
dtype, learned ratio, test metrics, phase times and peak memory; then the paper preset's
dry-run estimate if `paper-dry-run.json` is there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def rows(out: Path) -> list[str]:
    """Markdown table lines for every run directory under `out`."""
    lines = [
        "| run | preset | processes | device, dtype | p* | test | prepare s | controller s "
        "| final s | total s | peak device GB (allocated / reserved) | peak host RSS GB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for metrics_file in sorted(out.glob("*/metrics.json")):
        m = json.loads(metrics_file.read_text())
        t, mem, place = m["timings"], m.get("peak_memory", {}), m["placement"]
        device_mem = (
            f"{mem['device_allocated_gb']:.2f} / {mem['device_reserved_gb']:.2f}"
            if "device_allocated_gb" in mem
            else "-"
        )
        test = ", ".join(f"{k} {v:.2f}" for k, v in m["test"].items())
        lines.append(
            f"| {metrics_file.parent.name} | {m['preset']} | {m['processes']} "
            f"({m.get('strategy', 'single')}) | {place['device']}, {place['dtype']} "
            f"| {m['learned_ratio']:.4f} | {test} | {t['prepare_s']:.1f} "
            f"| {t['controller_s']:.1f} | {t['final_s']:.1f} | {t['total_s']:.1f} "
            f"| {device_mem} | {mem.get('host_rss_gb', float('nan')):.2f} |"
        )
    return lines


def main(argv: list[str]) -> int:
    """Print the table for the directory in `argv`; exit code 2 on a bad argument."""
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python scripts/gpu_report.py RUNS_DIR (a directory of run directories)")
        return 2
    out = Path(argv[0])
    print("\n".join(rows(out)))
    dry = out / "paper-dry-run.json"
    if dry.is_file():
        plan = json.loads(dry.read_text())
        mem = plan["memory_per_device_gb"]
        print(
            f"\npaper preset dry run ({plan['backbone']['model']}, {plan['placement']['dtype']}):"
            f" {mem['total_estimate']:.1f} GB per device estimated "
            f"(weights {mem['backbone_weights']:.1f}, LoRA state {mem['lora_training_state']:.2f},"
            f" activations of one row {mem['activations_one_row']:.2f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
