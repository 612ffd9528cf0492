"""Command-line pieces shared by the runners: the experiment flags and the error exit."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grasp_env.metrics import DEFAULT_ROUGE, metric_conventions

__all__ = ["ExperimentArgs", "check_before_work", "run_cli"]


@dataclass(frozen=True)
class ExperimentArgs:
    """Flags every experiment runner takes."""

    preset: str = "default"
    """Scale: tiny (seconds), default (embedded demo), paper (GPU, hub data)."""
    task: str = "qa"
    """Task family: qa or summarization."""
    source: str = "en"
    """Source language (the high-resource adapter)."""
    target: str = "ar"
    """Target language (50 training rows)."""
    model: str | None = None
    """Backbone override: hub id, local directory or 'tiny'."""
    seed: int = 42
    """Seed of the target rows, adapters, data order (and controller)."""
    merge_form: str = "reference"
    """reference ((B_s+B_t)(A_s+A_t), no scaling) or sum (scaled sum of deltas)."""
    source_data: str | None = None
    """Source-language rows: 'embedded', mlqa, xlsum or a .json/.jsonl/.parquet file in the
    task's schema (docs/DATA.md); default: the preset's."""
    target_data: str | None = None
    """Target-language rows (same forms); default: the preset's."""
    trust_remote_code: bool = False
    """Allow a hub/directory backbone to run its own Python code (off: only built-in
    transformers architectures load)."""
    rouge: str = DEFAULT_ROUGE
    """ROUGE-L convention: xlsum (XL-Sum's multilingual ROUGE: Arabic Snowball stems, Chinese
    jieba words; comparable with XL-Sum's published scores) or unstemmed (words, CJK by
    character: the convention of the numbers in docs/BENCHMARKS.md before issue 12)."""
    bertscore_model: str | None = None
    """Local encoder directory for BERTScore F1 (its layer comes from bert-score's table,
    e.g. .../bert-base-multilingual-cased: layer 9); default: no BERTScore."""
    device: str = "auto"
    """Where to compute: auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps. A device
    this machine lacks is an error, never a silent fallback."""
    dtype: str = "auto"
    """Backbone precision: auto (bfloat16 on a CUDA device that supports it, float32
    elsewhere), float32, bfloat16 or float16. LoRA weights stay float32."""
    adapter_trainer: str = "sft"
    """How the source and target adapters train: sft (TRL's SFTTrainer) or loop (this
    package's own loop: the adapters of the figures measured before issue 13)."""
    strategy: str = "ddp"
    """Under accelerate launch / torchrun: ddp (every process holds the whole backbone) or fsdp
    (the frozen backbone sharded over the processes with FSDP2, for a backbone that does not
    fit one device; the adapters stay whole on every process)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (less memory, ~1/3 more compute; the same
    losses): for a backbone whose activations do not fit."""
    mask_scope: str = "per_tensor"
    """How masks rank entries: per_tensor (the reference: floor(ratio * n) in every LoRA tensor)
    or global (one threshold over all of them). Probes, commits and final runs share it."""
    final_importance: str = "magnitude"
    """Final-run pruning importance: magnitude (|w|, what the controller probes with) or
    input_aware (the reference final run's Adaptive LoRA Merge score)."""
    final_rebuild_every: int = 10
    """Rebuild the final-run mask from fresh importance every this many optimizer steps,
    released entries restored from the stash (0: build it once from the untrained merge;
    10: the default K, at least as often as the controller run rebuilds its committed mask
    (on every round whose commit moves p), so the final run prunes the way the probes
    measured; the reference's input-aware allocator: 1)."""
    decode_batch_size: int = 16
    """Test prompts per greedy-decoding batch (grid and GRASP alike)."""
    decode_order: str = "given"
    """Test decoding order: given (the split's) or length (longest prompt first: batches pad
    less; predictions are returned in the split's order)."""
    out_dir: Path = Path("runs")
    """Parent directory of run directories."""
    run_name: str | None = None
    """Run directory name (each runner has its own default)."""
    overwrite: bool = False
    """Replace the files of an existing run directory."""

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed={self.seed}; fix: use a seed >= 0 (numpy seeds are unsigned)")
        from grasp_env.runs.dirs import check_out_dir, check_run_name

        if self.run_name is not None:
            check_run_name(self.run_name)
        check_out_dir(self.out_dir)

    def identity(self, preset_name: str) -> dict[str, Any]:
        """What names an experiment in every metrics.json: preset, task, languages, seed."""
        return {
            "preset": preset_name,
            "task": self.task,
            "source": self.source,
            "target": self.target,
            "seed": self.seed,
        }

    def metric_conventions(self) -> dict[str, str]:
        """How each test metric is defined: `metric_conventions` in metrics.json."""
        return metric_conventions(self.task, self.target, self.rouge, self.bertscore_model)

    def pipeline_config(self, seed: int | None = None, **extra: Any) -> Any:
        """The PipelineConfig these flags describe (`seed` overrides --seed, e.g. per seed)."""
        from grasp_env.lm.pipeline import PipelineConfig

        return PipelineConfig(
            task=self.task,
            source=self.source,
            target=self.target,
            seed=self.seed if seed is None else seed,
            merge_form=self.merge_form,
            model=self.model,
            source_data=self.source_data,
            target_data=self.target_data,
            trust_remote_code=self.trust_remote_code,
            rouge=self.rouge,
            bertscore_model=self.bertscore_model,
            device=self.device,
            dtype=self.dtype,
            gradient_checkpointing=self.gradient_checkpointing,
            strategy=self.strategy,
            adapter_trainer=self.adapter_trainer,
            mask_scope=self.mask_scope,
            final_importance=self.final_importance,
            final_rebuild_every=self.final_rebuild_every,
            decode_batch_size=self.decode_batch_size,
            decode_order=self.decode_order,
            **extra,
        )


def check_before_work(args: ExperimentArgs, preset: Any, controller: Any) -> None:
    """Fail on flags that would otherwise only break after minutes of adapter training.

    Validates task, merge form and mask scope (through PipelineConfig) and that the
    controller's micro-dev size fits the preset's micro-dev split.
    """
    if controller.micro_dev_size > preset.sizes.micro_dev:
        raise ValueError(
            f"--micro-dev-size {controller.micro_dev_size} exceeds the {preset.name} preset's "
            f"micro-dev split ({preset.sizes.micro_dev} rows); fix: use at most "
            f"{preset.sizes.micro_dev}"
        )
    if controller.probe_batch == "group" and args.strategy == "fsdp":
        raise ValueError(
            "--probe-batch group with --strategy fsdp: scoring candidates together is not "
            "built for a sharded backbone; fix: use --probe-batch single with fsdp, or "
            "--strategy ddp"
        )
    args.pipeline_config()


def run_cli(main: Callable[[Any], int], args_type: type, launchable: bool = True) -> None:
    """Parse flags with tyro, run `main`, and turn user errors into one line and exit code 2.

    User errors are the ValueErrors the package raises for bad input (DataError, RunDirError,
    BackboneError and config validation are all ValueErrors): no traceback for those.
    `launchable=False`: the runner refuses to run under accelerate launch / torchrun (its
    processes would each write the same files).
    """
    import os

    import tyro

    try:
        args = tyro.cli(args_type)
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if not launchable and world > 1:
            raise ValueError(
                f"WORLD_SIZE={world}: {Path(sys.argv[0]).name} runs many independent runs and "
                "is single-process; fix: run it without accelerate launch / torchrun (only "
                "train_agent.py runs data-parallel)"
            )
        sys.exit(main(args))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:
        message = filesystem_error(err)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


_FS_FIXES = {
    errno.ENOSPC: "free space on that filesystem, or write elsewhere (--out-dir, GRASP_CACHE_DIR)",
    errno.EDQUOT: "free space within your quota, or write elsewhere (--out-dir, GRASP_CACHE_DIR)",
    errno.EROFS: "write to a writable filesystem (--out-dir, GRASP_CACHE_DIR)",
    errno.EACCES: "give yourself write permission there, or write elsewhere (--out-dir, "
    "GRASP_CACHE_DIR)",
    errno.EPERM: "write to a directory you may create files in (--out-dir, GRASP_CACHE_DIR)",
}


def filesystem_error(err: OSError) -> str | None:
    """One line for a filesystem fault (disk full, read-only, no permission), or None.

    It names the path, the operating system's reason and the fix. Files already written stay
    as they were: every file of a run is written to a temporary name and renamed into place.
    """
    if err.errno not in _FS_FIXES:
        return None
    where = err.filename if err.filename is not None else "(unnamed file)"
    return (
        f"cannot write {str(where)!r}: {err.strerror} (errno {errno.errorcode[err.errno]}); "
        f"fix: {_FS_FIXES[err.errno]}"
    )
