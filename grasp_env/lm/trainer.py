"""LoRA fine-tuning on transformers' Trainer: the one training stack of every adapter.

The source adapter, the target adapter, every final run and every grid point train here
(`train_lora`); only the controller run, whose optimizer steps the environment drives one round
at a time, steps by itself (`grasp_env.lm.step`). What the package adds to the Trainer goes
through its documented extension points:

- `compute_loss`: the paper's loss (token-mean cross-entropy on the answer or summary tokens,
  logits only at those positions: `grasp_env.lm.batches.answer_loss`);
- `evaluate`: the dev loss as a token mean over the whole split, the same definition as the
  micro-dev probes (the Trainer's own evaluation averages per batch);
- the train sampler: rows from the run's `RowStream`, so a resumed run, a data-parallel run and
  the single-pass continuation of a controller run all read the rows they would otherwise;
- callbacks: `PruneCallback` (the mask: built before the first step, re-applied after every
  optimizer step in `on_optimizer_step`, rebuilt every `rebuild_every` steps with AdamW moments
  of newly pruned entries reset), `BestCheckpoint` (the best dev state kept in memory, the
  untrained start included through `eval_on_start`; early stopping after `patience`
  evaluations without improvement) and, for `--resume`, checkpoints every dev evaluation.

Why transformers' Trainer and not TRL's SFTTrainer (a Trainer subclass): every piece SFTTrainer
adds (tokenising the dataset, its collator, per-token entropy and accuracy computed from the full
logits at every step) is replaced above, the last one at a cost this package cannot afford.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grasp_env.atomic import atomic_file
from grasp_env.lm import dist
from grasp_env.lm.batches import EncodedSplit, answer_loss, collate, evaluate_loss
from grasp_env.lm.order import RowSampler
from grasp_env.lm.pruning import PruneState, lora_parameters

__all__ = ["FitResult", "PruneSpec", "StartState", "latest_checkpoint", "train_lora"]

STATE_FILE = "grasp_state.pt"
"""Written last into a Trainer checkpoint: the mask, the stash and the best dev state. Its
presence marks the checkpoint complete (a kill while the Trainer writes leaves none)."""


@dataclass(frozen=True)
class PruneSpec:
    """Pruning during a fine-tune: a fixed ratio, enforced after every optimizer step."""

    ratio: float
    """Fraction of LoRA entries kept at zero."""
    scope: str
    """'per_tensor' (reference) or 'global' (`--merge.mask-scope`)."""
    importance: Callable[[dict[str, Any]], dict[str, Any]] | None
    """Importance function (name -> scores); None means magnitude (`--final.importance`)."""
    rebuild_every: int
    """Rebuild the mask from fresh importance every this many steps; 0 keeps the first mask
    (`--final.rebuild-every`)."""


@dataclass
class StartState:
    """Where a fine-tune starts when it continues another run (the single-pass protocol)."""

    optimizer: dict[str, Any]
    """The AdamW state dict of the run it continues (same parameter order)."""
    prune: PruneState
    """Its mask and stash: released entries come back with the values they had."""
    stream_seed: int
    """The seed of its row stream."""
    position: int
    """Its position in the row stream: the next row it would have trained on."""


@dataclass
class FitResult:
    """What a fine-tune leaves: the best LoRA state and its history."""

    state: dict[str, Any]
    best_dev_loss: float
    best_step: int
    steps: int
    train_losses: list[float] = field(default_factory=list)
    dev_losses: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    """Training seconds, those before a resume included."""
    stopped_early: bool = False
    resumed_seconds: float = 0.0
    """Of `seconds`, those spent before the process resumed from a checkpoint."""


class _Rows:
    """A split's encodings as a map-style dataset (collated by `collate`)."""

    def __init__(self, split: EncodedSplit) -> None:
        self.encodings = split.encodings

    def __len__(self) -> int:
        return len(self.encodings)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.encodings[index]


class _Training:
    """The package's part of a fine-tune: the mask, the best dev state, early stopping, resume.

    Plain Python, driven by the Trainer through the callback `_make_classes` builds around it.
    """

    def __init__(self, params: dict[str, Any], optimizer: Any, prune: PruneSpec | None,
                 start: StartState | None, patience: int) -> None:  # fmt: skip
        self.params, self.optimizer, self.spec, self.patience = params, optimizer, prune, patience
        self.prune = None if prune is None else (start.prune if start else PruneState(params))
        self.best_loss, self.best_step, self.best_state = math.inf, 0, None
        self.bad_evals, self.stopped, self.resumed = 0, False, False
        self.dev_losses: list[tuple[int, float]] = []
        self.train_losses: list[float] = []
        self.started, self.seconds_before = time.perf_counter(), 0.0

    def seconds(self) -> float:
        """Training seconds so far, those before a resume included."""
        return self.seconds_before + time.perf_counter() - self.started

    def _masks(self) -> dict[str, Any]:
        spec = self.spec
        if spec.importance is None:
            return self.prune.masks_at(self.params, spec.ratio, spec.scope)
        return self.prune.masks_at(self.params, spec.ratio, spec.scope, spec.importance)

    def begin(self) -> None:
        """Before the first step (and before the start's evaluation): prune at the ratio."""
        if self.prune is not None and not self.resumed:
            self.prune.commit(self.params, self._masks(), self.optimizer)

    def after_optimizer_step(self, step: int) -> None:
        """Re-zero the pruned entries; rebuild the mask every `rebuild_every` steps."""
        if self.prune is None:
            return
        self.prune.enforce(self.params)
        if self.spec.rebuild_every and step % self.spec.rebuild_every == 0:
            self.prune.commit(self.params, self._masks(), self.optimizer)

    def evaluated(self, step: int, loss: float) -> bool:
        """Record a dev loss; True when early stopping says stop."""
        from grasp_env.lm.host import state_from_parameters

        self.dev_losses.append((step, loss))
        if loss < self.best_loss:
            self.best_loss, self.best_step, self.bad_evals = loss, step, 0
            self.best_state = state_from_parameters(self.params)
            return False
        self.bad_evals += 1
        self.stopped = bool(self.patience and self.bad_evals >= self.patience)
        return self.stopped

    def state_dict(self) -> dict[str, Any]:
        """What a Trainer checkpoint lacks: weights as trained, mask, stash, best state."""
        return {
            "params": {n: p.detach().cpu().clone() for n, p in self.params.items()},
            "prune": None if self.prune is None else self.prune.state_dict(),
            "best_loss": self.best_loss,
            "best_step": self.best_step,
            "best_state": self.best_state,
            "bad_evals": self.bad_evals,
            "dev_losses": [list(x) for x in self.dev_losses],
            "train_losses": list(self.train_losses),
            "seconds": self.seconds(),
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Continue from `state_dict` (the Trainer restores optimizer, RNG and step itself)."""
        import torch

        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(saved["params"][name])
        if self.prune is not None:
            self.prune.load_state_dict(saved["prune"])
        self.best_loss, self.best_step = saved["best_loss"], saved["best_step"]
        self.best_state, self.bad_evals = saved["best_state"], saved["bad_evals"]
        self.dev_losses = [(int(s), float(v)) for s, v in saved["dev_losses"]]
        self.train_losses = list(saved["train_losses"])
        self.seconds_before, self.resumed = float(saved["seconds"]), True
        self.stopped = bool(self.patience and self.bad_evals >= self.patience)

    def save(self, folder: Path) -> None:
        """Complete a Trainer checkpoint: this state, written last and whole."""
        import torch

        with atomic_file(folder / STATE_FILE) as tmp:
            torch.save(self.state_dict(), tmp)


def _make_classes() -> tuple[type, type]:
    """The Trainer subclass and its callback (built lazily: importing this module is cheap)."""
    from transformers import Trainer, TrainerCallback

    class LoraTrainer(Trainer):
        """transformers' Trainer with the paper's loss, token-mean dev loss and the row stream."""

        def __init__(self, *args: Any, training: _Training, dev: EncodedSplit, pad_id: int,
                     eval_batch_size: int, sampler: RowSampler, **kwargs: Any) -> None:  # fmt: skip
            super().__init__(*args, **kwargs)
            self.training, self.dev_split, self.pad_id = training, dev, pad_id
            self.eval_rows_per_batch, self.row_sampler = eval_batch_size, sampler
            self._flop_params: int | None = None

        # The two overrides below cut the Trainer's bookkeeping (a paired, alternating timing
        # found it 7-10% slower per final run than the package's former loop on the default
        # preset; with these, the gc freeze and `_lean_mode_switches`, the two take the same
        # time within 1%: docs/BENCHMARKS.md): both return the numbers upstream logs, without
        # walking every module of the backbone at every step.

        def floating_point_ops(self, inputs):
            # upstream counts the model's parameters anew at every step; the count is fixed
            main = getattr(self.model, "main_input_name", "input_ids")
            if main not in inputs or not hasattr(self.model, "num_parameters"):
                return 0
            if self._flop_params is None:
                self._flop_params = int(self.model.num_parameters(exclude_embeddings=True))
            return 6 * inputs[main].numel() * self._flop_params

        def _get_grad_norm(self, model, grad_norm=None):
            # upstream takes the logged norm over model.parameters(), the frozen backbone's
            # too; only the LoRA tensors have gradients, so their norm is the same number.
            # Upstream's own path where it does more than a norm: a sharded backbone, loss
            # scaling (fp16 unscales first), XLA or DeepSpeed.
            from accelerate.utils import DistributedType

            plain = (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU)
            acc = self.accelerator
            if (
                grad_norm is not None
                or dist.is_sharded(model)
                or getattr(acc, "scaler", None) is not None
                or acc.distributed_type not in plain
            ):
                return super()._get_grad_norm(model, grad_norm)
            import torch

            grads = [p.grad for p in self.training.params.values() if p.grad is not None]
            return torch.nn.utils.get_total_norm(grads)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = answer_loss(model, inputs)
            if model.training:
                value = float(loss.detach().item())
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"training loss is {value} at step {self.state.global_step + 1}"
                    )
                self.training.train_losses.append(value)
            return (loss, None) if return_outputs else loss

        def _get_train_sampler(self, train_dataset=None):
            return self.row_sampler

        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
            loss = evaluate_loss(self.model, self.dev_split, self.pad_id, self.eval_rows_per_batch)
            metrics = {f"{metric_key_prefix}_loss": loss}
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(
                self.args, self.state, self.control, metrics
            )
            return metrics

    class GraspCallback(TrainerCallback):
        """Hands the Trainer's events to `_Training`."""

        def __init__(self, training: _Training) -> None:
            self.training = training

        def on_train_begin(self, args, state, control, **kwargs):
            self.training.begin()

        def on_optimizer_step(self, args, state, control, **kwargs):
            # called after optimizer.step(), before the Trainer counts the step
            self.training.after_optimizer_step(state.global_step + 1)

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if self.training.evaluated(state.global_step, float(metrics["eval_loss"])):
                control.should_training_stop = True

        def on_save(self, args, state, control, **kwargs):
            from grasp_env.faults import maybe_fault

            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and folder.is_dir():
                self.training.save(folder)
            maybe_fault("final_checkpoint")  # tests: a kill right after a complete checkpoint

    return LoraTrainer, GraspCallback


@contextmanager
def _lean_mode_switches(model: Any, params: dict[str, Any]) -> Iterator[None]:
    """For one fine-tune: the Trainer's per-step `model.train()` and `model.zero_grad()`, cheap.

    Upstream calls `model.train()` before every step and `model.zero_grad()` after it. Both walk
    the whole backbone (141 modules and 54 parameters on the default preset: 0.44 ms and 0.21 ms
    a step on one core, about 1% of a final run), although in a LoRA fine-tune the mode changes
    only around the dev evaluation and only the LoRA tensors hold gradients. While this is
    active, `model.train()` returns at once when the model is already training (any other
    switch, `eval()` included, runs the model's own `train`), and `model.zero_grad()` drops the
    gradients of `params` (the optimizer's tensors). Instance attributes shadow the two methods
    for the run's duration and are removed after it, whatever happens.
    """
    own_train = model.train

    def train(mode: bool = True) -> Any:
        if mode and model.training:
            return model
        return own_train(mode)

    def zero_grad(set_to_none: bool = True) -> None:
        for p in params.values():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_().zero_()

    model.train, model.zero_grad = train, zero_grad
    try:
        yield
    finally:
        del model.train, model.zero_grad


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest complete Trainer checkpoint under `directory` (None if there is none)."""
    if not directory.is_dir():
        return None
    done = [p for p in directory.glob("checkpoint-*") if (p / STATE_FILE).is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)


def train_lora(
    model: Any,
    train: EncodedSplit,
    dev: EncodedSplit,
    recipe: Any,
    seed: int,
    pad_id: int,
    eval_batch_size: int = 16,
    prune: PruneSpec | None = None,
    start: StartState | None = None,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    log_dir: Path | None = None,
    progress: bool = False,
) -> FitResult:
    """Fine-tune the active LoRA adapter of `model`; returns the best dev state and history.

    Args:
        model: The PEFT model whose active adapter trains (`grasp_env.lm.host`).
        train: Training rows (the `RowStream` of `seed` orders them).
        dev: Dev rows: evaluated before the first step and every `recipe.eval_every` steps.
        recipe: A `grasp_env.config.TrainConfig` (learning rate, steps, batch, early stopping).
        seed: Seeds the row stream and the dropout stream (the Trainer's `set_seed`).
        pad_id: Padding token id.
        eval_batch_size: Rows per forward pass of the dev evaluation.
        prune: Pruning at a fixed ratio (None: a plain fine-tune).
        start: Continue another run's optimizer, mask and row position (single pass).
        checkpoint_dir: Write a Trainer checkpoint there after every dev evaluation.
        resume: Continue from the newest complete checkpoint in `checkpoint_dir` (if any): the
            result equals an uninterrupted run's on CPU.
        log_dir: Write the Trainer's TensorBoard logs there.
        progress: Show the Trainer's progress bar.

    The model ends holding the best dev state's weights.
    """
    import tempfile

    import torch
    from peft import set_peft_model_state_dict
    from transformers import TrainingArguments

    params = lora_parameters(model)
    optimizer = torch.optim.AdamW(
        list(params.values()), lr=recipe.learning_rate, weight_decay=recipe.weight_decay
    )
    if start is not None:
        optimizer.load_state_dict(start.optimizer)
    training = _Training(params, optimizer, prune, start, recipe.patience)
    if checkpoint_dir is not None and dist.is_sharded(model):
        # transformers cannot checkpoint the optimizer of a model sharded at load time: under
        # --strategy fsdp a killed final run restarts from its first step on --resume
        checkpoint_dir = None
    resume_from = latest_checkpoint(checkpoint_dir) if resume and checkpoint_dir else None
    if resume_from is not None:
        training.load_state_dict(torch.load(resume_from / STATE_FILE, weights_only=True))
    scratch = None
    if checkpoint_dir is None:
        scratch = tempfile.TemporaryDirectory(prefix="grasp-trainer-")
        output_dir = Path(scratch.name)
    else:
        output_dir = Path(checkpoint_dir)
    device = next(model.parameters()).device
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=recipe.max_steps,
        per_device_train_batch_size=recipe.batch_size,
        learning_rate=recipe.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=recipe.weight_decay,
        max_grad_norm=0.0,  # the recipe has no clipping
        eval_strategy="steps",
        eval_steps=recipe.eval_every,
        eval_on_start=resume_from is None,  # the untrained start may be the best state
        save_strategy="steps" if checkpoint_dir is not None else "no",
        save_steps=recipe.eval_every,
        save_total_limit=2,
        logging_steps=recipe.eval_every,
        report_to=["tensorboard"] if log_dir is not None else [],
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        remove_unused_columns=False,
        average_tokens_across_devices=False,
        use_cpu=device.type == "cpu",
        disable_tqdm=not progress,
    )
    trainer_class, callback_class = _make_classes()
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=_Rows(train),
        eval_dataset=_Rows(dev),  # scored by `LoraTrainer.evaluate` as a token mean
        data_collator=lambda rows: collate(rows, pad_id),
        optimizers=(optimizer, None),
        callbacks=[callback_class(training)],
        training=training,
        dev=dev,
        pad_id=pad_id,
        eval_batch_size=eval_batch_size,
        sampler=RowSampler(len(train), seed)
        if start is None
        else RowSampler(len(train), start.stream_seed, start.position),
    )
    if not progress:
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # it prints every log line otherwise
    try:
        saved_step = int(resume_from.name.removeprefix("checkpoint-")) if resume_from else 0
        if resume_from is not None and (training.stopped or saved_step >= recipe.max_steps):
            # the run had ended (early stop or its last step) when this checkpoint was written:
            # the Trainer would still take one more step from it, and another adapter than the
            # uninterrupted run's would come out; the checkpoint already holds the result
            steps = saved_step
        else:
            # accelerate runs a full gc.collect() as training starts; on the CPU the objects
            # that exist before the run (datasets, the backbone's modules) need no scan for
            # cycles. Not on an accelerator, where that collection frees the device memory a
            # previous run's garbage holds; and never inside a caller's own freeze.
            freeze = device.type == "cpu" and gc.get_freeze_count() == 0
            sharded = dist.is_sharded(model)  # FSDP owns its parameters and their gradients
            lean = nullcontext() if sharded else _lean_mode_switches(model, params)
            if freeze:
                gc.freeze()
            try:
                with lean:
                    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
            finally:
                if freeze:
                    gc.unfreeze()
            steps = trainer.state.global_step
    finally:
        if log_dir is not None and dist.is_main() and (output_dir / "runs").is_dir():
            import shutil

            shutil.copytree(output_dir / "runs", log_dir, dirs_exist_ok=True)
        del trainer
        if scratch is not None:
            scratch.cleanup()
    set_peft_model_state_dict(model, training.best_state, adapter_name=model.active_adapter)
    return FitResult(
        state=training.best_state,
        best_dev_loss=training.best_loss,
        best_step=training.best_step,
        steps=steps,
        train_losses=list(training.train_losses),
        dev_losses=list(training.dev_losses),
        seconds=training.seconds(),
        stopped_early=training.stopped,
        resumed_seconds=training.seconds_before,
    )
