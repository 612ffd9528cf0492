"""Prompts per task and language, and tokenisation with the prompt masked out of the loss.

As in the paper: a task instruction in the target language and a cue word ("Answer:", "الإجابة:",
"答案："); the loss covers only the target tokens and EOS. When a row is too long, the long
field (the context or article) is cut, never the cue word or the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grasp_env.data.schema import DataError

__all__ = ["IGNORE_INDEX", "PromptTemplate", "prompt_pieces", "target_text", "tokenize_row"]

IGNORE_INDEX = -100
"""Label of tokens that the loss skips (PyTorch's cross-entropy default)."""


@dataclass(frozen=True)
class PromptTemplate:
    """How a row becomes a prompt: instruction, labelled fields, cue word.

    `long_field` is the field cut on truncation; the fields after it and the cue are kept whole.
    """

    instruction: str
    fields: tuple[tuple[str, str], ...]
    """(label, row field) pairs, in prompt order."""
    long_field: str
    cue: str
    colon: str = ": "
    """Separator after a label (full-width in Chinese)."""
    target_prefix: str = " "
    """Text between the cue and the target (none in Chinese)."""


TEMPLATES: dict[tuple[str, str], PromptTemplate] = {
    ("qa", "en"): PromptTemplate(
        "Answer the question using the context.",
        (("Context", "context"), ("Question", "question")),
        "context",
        "Answer:",
    ),
    ("qa", "ar"): PromptTemplate(
        "أجب عن السؤال مستعينًا بالنص.",
        (("النص", "context"), ("السؤال", "question")),
        "context",
        "الإجابة:",
    ),
    ("qa", "zh"): PromptTemplate(
        "根据上下文回答问题。",
        (("上下文", "context"), ("问题", "question")),
        "context",
        "答案：",
        colon="：",
        target_prefix="",
    ),
    ("summarization", "en"): PromptTemplate(
        "Summarize the article in one sentence.",
        (("Title", "title"), ("Article", "text")),
        "text",
        "Summary:",
    ),
    ("summarization", "ar"): PromptTemplate(
        "لخّص المقال في جملة واحدة.",
        (("العنوان", "title"), ("المقال", "text")),
        "text",
        "الملخص:",
    ),
    ("summarization", "zh"): PromptTemplate(
        "用一句话概括这篇文章。",
        (("标题", "title"), ("文章", "text")),
        "text",
        "摘要：",
        colon="：",
        target_prefix="",
    ),
}
"""Native instruction and cue word per (task, language)."""


def _template(task: str, lang: str) -> PromptTemplate:
    try:
        return TEMPLATES[(task, lang)]
    except KeyError:
        known = sorted({lang for _, lang in TEMPLATES})
        raise DataError(
            f"no prompt for task={task!r}, language={lang!r}; fix: use a language in {known} "
            "or add a PromptTemplate to grasp_env.data.prompts.TEMPLATES"
        ) from None


def prompt_pieces(row: dict[str, Any], task: str, lang: str) -> tuple[str, str, str]:
    """The prompt as (head, long field, tail): only the middle piece may be truncated."""
    tpl = _template(task, lang)
    head, tail, seen_long = tpl.instruction, "", False
    for label, field in tpl.fields:
        piece = f"\n{label}{tpl.colon}"
        if field == tpl.long_field:
            head += piece
            seen_long = True
        elif seen_long:
            tail += piece + row[field]
        else:
            head += piece + row[field]
    return head, row[tpl.long_field], tail + "\n" + tpl.cue


def target_text(row: dict[str, Any], task: str, lang: str) -> str:
    """What the model should generate after the cue: the first answer, or the summary."""
    tpl = _template(task, lang)
    body = row["answers"]["text"][0] if task == "qa" else row["summary"]
    return tpl.target_prefix + body


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def tokenize_row(
    tokenizer: Any,
    row: dict[str, Any],
    task: str,
    lang: str,
    max_length: int,
    with_target: bool = True,
) -> dict[str, Any]:
    """Token ids of prompt (+ target + EOS) with labels that score only target and EOS.

    Args:
        tokenizer: A Hugging Face tokenizer with `eos_token_id` (and optionally `bos_token_id`).
        row: One validated row.
        task: "qa" or "summarization".
        lang: Prompt language.
        max_length: Upper bound on the returned length; the long field is cut first.
        with_target: False for generation: the prompt alone, ending at the cue word.

    Returns:
        `input_ids`, `labels` (IGNORE_INDEX on prompt tokens) and `prompt_length`.
    """
    head_text, long_text, tail_text = prompt_pieces(row, task, lang)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    head, long, tail = (
        _encode(tokenizer, head_text),
        _encode(tokenizer, long_text),
        _encode(tokenizer, tail_text),
    )
    target = (
        _encode(tokenizer, target_text(row, task, lang)) + [tokenizer.eos_token_id]
        if with_target
        else []
    )
    fixed = len(bos) + len(head) + len(tail)
    if fixed + len(target) > max_length:
        # Even without the long field the row does not fit: keep the cue, cut the target's end
        # (EOS stays last so that the model still learns to stop).
        room = max_length - fixed
        if room < (2 if with_target else 0):
            raise DataError(
                f"row {row.get('id')!r}: max_length={max_length} cannot hold the prompt's fixed "
                f"part ({fixed} tokens) and a target; fix: raise max_length"
            )
        target = target[: room - 1] + target[-1:] if with_target else []
        long = []
    else:
        long = long[: max_length - fixed - len(target)]
    prompt = bos + head + long + tail
    return {
        "input_ids": prompt + target,
        "labels": [IGNORE_INDEX] * len(prompt) + target,
        "prompt_length": len(prompt),
    }
