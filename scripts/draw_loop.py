"""Draw the README's picture of the loop: docs/img/loop.png.

.venv/bin/python scripts/draw_loop.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

BOXES = {
    "data": (0.02, 0.78, "target data (50 rows)\n+ English source data"),
    "adapters": (0.02, 0.52, "source LoRA + target LoRA\n(PEFT, transformers' Trainer)"),
    "merge": (0.02, 0.26, "merged adapter\n(B_s + B_t)(A_s + A_t)"),
    "env": (
        0.36,
        0.52,
        "GraspLoRA-v1 env\ntrain K steps, probe a ratio\non 16 micro-dev rows,\ncommit the best",
    ),
    "agent": (0.36, 0.10, "agent: GRPO / SB3 /\nrandom / Optuna / surrogate-trained"),
    "pstar": (0.70, 0.52, "p* from every probe\n(spline rule)"),
    "final": (0.70, 0.26, "final run: the merge pruned\nat p* (Trainer + mask callback)"),
    "out": (0.70, 0.02, "test metrics, adapter/,\nTensorBoard, metrics.json"),
}
ARROWS = [  # (from box, side, to box, side, label)
    ("data", "bottom", "adapters", "top", ""),
    ("adapters", "bottom", "merge", "top", ""),
    ("merge", "right", "env", "left", ""),
    ("agent", "top", "env", "bottom", "action = ratio"),
    ("env", "bottom", "agent", "top", "reward = L0 - L"),
    ("env", "right", "pstar", "left", ""),
    ("pstar", "bottom", "final", "top", ""),
    ("final", "bottom", "out", "top", ""),
]
W, H = 0.27, 0.18


def _anchor(box: tuple, side: str) -> tuple[float, float]:
    x, y, _ = box
    return {
        "top": (x + W / 2, y + H),
        "bottom": (x + W / 2, y),
        "left": (x, y + H / 2),
        "right": (x + W, y + H / 2),
    }[side]


def main() -> None:
    """Write docs/img/loop.png."""
    fig, ax = plt.subplots(figsize=(10, 5.2))
    ax.set_axis_off()
    for name, (x, y, text) in BOXES.items():
        colour = "#dbe9f6" if name in ("env", "agent") else "#f2f2f2"
        ax.add_patch(FancyBboxPatch((x, y), W, H, boxstyle="round,pad=0.01", fc=colour, ec="0.3"))
        ax.text(x + W / 2, y + H / 2, text, ha="center", va="center", fontsize=9)
    for a, side_a, b, side_b, label in ARROWS:
        start, end = _anchor(BOXES[a], side_a), _anchor(BOXES[b], side_b)
        if {a, b} == {"env", "agent"}:  # two arrows side by side between the same boxes
            dx = 0.04 if a == "agent" else -0.04
            start, end = (start[0] + dx, start[1]), (end[0] + dx, end[1])
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, color="0.25"))
        if label:
            x = (start[0] + end[0]) / 2 + (0.015 if a == "agent" else -0.015)
            ax.text(x, (start[1] + end[1]) / 2, label, fontsize=8.5, va="center",
                    ha="left" if a == "agent" else "right")  # fmt: skip
    ax.set_title("GRASP LoRA Gym: one controller run, then one final run at the learned ratio")
    out = Path(__file__).resolve().parents[1] / "docs" / "img" / "loop.png"
    fig.savefig(out, dpi=110, bbox_inches="tight")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
