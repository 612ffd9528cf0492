"""Main job of GRASP LoRA Gym.

Today it runs what exists of the pipeline (issue 2, the foundation): it builds or loads the cached
backbone of the preset, loads the task data of every language and prints sample rows and prompts.
The controller run and final run arrive with the environment and agent issues (4, 5).

    python runners/train_agent.py                      # embedded default: QA, en -> ar
    python runners/train_agent.py --preset tiny --task summarization --target zh
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tyro  # noqa: E402

from grasp_env.data import DataError, load_source_splits, load_target_splits  # noqa: E402
from grasp_env.data.prompts import prompt_pieces, target_text, tokenize_row  # noqa: E402
from grasp_env.presets import get_preset, load_preset_backbone  # noqa: E402


@dataclass(frozen=True)
class Args:
    """Build the backbone and show the embedded tasks (the main job's foundation)."""

    preset: str = "default"
    """Scale of the run: tiny (seconds), default (embedded demo), paper (GPU, hub data)."""
    task: str = "qa"
    """Task family: qa or summarization."""
    source: str = "en"
    """Source language of the merge (the high-resource adapter)."""
    target: str = "ar"
    """Target language (50 training rows)."""
    seed: int = 42
    """Seed of the target-row draw."""
    model: str | None = None
    """Backbone override: a hub id, a local directory or 'tiny' (the preset's own)."""
    samples: int = 3
    """Sample rows printed per language."""


def show_language(args: Args, lang: str, tokenizer, preset) -> None:
    """Print split sizes and sample rows of one language."""
    source = preset.data_source[args.task]
    if lang == args.source:
        n_train, n_dev = preset.source_sizes[args.task]
        splits = load_source_splits(
            source, args.task, lang, args.seed, n_train, n_dev, preset.embedded
        )
    else:
        splits = load_target_splits(
            source, args.task, lang, args.seed, preset.sizes, preset.embedded
        )
    print(f"\n=== {args.task} / {lang}: {splits.sizes()}")
    for row in splits.train[: args.samples]:
        head, long, tail = prompt_pieces(row, args.task, lang)
        enc = tokenize_row(tokenizer, row, args.task, lang, preset.max_length)
        print(json.dumps(row, ensure_ascii=False))
        print(f"  prompt: {(head + long + tail)!r}")
        print(
            f"  target: {target_text(row, args.task, lang)!r}  "
            f"({len(enc['input_ids'])} tokens, {enc['prompt_length']} in the prompt)"
        )


def main(args: Args) -> int:
    """Build, load and show."""
    preset = get_preset(args.preset)
    t0 = time.perf_counter()
    _, tokenizer, where = load_preset_backbone(preset, args.model)
    print(f"backbone ready in {time.perf_counter() - t0:.1f} s: {where}")
    info = Path(where) / "build_info.json"
    if info.is_file():
        build = json.loads(info.read_text())
        print(
            f"  {build['parameters']:,} parameters, held-out LM loss "
            f"{build['heldout_loss_final']:.3f}, cold build {build['build_seconds']:.0f} s"
        )
    for lang in dict.fromkeys([args.source, args.target, "en", "ar", "zh"]):
        show_language(args, lang, tokenizer, preset)
    print("\nThe controller run and final run are not built yet (issues 4 and 5).")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(tyro.cli(Args)))
    except (DataError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
