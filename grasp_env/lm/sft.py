"""Source and target adapters trained with TRL's SFTTrainer.

The two adapters the merge starts from need no mask and no environment, so they train with the
ecosystem's trainer instead of a loop of our own: TRL's `SFTTrainer` on the already tokenised
rows (prompt tokens at -100 in `labels`, so the loss covers the answer or summary and EOS only),
the LoRA adapter on the one backbone (`AdapterHost`), AdamW at a constant learning rate and no
gradient clipping (the recipe's), evaluation on the dev split every `eval_every` steps, the best
checkpoint by dev loss kept (`load_best_model_at_end`), early stopping after `patience`
evaluations without improvement (`EarlyStoppingCallback`) and TensorBoard logs. Under
`accelerate launch` / `torchrun` the trainer runs data-parallel by itself (DDP, or on the
FSDP-sharded backbone of `--strategy fsdp`, which transformers' Trainer takes as a model
sharded at load time: no DDP wrap, the adapter's gradients averaged by the trainer).

What differs from the package's own loop (`adapters.fit`, still used for the final run, whose
mask the trainer cannot hold): the data order (the trainer's seeded sampler), no evaluation
before the first step (the untrained adapter is never the "best"), and the dev loss averaged
per evaluation batch rather than per token. The adapters therefore differ, and so do the
cache keys (`trainer: sft`); `--adapter-trainer loop` keeps the earlier adapters.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["sft_train"]


def _dataset(split: Any) -> Any:
    from datasets import Dataset

    return Dataset.from_list(
        [{"input_ids": e["input_ids"], "labels": e["labels"]} for e in split.encodings]
    )


def sft_train(
    model: Any,
    train: Any,
    dev: Any,
    cfg: Any,
    seed: int,
    tokenizer: Any,
    progress: bool = False,
    log_dir: Path | None = None,
) -> dict[str, Any]:
    """Train the model's active LoRA adapter; returns its info (best dev loss, steps, seconds).

    The best checkpoint's weights are loaded into the model when training ends.
    """
    import time

    import torch
    from transformers import EarlyStoppingCallback
    from trl import SFTConfig, SFTTrainer

    from grasp_env.lm import dist

    t0 = time.perf_counter()
    # One checkpoint directory for all processes: the main one writes the checkpoints, and
    # every process reloads the best one from there at the end (the same weights everywhere).
    work_dir = tempfile.mkdtemp(prefix="grasp-sft-") if dist.is_main() else None
    work = Path(dist.broadcast_object(work_dir))
    device = next(model.parameters()).device
    try:
        args = SFTConfig(
            output_dir=str(work),
            max_steps=cfg.max_steps,
            per_device_train_batch_size=cfg.batch_size,
            per_device_eval_batch_size=16,
            learning_rate=cfg.learning_rate,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=cfg.weight_decay,
            max_grad_norm=0.0,
            eval_strategy="steps",
            eval_steps=cfg.eval_every,
            save_strategy="steps",
            save_steps=cfg.eval_every,
            save_only_model=True,
            save_total_limit=2,
            load_best_model_at_end=True,
            metric_for_best_model="eval_loss",
            greater_is_better=False,
            logging_steps=max(1, cfg.eval_every // 5),
            report_to=["tensorboard"] if log_dir is not None else [],
            seed=seed,
            data_seed=seed,
            max_length=None,
            dataloader_num_workers=0,
            use_cpu=device.type == "cpu",
            bf16=False,
            disable_tqdm=not progress,
        )
        callbacks = [EarlyStoppingCallback(cfg.patience)] if cfg.patience else []
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=_dataset(train),
            eval_dataset=_dataset(dev),
            processing_class=tokenizer,
            callbacks=callbacks,
        )
        if not progress:
            from transformers import PrinterCallback

            trainer.remove_callback(PrinterCallback)  # it prints every log line otherwise
        trainer.train()
        state = trainer.state
        evals = [(h["step"], h["eval_loss"]) for h in state.log_history if "eval_loss" in h]
        restored = trainer.evaluate()["eval_loss"]  # the best checkpoint's, if it was reloaded
        best = min(evals, key=lambda e: e[1]) if evals else (state.global_step, float("nan"))
        if log_dir is not None and (work / "runs").is_dir():
            shutil.copytree(work / "runs", log_dir, dirs_exist_ok=True)
        del trainer
    finally:
        dist.wait_for_everyone()  # nobody is still reading the best checkpoint
        if dist.is_main():
            shutil.rmtree(work, ignore_errors=True)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {
        "trainer": "trl.SFTTrainer",
        "best_dev_loss": best[1],
        "best_step": best[0],
        "steps": state.global_step,
        "dev_losses": evals,
        "restored_dev_loss": restored,
        "seconds": time.perf_counter() - t0,
    }
