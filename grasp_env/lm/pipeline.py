"""The adapter pipeline end to end: data, backbone, source and target LoRA, merge, final runs.

`prepare` does the expensive shared part once per experiment (task, languages, seed): load the
backbone, tokenise the splits, train (or load from the cache) the source and target adapters,
merge them. `final_run` then fine-tunes one adapter with pruning fixed at a ratio and scores it on
dev and test; the grid search, the baselines and the controller's final run all call it. Every
setting comes from one `grasp_env.config.ExperimentConfig`.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from grasp_env.config import TINY_MODEL, ExperimentConfig
from grasp_env.data import load_source_splits, load_target_splits
from grasp_env.data.splits import SPLIT_NAMES
from grasp_env.lm import dist
from grasp_env.lm.batches import (
    EncodedSplit,
    collate,
    encode_rows,
    evaluate_loss,
    generate,
    reference_texts,
)
from grasp_env.lm.cache import cached_adapter
from grasp_env.lm.device import Placement, resolve
from grasp_env.lm.host import LoraShape, attach_lora, canonical_name, host_of
from grasp_env.lm.merge import merge_lora_states
from grasp_env.lm.pruning import input_aware_importance
from grasp_env.lm.trainer import FitResult, PruneSpec, StartState, train_lora
from grasp_env.metrics import MetricUnavailable, bertscore_layer, qa_metrics, summary_metrics
from grasp_env.metrics.rouge import check_rouge

__all__ = [
    "ARMS",
    "Continuation",
    "Prepared",
    "RunResult",
    "check_experiment",
    "final_run",
    "prepare",
    "score",
]

ARMS: tuple[str, ...] = ("merged", "target_only")
"""Which adapter a final run starts from: the merge, or the target LoRA alone."""
TRAINER_KEY = "hf-trainer-1"
"""Enters every adapter cache key: the adapters trained by `grasp_env.lm.trainer`."""
_TRAINING = "default"
"""Adapter name of a source or target LoRA while it trains (deleted once it is cached)."""


def check_experiment(cfg: ExperimentConfig) -> None:
    """Checks that need more than one field and would otherwise fail only after minutes of work.

    The metrics the task and target language are scored with must exist (ROUGE's tokeniser for
    the language, the BERTScore encoder directory). Field-level checks run when the config is
    built.
    """
    from grasp_env.lm.cache import cache_root

    cache_root()  # an empty GRASP_CACHE_DIR, or one that names a file, fails here
    if cfg.controller.probe_batch == "group" and cfg.backbone.strategy == "fsdp":
        raise ValueError(
            "--controller.probe-batch group with --strategy fsdp: scoring candidates together is "
            "not built for a sharded backbone; fix: use --controller.probe-batch single with "
            "fsdp, or --strategy ddp"
        )
    try:
        check_rouge(cfg.data.target if cfg.data.task == "summarization" else None, cfg.eval.rouge)
        if cfg.eval.bertscore_model is not None:
            bertscore_layer(cfg.eval.bertscore_model)
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

    cfg: ExperimentConfig
    base: Any
    tokenizer: Any
    backbone: str
    """The backbone's hub id or local directory (recorded in adapter_config.json)."""
    target_modules: tuple[str, ...]
    """The LoRA target modules in use (the flag's, or PEFT's default for the architecture)."""
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

        What a run's numbers depend on beyond its flags: the tiny and default backbones and
        every adapter are trained here, and another version of a library rounds floats
        differently. A grid reused with `--grid-from` is only comparable with runs on the same
        prepared state, so the benchmark records this per seed and checks it. The backbone is
        not hashed (16 GB for Llama-3-8B): both adapters are trained on it.
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

    def shape(self, arm: str) -> LoraShape:
        """The LoRA shape of a final run's adapter for `arm` (its dropout is the final run's)."""
        cfg = self.cfg
        if arm == "merged":
            r, alpha = self.merged_rank, self.merged_alpha
        elif arm == "target_only":
            r, alpha = cfg.target_lora.r, cfg.target_lora.lora_alpha
        else:
            raise ValueError(f"arm={arm!r} is unknown; fix: use one of {ARMS}")
        return LoraShape(r, alpha, cfg.final.lora_dropout, self.target_modules)


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
    base: Any,
    tokenizer: Any,
    train: EncodedSplit,
    dev: EncodedSplit,
    recipe: Any,
    shape: LoraShape,
    seed: int,
    eval_batch_size: int,
    progress: bool,
) -> tuple[Any, dict[str, Any]]:
    model = attach_lora(base, shape, seed, name=_TRAINING)
    log_dir = Path(tempfile.mkdtemp(prefix="grasp-adapter-tb-"))
    result = train_lora(
        model,
        train,
        dev,
        recipe,
        seed,
        tokenizer.pad_token_id,
        eval_batch_size=eval_batch_size,
        log_dir=log_dir,
        progress=progress,
    )
    info = {
        "trainer": "transformers.Trainer",
        "best_dev_loss": result.best_dev_loss,
        "best_step": result.best_step,
        "steps": result.steps,
        "dev_losses": result.dev_losses,
        "seconds": result.seconds,
        "tensorboard_dir": str(log_dir),
    }
    return model, info


def prepare(cfg: ExperimentConfig, progress: bool = True, log: Any = print) -> Prepared:
    """Load data and backbone, train or load the two adapters, merge them."""
    from grasp_env.lm.architecture import resolve_target_modules
    from grasp_env.lm.backbone import ensure_tiny_backbone, load_backbone

    check_experiment(cfg)
    data, bb = cfg.data, cfg.backbone
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    placement = resolve(bb.device, bb.dtype)
    shard = bb.strategy == "fsdp" and dist.process_count() > 1
    backbone = bb.model
    if bb.model == TINY_MODEL:
        with dist.main_first():  # one process builds a missing tiny backbone, the others wait
            backbone = str(ensure_tiny_backbone(bb.tiny, progress=progress, log=log))
    # every process loads at once (a sharded load is a collective)
    base, tokenizer = load_backbone(
        backbone, trust_remote_code=bb.trust_remote_code, dtype=placement.dtype, shard=shard
    )
    base.requires_grad_(False)
    if shard:  # placed by transformers: each process holds its shard on its own device
        log(f"backbone sharded over {dist.process_count()} processes (FSDP2)")
    else:
        base.to(placement.torch_device)
    if bb.gradient_checkpointing:
        base.activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False}
        )
    targets = resolve_target_modules(base, bb.target_modules)
    timings["backbone_s"] = time.perf_counter() - t0

    src = load_source_splits(
        data.source_data,
        data.task,
        data.source,
        data.source_seed,
        data.source_train_rows,
        data.source_dev_rows,
        data.embedded,
    )
    tgt = load_target_splits(
        data.target_data, data.task, data.target, cfg.seed, data.split_sizes, data.embedded
    )
    enc = lambda rows, lang: encode_rows(tokenizer, rows, data.task, lang, data.max_length)  # noqa: E731
    encoded = {
        "source_train": enc(src.train, data.source),
        "source_dev": enc(src.dev, data.source),
        "train": enc(tgt.train, data.target),
        "dev": enc(tgt.dev, data.target),
        "micro_dev": enc(tgt.micro_dev, data.target),
        "test": enc(tgt.test, data.target),
    }
    # The built tiny backbone is identified by its content key (tiny-<hash>), not by where the
    # cache lives, so adapters cached under one GRASP_CACHE_DIR stay valid when it moves.
    name = Path(backbone).name
    backbone_id = name if bb.model == TINY_MODEL else backbone
    data_key = {
        "backbone": backbone_id,
        "task": data.task,
        "max_length": data.max_length,
        "trainer": TRAINER_KEY,
        "target_modules": list(targets),
        "backbone_dtype": placement.dtype,
        "processes": dist.process_count(),
        "embedded": asdict(data.embedded),
    }

    def adapter(role, lang, data_name, seed, sizes, recipe, train, dev) -> dict[str, Any]:
        """The cached (or freshly trained) source or target adapter's LoRA state."""
        t = time.perf_counter()
        key = {
            "name": f"{role}-{data.task}-{lang}",
            **data_key,
            "source_data": _data_id(data_name),
            "lang": lang,
            "seed": seed,
            "sizes": sizes,
            "lora": asdict(recipe),
        }
        shape = LoraShape(recipe.r, recipe.lora_alpha, recipe.lora_dropout, targets)
        train_fn = lambda: _train_adapter(  # noqa: E731
            base, tokenizer, encoded[train], encoded[dev], recipe, shape, seed,
            cfg.eval.eval_batch_size, progress,
        )  # fmt: skip
        state, _ = cached_adapter(key, train_fn, log=log)
        timings[f"{role}_adapter_s"] = time.perf_counter() - t
        return state

    source_state = adapter(
        "source", data.source, data.source_data, data.source_seed,
        [data.source_train_rows, data.source_dev_rows], cfg.source_lora,
        "source_train", "source_dev",
    )  # fmt: skip
    target_state = adapter(
        "target", data.target, data.target_data, cfg.seed, asdict(data.split_sizes),
        cfg.target_lora, "train", "dev",
    )  # fmt: skip
    host_of(base).drop(_TRAINING)  # the states are kept; the training adapter is not needed
    src_lora, tgt_lora = cfg.source_lora, cfg.target_lora
    merged, rank, alpha = merge_lora_states(
        source_state,
        target_state,
        cfg.merge.form,
        src_lora.r,
        src_lora.lora_alpha,
        tgt_lora.r,
        tgt_lora.lora_alpha,
    )
    return Prepared(
        cfg,
        base,
        tokenizer,
        backbone,
        targets,
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
    if state is not None and arm != "merged":
        raise ValueError(f"a start state for arm={arm!r}; fix: only the merged arm takes one")
    initial = {"merged": prep.merged_state, "target_only": prep.target_state}.get(arm)
    return attach_lora(prep.base, prep.shape(arm), prep.cfg.seed, state or initial, name=name)


def score(
    prep: Prepared, model: Any, split: str = "test", predictions: list[str] | None = None
) -> dict[str, float]:
    """Greedy-decode `split` and score it with the task's metrics.

    `predictions`, when given a list, receives the decoded texts (benchmarks store them so
    that they can be re-scored under other metric conventions without decoding again).
    """
    cfg = prep.cfg
    task, target = cfg.data.task, cfg.data.target
    rows = getattr(prep.splits, split)
    preds = generate(
        model,
        prep.tokenizer,
        rows,
        task,
        target,
        cfg.data.max_length,
        cfg.eval.max_new_tokens,
        batch_size=cfg.eval.decode_batch_size,
        by_length=cfg.eval.decode_order == "length",
    )
    if predictions is not None:
        predictions.extend(preds)
    refs = reference_texts(rows, task, target)
    if task == "qa":
        answers = [r["answers"]["text"] for r in rows]
        return qa_metrics(preds, answers, target, cfg.eval.bertscore_model)
    return summary_metrics(preds, refs, target, cfg.eval.bertscore_model, rouge=cfg.eval.rouge)


@dataclass
class Continuation:
    """A final run that continues the controller run (`--final.protocol single-pass`)."""

    weights: dict[str, Any]
    """The controller adapter's LoRA weights at p*, keyed like `lora_state`."""
    optimizer: dict[str, Any]
    """Its AdamW state dict (parameters in the same sorted order as any adapter's)."""
    prune: dict[str, Any]
    """Its mask and stash, keyed without the adapter's name (`canonical_name`)."""
    stream_seed: int
    """The seed of its row stream."""
    position: int
    """Its position in the row stream."""
    max_steps: int
    """Optimizer steps the continuation trains."""


def final_run(
    prep: Prepared,
    ratio: float,
    arm: str = "merged",
    progress: bool = False,
    keep_model: bool = False,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    start: Continuation | None = None,
) -> RunResult:
    """Fine-tune `arm`'s adapter on the target train split with pruning fixed at `ratio`.

    Ratio 0 is a plain fine-tune (no mask). The best dev checkpoint is scored on the test split
    (greedy decoding) and by its test answer NLL. `checkpoint_dir` / `resume` make the
    fine-tune crash-safe (Trainer checkpoints: `grasp_env.lm.trainer.train_lora`). `start`
    continues the controller run instead of starting from the merge (single pass).
    """
    from dataclasses import replace

    from grasp_env.lm.pruning import PruneState, lora_parameters

    cfg = prep.cfg
    recipe = cfg.final if start is None else replace(cfg.final, max_steps=start.max_steps)
    t0 = time.perf_counter()
    model = start_model(prep, arm, state=None if start is None else start.weights)
    params = lora_parameters(model)
    prune, carried = None, None
    if ratio > 0:
        importance = None
        if cfg.final.importance == "input_aware":
            enc = prep.encoded["train"].encodings
            device = prep.placement.torch_device
            size = cfg.eval.eval_batch_size
            batches = [
                collate(enc[i : i + size], prep.pad_id, device) for i in range(0, len(enc), size)
            ]
            importance = input_aware_importance(model, batches)
        prune = PruneSpec(ratio, cfg.merge.mask_scope, importance, cfg.final.rebuild_every)
    if start is not None:
        state = PruneState(params)
        local = {canonical_name(n): n for n in params}
        state.load_state_dict(
            {
                "keep": None
                if start.prune["keep"] is None
                else {local[k]: v for k, v in start.prune["keep"].items()},
                "stash": {local[k]: v for k, v in start.prune["stash"].items()},
            }
        )
        carried = StartState(start.optimizer, state, start.stream_seed, start.position)
    result = train_lora(
        model,
        prep.encoded["train"],
        prep.encoded["dev"],
        recipe,
        cfg.seed,
        prep.pad_id,
        eval_batch_size=cfg.eval.eval_batch_size,
        prune=prune,
        start=carried,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        progress=progress,
    )
    t_eval = time.perf_counter()
    test_loss = evaluate_loss(model, prep.encoded["test"], prep.pad_id, cfg.eval.eval_batch_size)
    predictions: list[str] = []
    test = score(prep, model, predictions=predictions)
    eval_seconds = time.perf_counter() - t_eval
    return RunResult(
        arm,
        ratio,
        result.best_dev_loss,
        test_loss,
        test,
        time.perf_counter() - t0 + result.resumed_seconds,
        result,
        model if keep_model else None,
        eval_seconds,
        predictions,
    )
