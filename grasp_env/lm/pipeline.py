"""The adapter pipeline end to end: data, backbone, source and target LoRA, merge, final runs.

`prepare` does the expensive shared part once per (preset, task, languages, seed): load the
backbone, tokenise the splits, train (or load from the cache) the source and target adapters,
merge them. `final_run` then fine-tunes one adapter with pruning fixed at a ratio and scores it on
dev and test; the grid search, the baselines and (later) the controller's final run all call it.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from grasp_env.data import load_source_splits, load_target_splits
from grasp_env.data.splits import SPLIT_NAMES
from grasp_env.lm import dist
from grasp_env.lm.adapters import (
    MERGE_FORMS,
    FitResult,
    LoraTrainConfig,
    PruneSpec,
    attach_lora,
    cached_adapter,
    fit,
    host_of,
    merge_lora_states,
)
from grasp_env.lm.batches import (
    EncodedSplit,
    collate,
    encode_rows,
    evaluate_loss,
    generate,
    reference_texts,
)
from grasp_env.lm.device import Placement, resolve
from grasp_env.lm.presets import Preset, ensure_preset_backbone, load_preset_backbone
from grasp_env.lm.pruning import input_aware_importance
from grasp_env.metrics import (
    DEFAULT_ROUGE,
    MLQA_LANGUAGES,
    MetricUnavailable,
    bertscore_layer,
    qa_metrics,
    summary_metrics,
)
from grasp_env.metrics.rouge import check_rouge

__all__ = ["ARMS", "PipelineConfig", "Prepared", "RunResult", "final_run", "prepare", "score"]

ARMS: tuple[str, ...] = ("merged", "target_only")
"""Which adapter a final run starts from: the merge, or the target LoRA alone."""
ADAPTER_TRAINERS: tuple[str, ...] = ("sft", "loop")
"""How the source and target adapters train: TRL's SFTTrainer, or this package's loop."""
_TRAINING = "default"
"""Adapter name of a source or target LoRA while it trains (deleted once it is cached; the
trainer's best-checkpoint reload expects PEFT's default adapter at the checkpoint's root)."""


DECODE_ORDERS = ("given", "length")


@dataclass(frozen=True)
class PipelineConfig:
    """One experiment: task, languages, seed and the adapter recipes."""

    task: str = "qa"
    """qa or summarization."""
    source: str = "en"
    """Source language (the high-resource adapter)."""
    target: str = "ar"
    """Target language."""
    seed: int = 42
    """Seed of the target-row draw, adapter initialisation and data order."""
    source_seed: int = 0
    """Seed of the source adapter, shared by all target seeds (it sees none of their rows)."""
    merge_form: str = "reference"
    """'reference' ((B_s+B_t)(A_s+A_t), no scaling) or 'sum' (scaled sum of deltas)."""
    mask_scope: str = "per_tensor"
    """'per_tensor' (reference) or 'global'."""
    final_importance: str = "magnitude"
    """Final-run importance: 'magnitude' (|w|, what the controller probes with) or
    'input_aware' (the reference final run's Adaptive LoRA Merge score |dS/dW|)."""
    final_rebuild_every: int = 10
    """Rebuild the final-run mask from fresh importance every this many steps, released entries
    restored from the stash (0: never; 10: the controller run's default K, so the final run
    prunes the way the probes measured; the reference's input-aware allocator: 1)."""
    source_lora: LoraTrainConfig | None = None
    """Source LoRA recipe; None takes the preset's."""
    target_lora: LoraTrainConfig | None = None
    """Target LoRA recipe; None takes the preset's."""
    final_lora: LoraTrainConfig | None = None
    """Final-run recipe; None takes the preset's."""
    model: str | None = None
    """Backbone override (hub id, local directory or 'tiny')."""
    source_data: str | None = None
    """Source-language data override: 'embedded', a hub name (mlqa, xlsum) or a
    .json/.jsonl/.parquet file of source-language rows; None takes the preset's."""
    target_data: str | None = None
    """Target-language data override (same forms as `source_data`); None takes the preset's."""
    trust_remote_code: bool = False
    """Let a hub/directory backbone run its own Python code. Off unless asked for."""
    device: str = "auto"
    """Where the run computes: auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps."""
    dtype: str = "auto"
    """The backbone's precision: auto (bfloat16 on a CUDA device that supports it, float32
    elsewhere), float32, bfloat16 or float16. LoRA weights stay float32."""
    adapter_trainer: str = "sft"
    """How the source and target adapters train: 'sft' (TRL's SFTTrainer: best checkpoint by
    dev loss, early stopping, TensorBoard) or 'loop' (this package's own loop, the adapters
    of the figures measured before 2026-11-29's issue 13)."""
    strategy: str = "ddp"
    """With several processes (accelerate launch / torchrun): 'ddp' (every process holds the
    whole backbone) or 'fsdp' (the frozen backbone's weights sharded over the processes with
    FSDP2, for a backbone that does not fit one device; adapters stay whole). One process:
    the same run either way."""
    gradient_checkpointing: bool = False
    """Recompute each block's activations in the backward pass instead of keeping them:
    activation memory of one block instead of all, about a third more compute; the same
    losses (non-reentrant checkpointing replays the dropout RNG)."""
    rouge: str = DEFAULT_ROUGE
    """ROUGE-L tokens: 'xlsum' (XL-Sum's multilingual ROUGE: Snowball stems, jieba words for zh)
    or 'unstemmed' (words, CJK by character; the convention before issue 12)."""
    bertscore_model: str | None = None
    """Local encoder directory for BERTScore F1 (e.g. .../bert-base-multilingual-cased); None:
    not computed."""
    decode_batch_size: int = 16
    """Test prompts per greedy-decoding batch."""
    decode_order: str = "given"
    """'given' (the split's order) or 'length' (longest prompt first, so a batch pads less;
    predictions come back in the split's order)."""

    def __post_init__(self) -> None:
        """Fail before any work on a value that would only break minutes later."""
        from grasp_env.data import TASKS
        from grasp_env.lm.device import check_names
        from grasp_env.lm.pruning import SCOPES

        check_names(self.device, self.dtype)
        if self.decode_batch_size < 1:
            raise ValueError(
                f"decode_batch_size={self.decode_batch_size}; fix: use 1 or more "
                "(--decode-batch-size)"
            )
        if self.decode_order not in DECODE_ORDERS:
            raise ValueError(
                f"decode_order={self.decode_order!r}; fix: use one of {list(DECODE_ORDERS)} "
                "(--decode-order)"
            )
        for name, allowed in (
            ("task", TASKS),
            ("merge_form", MERGE_FORMS),
            ("mask_scope", SCOPES),
            ("final_importance", ("magnitude", "input_aware")),
            ("adapter_trainer", ADAPTER_TRAINERS),
            ("strategy", dist.STRATEGIES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is unknown; fix: use one of {allowed}"
                )
        if self.final_rebuild_every < 0:
            raise ValueError(
                f"final_rebuild_every={self.final_rebuild_every}; fix: use 0 (never) or a "
                "positive number of steps"
            )
        if self.task == "qa" and self.target not in MLQA_LANGUAGES:
            raise ValueError(
                f"target={self.target!r}: QA is scored with MLQA's EM/F1, defined for "
                f"{MLQA_LANGUAGES} only; fix: pick one of those target languages"
            )
        try:
            check_rouge(self.target if self.task == "summarization" else None, self.rouge)
            if self.bertscore_model is not None:
                bertscore_layer(self.bertscore_model)
        except MetricUnavailable as err:
            raise ValueError(str(err)) from None


def _data_id(source: str) -> str:
    """How a data source enters adapter cache keys.

    A file enters by its name *and* content hash, so an edited file never reuses adapters
    trained on its old rows.
    """
    path = Path(source)
    if not path.is_file():
        return source
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return f"{path.name}@sha256:{digest}"


@dataclass
class Prepared:
    """Everything a final run needs, built once."""

    preset: Preset
    cfg: PipelineConfig
    base: Any
    tokenizer: Any
    backbone: str
    splits: Any
    encoded: dict[str, EncodedSplit]
    source_state: dict[str, Any]
    target_state: dict[str, Any]
    merged_state: dict[str, Any]
    merged_rank: int
    merged_alpha: float
    timings: dict[str, float]
    placement: Placement = field(default_factory=lambda: Placement("cpu", "float32"))
    """Device and dtype the backbone was placed and cast to (resolved once in `prepare`)."""

    @property
    def pad_id(self) -> int:
        """Padding token id of the backbone's tokenizer."""
        return self.tokenizer.pad_token_id

    def fingerprint(self) -> str:
        """A short hash of the merged adapter's weights and of every split's rows.

        What a run's numbers depend on beyond its flags. The same flags can build other
        weights: the tiny and default backbones and every adapter are trained here, and
        another version of a library rounds floats differently (transformers 5.24 -> 5.25
        gave other adapters on this project's CPU). A grid reused with `--grid-from` is only
        comparable with runs on the same prepared state, so the benchmark records this per
        seed and checks it. The backbone is not hashed (16 GB for Llama-3-8B): both adapters
        are trained on it, so another backbone shows in the merged weights.
        """
        import json

        import torch

        digest = hashlib.sha256()
        digest.update(f"{self.merged_rank}:{self.merged_alpha}".encode())
        for key in sorted(self.merged_state):
            tensor = self.merged_state[key].detach().to("cpu", torch.float32).contiguous()
            digest.update(key.encode())
            digest.update(tensor.numpy().tobytes())
        for name in SPLIT_NAMES:
            rows = getattr(self.splits, name)
            text = json.dumps(rows, sort_keys=True, ensure_ascii=False, default=str)
            digest.update(text.encode())
        return digest.hexdigest()[:16]


@dataclass
class RunResult:
    """One final run: its ratio, losses, test metrics and time."""

    arm: str
    ratio: float
    dev_loss: float
    test_loss: float
    test: dict[str, float]
    seconds: float
    fit: FitResult
    model: Any = None
    eval_seconds: float = 0.0
    """Of `seconds`, the time spent scoring the test split (NLL and greedy decoding). A grid
    search needs it only for the ratio it selects, so benchmarks account for it apart."""
    predictions: list[str] = field(default_factory=list)
    """The greedy test decodings, in test-split order."""

    def summary(self) -> dict[str, Any]:
        """JSON-ready view (without weights)."""
        return {
            "arm": self.arm,
            "ratio": self.ratio,
            "dev_loss": self.dev_loss,
            "test_loss": self.test_loss,
            "test": self.test,
            "seconds": self.seconds,
            "eval_seconds": self.eval_seconds,
            "best_step": self.fit.best_step,
            "steps": self.fit.steps,
        }


def _train_adapter(
    prep_base: Any,
    tokenizer: Any,
    train: EncodedSplit,
    dev: EncodedSplit,
    cfg: LoraTrainConfig,
    seed: int,
    desc: str,
    progress: bool,
    trainer: str = "sft",
) -> tuple[Any, dict[str, Any]]:
    model = attach_lora(prep_base, cfg, seed, name=_TRAINING)
    if trainer == "sft":
        from grasp_env.lm.sft import sft_train

        log_dir = Path(tempfile.mkdtemp(prefix="grasp-sft-tb-"))
        info = sft_train(model, train, dev, cfg, seed, tokenizer, progress, log_dir)
        return model, {**info, "tensorboard_dir": str(log_dir)}
    result = fit(model, train, dev, cfg, seed, tokenizer.pad_token_id, progress=progress, desc=desc)
    from peft import set_peft_model_state_dict

    set_peft_model_state_dict(model, result.state, adapter_name=_TRAINING)
    info = {
        "best_dev_loss": result.best_dev_loss,
        "best_step": result.best_step,
        "steps": result.steps,
        "seconds": result.seconds,
    }
    return model, info


def prepare(
    preset: Preset, cfg: PipelineConfig, progress: bool = True, log: Any = print
) -> Prepared:
    """Load data and backbone, train or load the two adapters, merge them."""
    cfg = replace(
        cfg,
        source_lora=cfg.source_lora or preset.source_lora,
        target_lora=cfg.target_lora or preset.target_lora,
        final_lora=cfg.final_lora or preset.final_lora,
    )
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    placement = resolve(cfg.device, cfg.dtype)
    shard = cfg.strategy == "fsdp" and dist.process_count() > 1
    with dist.main_first():  # one process builds a missing tiny backbone, the others wait
        ensure_preset_backbone(preset, cfg.model, log=log)
    # every process loads at once (a sharded load is a collective)
    base, tokenizer, backbone = load_preset_backbone(
        preset,
        cfg.model,
        trust_remote_code=cfg.trust_remote_code,
        log=log,
        dtype=placement.dtype,
        shard=shard,
    )
    base.requires_grad_(False)
    if shard:  # placed by transformers: each process holds its shard on its own device
        log(f"backbone sharded over {dist.process_count()} processes (FSDP2)")
    else:
        base.to(placement.torch_device)
    if cfg.gradient_checkpointing:
        base.activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False}
        )
    timings["backbone_s"] = time.perf_counter() - t0

    source_name = cfg.source_data or preset.data_source[cfg.task]
    target_name = cfg.target_data or preset.data_source[cfg.task]
    n_train, n_dev = preset.source_sizes[cfg.task]
    src = load_source_splits(
        source_name, cfg.task, cfg.source, cfg.source_seed, n_train, n_dev, preset.embedded
    )
    tgt = load_target_splits(
        target_name, cfg.task, cfg.target, cfg.seed, preset.sizes, preset.embedded
    )
    enc = lambda rows, lang: encode_rows(tokenizer, rows, cfg.task, lang, preset.max_length)  # noqa: E731
    encoded = {
        "source_train": enc(src.train, cfg.source),
        "source_dev": enc(src.dev, cfg.source),
        "train": enc(tgt.train, cfg.target),
        "dev": enc(tgt.dev, cfg.target),
        "micro_dev": enc(tgt.micro_dev, cfg.target),
        "test": enc(tgt.test, cfg.target),
    }
    # The built tiny backbone is identified by its content key (tiny-<hash>), not by where the
    # cache lives, so adapters cached under one GRASP_CACHE_DIR stay valid when it moves.
    backbone_id = Path(backbone).name if Path(backbone).name.startswith("tiny-") else backbone
    data_key = {
        "preset": preset.name,
        "backbone": backbone_id,
        "task": cfg.task,
        "max_length": preset.max_length,
    }
    if placement.dtype != "float32":
        # An adapter trained on a bf16/fp16 backbone is another adapter; float32 keys stay as
        # they were, so existing caches remain valid.
        data_key["backbone_dtype"] = placement.dtype
    if cfg.adapter_trainer != "loop":
        data_key["trainer"] = cfg.adapter_trainer  # loop keys stay as they were
    if dist.process_count() > 1:
        # trained data-parallel, a global batch is processes x batch_size rows: another adapter
        data_key["processes"] = dist.process_count()

    def adapter(role, lang, data_name, seed, sizes, lora, train, dev) -> dict[str, Any]:
        """The cached (or freshly trained) source or target adapter's LoRA state."""
        t = time.perf_counter()
        key = {
            "name": f"{role}-{cfg.task}-{lang}",
            **data_key,
            "source_data": _data_id(data_name),
            "lang": lang,
            "seed": seed,
            "sizes": sizes,
            "lora": asdict(lora),
            "embedded": asdict(preset.embedded),
        }
        train_fn = lambda: _train_adapter(  # noqa: E731
            base, tokenizer, encoded[train], encoded[dev], lora, seed,
            f"{role} LoRA ({lang})", progress, cfg.adapter_trainer,
        )  # fmt: skip
        state, _ = cached_adapter(key, train_fn, log=log)
        timings[f"{role}_adapter_s"] = time.perf_counter() - t
        return state

    source_state = adapter(
        "source", cfg.source, source_name, cfg.source_seed, [n_train, n_dev], cfg.source_lora,
        "source_train", "source_dev",
    )  # fmt: skip
    target_state = adapter(
        "target", cfg.target, target_name, cfg.seed, asdict(preset.sizes), cfg.target_lora,
        "train", "dev",
    )  # fmt: skip
    host_of(base).drop(_TRAINING)  # the states are kept; the training adapter is not needed
    merged, rank, alpha = merge_lora_states(
        source_state,
        target_state,
        cfg.merge_form,
        cfg.source_lora.r,
        cfg.source_lora.lora_alpha,
        cfg.target_lora.r,
        cfg.target_lora.lora_alpha,
    )
    return Prepared(
        preset,
        cfg,
        base,
        tokenizer,
        backbone,
        tgt,
        encoded,
        source_state,
        target_state,
        merged,
        rank,
        alpha,
        timings,
        placement,
    )


def start_model(
    prep: Prepared, arm: str, name: str = "default", state: dict[str, Any] | None = None
) -> Any:
    """The one backbone with a fresh adapter `name` (active) holding the merge or the target.

    Every call re-creates the adapter from the prepared state, so a final run always starts
    from the untouched merge; the backbone is shared, never copied (`AdapterHost`). `state`
    (merged arm only: LoRA weights of the merge's shape, keyed like `lora_state`) starts it
    from those weights instead: the single-pass protocol's controller adapter.
    """
    cfg = prep.cfg
    if state is not None and arm != "merged":
        raise ValueError(f"a start state for arm={arm!r}; fix: only the merged arm takes one")
    if arm == "merged":
        return attach_lora(
            prep.base,
            cfg.final_lora,
            cfg.seed,
            prep.merged_state if state is None else state,
            r=prep.merged_rank,
            lora_alpha=prep.merged_alpha,
            name=name,
        )
    if arm == "target_only":
        return attach_lora(prep.base, cfg.target_lora, cfg.seed, prep.target_state, name=name)
    raise ValueError(f"arm={arm!r} is unknown; fix: use one of {ARMS}")


def score(
    prep: Prepared, model: Any, split: str = "test", predictions: list[str] | None = None
) -> dict[str, float]:
    """Greedy-decode `split` and score it with the task's metrics.

    `predictions`, when given a list, receives the decoded texts (benchmarks store them so
    that they can be re-scored under other metric conventions without decoding again).
    """
    cfg, preset = prep.cfg, prep.preset
    rows = getattr(prep.splits, split)
    preds = generate(
        model,
        prep.tokenizer,
        rows,
        cfg.task,
        cfg.target,
        preset.max_length,
        preset.max_new_tokens[cfg.task],
        batch_size=cfg.decode_batch_size,
        by_length=cfg.decode_order == "length",
    )
    if predictions is not None:
        predictions.extend(preds)
    refs = reference_texts(rows, cfg.task, cfg.target)
    if cfg.task == "qa":
        answers = [r["answers"]["text"] for r in rows]
        return qa_metrics(preds, answers, cfg.target, cfg.bertscore_model)
    return summary_metrics(preds, refs, cfg.target, cfg.bertscore_model, rouge=cfg.rouge)


def final_run(
    prep: Prepared,
    ratio: float,
    arm: str = "merged",
    progress: bool = False,
    keep_model: bool = False,
    lora: LoraTrainConfig | None = None,
    on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
    resume: dict[str, Any] | None = None,
    start: dict[str, Any] | None = None,
) -> RunResult:
    """Fine-tune `arm`'s adapter on the target train split with pruning fixed at `ratio`.

    Ratio 0 is a plain fine-tune (no mask). The best dev checkpoint is scored on the test split
    (greedy decoding) and by its test answer NLL. `on_checkpoint` / `resume` make the
    fine-tune crash-safe (see `grasp_env.lm.adapters.fit`). `start` begins from those LoRA
    weights instead of the merge (the single-pass protocol continues the controller's adapter:
    `grasp_env.process.LoraProcess.adapter_at`).
    """
    cfg = prep.cfg
    lora = lora or cfg.final_lora
    t0 = time.perf_counter()
    model = start_model(prep, arm, state=start)
    prune = None
    if ratio > 0:
        importance = None
        if cfg.final_importance == "input_aware":
            enc = prep.encoded["train"].encodings
            device = prep.placement.torch_device
            batches = [
                collate(enc[i : i + 16], prep.pad_id, device) for i in range(0, len(enc), 16)
            ]
            importance = input_aware_importance(model, batches)
        elif cfg.final_importance != "magnitude":
            raise ValueError(
                f"final_importance={cfg.final_importance!r}; fix: use 'magnitude' or 'input_aware'"
            )
        prune = PruneSpec(ratio, cfg.mask_scope, importance, cfg.final_rebuild_every)
    result = fit(
        model,
        prep.encoded["train"],
        prep.encoded["dev"],
        lora,
        cfg.seed,
        prep.pad_id,
        prune=prune,
        progress=progress,
        desc=f"final run {arm} @ {ratio:.3f}",
        on_checkpoint=on_checkpoint,
        resume=resume,
    )
    from peft import set_peft_model_state_dict

    set_peft_model_state_dict(model, result.state)
    t_eval = time.perf_counter()
    test_loss = evaluate_loss(model, prep.encoded["test"], prep.pad_id)
    predictions: list[str] = []
    test = score(prep, model, predictions=predictions)
    eval_seconds = time.perf_counter() - t_eval
    run = RunResult(
        arm,
        ratio,
        result.best_dev_loss,
        test_loss,
        test,
        time.perf_counter() - t0,
        result,
        model if keep_model else None,
        eval_seconds,
        predictions,
    )
    return run
