import pytest

from grasp_env.config import DataConfig
from grasp_env.data.embedded import embedded_target_splits
from grasp_env.data.prompts import IGNORE_INDEX, prompt_pieces, target_text, tokenize_row
from grasp_env.data.schema import DataError

SIZES = DataConfig().split_sizes  # the default preset's target splits: 50/50/16/300


@pytest.fixture(scope="module")
def tokenizer(tiny_backbone_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_backbone_dir)


@pytest.mark.parametrize(
    ("task", "lang", "cue"),
    [
        ("qa", "en", "Answer:"),
        ("qa", "ar", "الإجابة:"),
        ("qa", "zh", "答案："),
        ("summarization", "en", "Summary:"),
        ("summarization", "ar", "الملخص:"),
        ("summarization", "zh", "摘要："),
    ],
)
def test_prompts_are_native_and_end_with_the_cue(task, lang, cue):
    row = embedded_target_splits(task, lang, 0, SIZES).train[0]
    head, long, tail = prompt_pieces(row, task, lang)
    assert tail.endswith("\n" + cue)
    assert long in (row.get("context"), row.get("text"))
    if lang == "zh":
        assert not target_text(row, task, lang).startswith(" ")
    if lang == "ar":
        assert any("\u0600" <= ch <= "\u06ff" for ch in head)


def test_loss_covers_only_target_and_eos(tokenizer):
    row = embedded_target_splits("qa", "ar", 0, SIZES).train[0]
    enc = tokenize_row(tokenizer, row, "qa", "ar", max_length=512)
    n = enc["prompt_length"]
    assert all(x == IGNORE_INDEX for x in enc["labels"][:n])
    target = enc["labels"][n:]
    assert target[-1] == tokenizer.eos_token_id
    assert target == enc["input_ids"][n:]
    assert tokenizer.decode(target[:-1]).strip() == row["answers"]["text"][0]
    prompt_only = tokenize_row(tokenizer, row, "qa", "ar", 512, with_target=False)
    assert prompt_only["input_ids"] == enc["input_ids"][:n]


def test_truncation_cuts_the_context_and_keeps_cue_and_target(tokenizer):
    row = embedded_target_splits("qa", "en", 0, SIZES).train[0]
    full = tokenize_row(tokenizer, row, "qa", "en", max_length=1024)
    short = tokenize_row(tokenizer, row, "qa", "en", max_length=len(full["input_ids"]) - 20)
    assert len(short["input_ids"]) == len(full["input_ids"]) - 20
    n_full, n_short = full["prompt_length"], short["prompt_length"]
    assert short["input_ids"][n_short:] == full["input_ids"][n_full:]  # target intact
    cue_len = len(
        tokenizer("\nQuestion: " + row["question"] + "\nAnswer:", add_special_tokens=False)[
            "input_ids"
        ]
    )
    assert (
        short["input_ids"][n_short - cue_len : n_short]
        == full["input_ids"][n_full - cue_len : n_full]
    )
    with pytest.raises(DataError, match="raise max_length"):
        tokenize_row(tokenizer, row, "qa", "en", max_length=8)


def test_unknown_language_prompt_is_a_clear_error():
    with pytest.raises(DataError, match="language='fr'"):
        prompt_pieces({"context": "c", "question": "q"}, "qa", "fr")
