"""Batching, answer-token loss and greedy-decoding evaluation for any causal LM.

The loss is the paper's: token-mean causal-LM cross-entropy over the target tokens (answer or
summary, plus EOS); prompt tokens are not scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grasp_env.data.prompts import IGNORE_INDEX, target_text, tokenize_row
from grasp_env.lm import dist

__all__ = [
    "EncodedSplit",
    "answer_loss",
    "collate",
    "encode_rows",
    "evaluate_loss",
    "evaluate_losses",
    "generate",
    "model_device",
]


@dataclass
class EncodedSplit:
    """Rows of one split, tokenised once: training and probing reuse the encodings."""

    rows: list[dict[str, Any]]
    encodings: list[dict[str, Any]]
    task: str
    lang: str

    def __len__(self) -> int:
        return len(self.rows)


def encode_rows(
    tokenizer: Any, rows: list[dict[str, Any]], task: str, lang: str, max_length: int
) -> EncodedSplit:
    """Tokenise `rows` with the prompt masked out of the labels."""
    encodings = [tokenize_row(tokenizer, r, task, lang, max_length) for r in rows]
    return EncodedSplit(rows, encodings, task, lang)


def model_device(model: Any) -> Any:
    """The device of a model's (first) parameters: where its batches must go."""
    return next(model.parameters()).device


def collate(encodings: list[dict[str, Any]], pad_id: int, device: Any = None) -> dict[str, Any]:
    """Right-padded tensors: input_ids, attention_mask, labels (IGNORE_INDEX on padding).

    Built on the CPU and moved to `device` once (the collate step is where batches move).
    """
    import torch

    width = max(len(e["input_ids"]) for e in encodings)
    ids = torch.full((len(encodings), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encodings), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(encodings), width), dtype=torch.long)
    for i, e in enumerate(encodings):
        n = len(e["input_ids"])
        ids[i, :n] = torch.tensor(e["input_ids"])
        labels[i, :n] = torch.tensor(e["labels"])
        mask[i, :n] = 1
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    if device is not None and torch.device(device).type != "cpu":
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    return batch


def answer_loss(model: Any, batch: dict[str, Any], reduction: str = "mean", **forward: Any) -> Any:
    """Cross-entropy over target tokens only, with logits computed only where a target is.

    The LM head runs only at the positions whose next token is a target in some row of the
    batch (transformers' `logits_to_keep` with an index tensor), not at every prompt token:
    the answer is a few tokens of a long prompt, so this skips most of the head's work and
    memory (at Llama-3's 128k vocabulary the full logits of one 1,024-token row are 512 MB in
    float32). The loss is the same up to float rounding (tests/test_batches.py). Models whose
    forward lacks `logits_to_keep` get the full logits.

    Args:
        model: A causal LM.
        batch: Output of `collate`.
        reduction: "mean" (token mean over the batch, the training loss), "sum" (for
            accumulating an exact token mean over several batches) or "row" (one sum per
            row: rows of one batch that belong to different adapters, `evaluate_losses`).
        forward: Extra keyword arguments of the model's forward (PEFT's `adapter_names`).
    """
    import torch.nn.functional as F

    shift_labels = batch["labels"][:, 1:]
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if _keeps_logits(model):
        keep = (shift_labels != IGNORE_INDEX).any(dim=0).nonzero().squeeze(-1)
        if keep.numel() == 0:  # no target at all: one position, every label ignored
            keep = keep.new_zeros(1)
        logits = model(**inputs, **forward, logits_to_keep=keep).logits.float()
        shift_labels = shift_labels[:, keep]
    else:
        logits = model(**inputs, **forward).logits[:, :-1].float()
    losses = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)),
        shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none" if reduction == "row" else reduction,
    )
    return losses.view(shift_labels.shape).sum(dim=1) if reduction == "row" else losses


_KEEPS_LOGITS: dict[type, bool] = {}


def _keeps_logits(model: Any) -> bool:
    """Whether the (PEFT-wrapped) model's forward takes `logits_to_keep` (cached per class)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cls = type(base)
    if cls not in _KEEPS_LOGITS:
        _KEEPS_LOGITS[cls] = "logits_to_keep" in inspect.signature(base.forward).parameters
    return _KEEPS_LOGITS[cls]


def evaluate_loss(model: Any, split: EncodedSplit, pad_id: int, batch_size: int = 16) -> float:
    """Token-mean target loss over a whole split, in batches, without gradients.

    With several processes each scores every n-th row and the sums are added up, so the
    result is the single-process token mean (`grasp_env.lm.dist`).
    """
    import torch

    was_training = model.training
    model.eval()
    device = model_device(model)
    mine = split.encodings[dist.rank() :: dist.process_count()]
    largest_share = -(-len(split.encodings) // dist.process_count())
    lockstep = dist.is_sharded(model)
    total, tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, largest_share, batch_size):
            chunk = mine[start : start + batch_size]
            if not chunk:  # a shorter share: under FSDP a forward is a collective, keep step
                if lockstep:
                    answer_loss(model, collate(split.encodings[:1], pad_id, device))
                continue
            batch = collate(chunk, pad_id, device)
            total += answer_loss(model, batch, reduction="sum").item()
            tokens += int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    total, tokens = dist.sum_values([total, tokens], device)
    if was_training:
        model.train()
    return total / max(tokens, 1)


def evaluate_losses(
    model: Any, split: EncodedSplit, pad_id: int, adapters: list[str], batch_size: int = 16
) -> list[float]:
    """`evaluate_loss` of several adapters of one PEFT model, sharing forward passes.

    Each chunk of `batch_size` rows is repeated once per adapter and scored in one forward
    (PEFT's mixed-adapter batches: `adapter_names` routes each row through its own adapter,
    the backbone's matmuls run once over all rows). A controller round's candidates are
    independent masks of one adapter, so they can be scored together instead of one forward
    each; on a GPU the larger batch fills the device better (docs/BENCHMARKS.md, "Speed").
    Same token means as one `evaluate_loss` per adapter, up to float rounding. Several
    processes split the rows as `evaluate_loss` does; a sharded backbone is refused (every
    forward there is a collective and PEFT's per-row routing is untested under FSDP).
    """
    import torch

    if dist.is_sharded(model):
        raise ValueError(
            "probe_batch='group' on a sharded backbone (--strategy fsdp); fix: use "
            "--controller.probe-batch single with fsdp, or --strategy ddp"
        )
    was_training = model.training
    model.eval()  # PEFT refuses adapter_names in training mode (and probes never train)
    device = model_device(model)
    mine = split.encodings[dist.rank() :: dist.process_count()]
    count = len(adapters)
    sums, tokens = [0.0] * count, [0] * count
    with torch.no_grad():
        for start in range(0, len(mine), batch_size):
            chunk = mine[start : start + batch_size]
            batch = collate(chunk * count, pad_id, device)
            names = [name for name in adapters for _ in chunk]
            rows = answer_loss(model, batch, reduction="row", adapter_names=names)
            targets = (batch["labels"][:, 1:] != IGNORE_INDEX).sum(dim=1)
            for i in range(count):
                part = slice(i * len(chunk), (i + 1) * len(chunk))
                sums[i] += rows[part].sum().item()
                tokens[i] += int(targets[part].sum())
    totals = dist.sum_values(sums + tokens, device)
    if was_training:
        model.train()
    return [totals[i] / max(totals[count + i], 1) for i in range(count)]


def generate(
    model: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    task: str,
    lang: str,
    max_length: int,
    max_new_tokens: int,
    batch_size: int = 16,
    by_length: bool = False,
) -> list[str]:
    """Greedy completions of the prompts of `rows` (left-padded batches), stopped at EOS.

    `by_length` decodes the prompts longest first (the results come back in the given
    order): a batch then holds prompts of similar length, so less padding is computed. A
    batch stops when every one of its rows has produced EOS (transformers' default).
    """
    import torch

    share = -(-len(rows) // dist.process_count())  # contiguous blocks, gathered in order
    mine = rows[dist.rank() * share : (dist.rank() + 1) * share]
    prompts = [tokenize_row(tokenizer, r, task, lang, max_length, with_target=False) for r in mine]
    order = list(range(len(prompts)))
    if by_length:
        order.sort(key=lambda i: -len(prompts[i]["input_ids"]))
        prompts = [prompts[i] for i in order]
    # Under FSDP every forward is a collective: every process runs as many batches (a shorter
    # share decodes a dummy prompt it throws away) and steps in lockstep (synced_gpus).
    lockstep = dist.is_sharded(model)
    dummy = None
    if lockstep and rows:
        dummy = tokenize_row(tokenizer, rows[0], task, lang, max_length, with_target=False)
    was_training = model.training
    model.eval()
    out: list[str] = []
    pad = tokenizer.pad_token_id
    with torch.no_grad():
        for start in range(0, share, batch_size):
            chunk = prompts[start : start + batch_size]
            if not chunk and not lockstep:
                continue
            keep = len(chunk)
            chunk = chunk or [dummy]
            width = max(len(p["input_ids"]) for p in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, p in enumerate(chunk):
                n = len(p["input_ids"])
                ids[i, width - n :] = torch.tensor(p["input_ids"])
                mask[i, width - n :] = 1
            device = model_device(model)
            gen = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
                eos_token_id=tokenizer.eos_token_id,
                synced_gpus=lockstep,
            )
            for row in gen[:keep, width:].cpu():
                out.append(tokenizer.decode(row, skip_special_tokens=True).strip())
    if was_training:
        model.train()
    given = [""] * len(out)
    for position, i in enumerate(order):
        given[i] = out[position]
    return dist.gather_in_order(given)


def reference_texts(rows: list[dict[str, Any]], task: str, lang: str) -> list[str]:
    """Gold targets without the cue-side prefix (what generations are compared with)."""
    return [target_text(r, task, lang).strip() for r in rows]
