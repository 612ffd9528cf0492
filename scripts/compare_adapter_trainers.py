"""Source and target adapters of the two adapter trainers, scored the same way.

    python scripts/compare_adapter_trainers.py --seeds 42 1337 9001

For each seed and each `--adapter-trainer` (sft: TRL's SFTTrainer, the default; loop: the
package's own loop), load the cached adapters (trained on first use) and score every adapter
and their merge with one yardstick: the token-mean answer loss on the source dev split and on
the target dev split (`grasp_env.lm.batches.evaluate_loss`). The trainers' own best-dev-loss
figures are not comparable (SFTTrainer averages per evaluation batch), hence this script.
Prints a markdown table; writes nothing.
"""

from __future__ import annotations

import argparse

from grasp_env.lm.adapters import attach_lora
from grasp_env.lm.batches import evaluate_loss
from grasp_env.lm.pipeline import PipelineConfig, prepare, start_model
from grasp_env.lm.presets import get_preset


def _loss(model, prep, split: str) -> float:
    return evaluate_loss(model, prep.encoded[split], prep.pad_id)


def main() -> None:
    """Score both trainers' adapters for every seed and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1337, 9001])
    args = parser.parse_args()
    print("| seed | trainer | source on source dev | target on target dev | merge on target dev |")
    print("|---|---|---|---|---|")
    for seed in args.seeds:
        for trainer in ("loop", "sft"):
            cfg = PipelineConfig(seed=seed, adapter_trainer=trainer)
            prep = prepare(get_preset(args.preset), cfg, progress=False, log=lambda _: None)
            c = prep.cfg
            source = attach_lora(prep.base, c.source_lora, seed, prep.source_state, name="src")
            src = _loss(source, prep, "source_dev")
            tgt = _loss(start_model(prep, "target_only", name="tgt"), prep, "dev")
            merged = _loss(start_model(prep, "merged", name="mrg"), prep, "dev")
            print(f"| {seed} | {trainer} | {src:.4f} | {tgt:.4f} | {merged:.4f} |")


if __name__ == "__main__":
    main()
