"""Native sentence templates for the embedded tasks, written per language.

The Arabic and Chinese templates are written as a native speaker would state each fact, not as
word-by-word translations of the English ones (issue 2). `{t}` is the territory, `{v}` the value
(currency, language or city). Every fact type has several paraphrases so that a model cannot key
on one surface form.
"""

from __future__ import annotations

__all__ = [
    "FACT_SENTENCES",
    "NAME_LINE_LABELS",
    "QUESTIONS",
    "RELATION_WORDS",
    "SUMMARY_SENTENCES",
    "TITLES",
]

FACT_SENTENCES: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "currency": (
            "The official currency of {t} is the {v}.",
            "In {t}, people pay with the {v}.",
            "{t} uses the {v} as its currency.",
        ),
        "language": (
            "The official language of {t} is {v}.",
            "In {t}, {v} is the official language.",
            "{v} is the language of government in {t}.",
        ),
        "city": (
            "{v} is a city in {t}.",
            "One of the cities of {t} is {v}.",
            "The city of {v} lies in {t}.",
        ),
    },
    "ar": {
        "currency": (
            "العملة الرسمية في {t} هي {v}.",
            "يتعامل الناس في {t} بعملة {v}.",
            "تعتمد {t} على {v} عملةً رسمية.",
        ),
        "language": (
            "اللغة الرسمية في {t} هي {v}.",
            "تُعدّ {v} اللغة الرسمية في {t}.",
            "يستخدم سكان {t} اللغة {v} في الشؤون الرسمية.",
        ),
        "city": (
            "{v} مدينة تقع في {t}.",
            "من مدن {t} مدينة {v}.",
            "تقع مدينة {v} في {t}.",
        ),
    },
    "zh": {
        "currency": (
            "{t}的官方货币是{v}。",
            "在{t}，人们用{v}付款。",
            "{t}通用的货币为{v}。",
        ),
        "language": (
            "{t}的官方语言是{v}。",
            "在{t}，{v}是官方语言。",
            "{t}政府使用的语言是{v}。",
        ),
        "city": (
            "{v}是{t}的一座城市。",
            "{t}有一座城市叫{v}。",
            "{v}这座城市位于{t}。",
        ),
    },
}
"""Statement of one fact: used in the pretraining corpus, QA contexts and summary articles."""

QUESTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "currency": ("What is the currency of {t}?", "Which currency is used in {t}?"),
        "language": ("What is the official language of {t}?", "Which language is official in {t}?"),
        "city": ("Which city is located in {t}?", "Name a city in {t}."),
    },
    "ar": {
        "currency": ("ما عملة {t}؟", "ما العملة المستخدمة في {t}؟"),
        "language": ("ما اللغة الرسمية في {t}؟", "بأي لغة تُدار الشؤون الرسمية في {t}؟"),
        "city": ("ما المدينة التي تقع في {t}؟", "اذكر مدينة من مدن {t}."),
    },
    "zh": {
        "currency": ("{t}的货币是什么？", "{t}使用哪种货币？"),
        "language": ("{t}的官方语言是什么？", "{t}以哪种语言为官方语言？"),
        "city": ("{t}有哪座城市？", "请说出{t}的一座城市。"),
    },
}
"""Question asking for one fact of `{t}`; the answer is the fact's value."""

SUMMARY_SENTENCES: dict[str, tuple[str, ...]] = {
    "en": (
        "{t} uses the {currency}, its official language is {language}, and {city} is one of its "
        "cities.",
    ),
    "ar": ("تستخدم {t} عملة {currency}، ولغتها الرسمية {language}، ومن مدنها {city}.",),
    "zh": ("{t}使用{currency}，官方语言是{language}，{city}是其城市之一。",),
}
"""The one-sentence summary of an article about `{t}`: every key fact, one fixed form."""

TITLES: dict[str, tuple[str, ...]] = {
    "en": ("{t} at a glance", "A short profile of {t}", "Facts about {t}"),
    "ar": ("{t} في سطور", "لمحة عن {t}", "حقائق عن {t}"),
    "zh": ("{t}概况", "{t}简介", "关于{t}的事实"),
}
"""Article titles for the summarisation task."""

RELATION_WORDS: dict[str, dict[str, str]] = {
    "currency": {"en": "currency", "ar": "عملة", "zh": "货币"},
    "language": {"en": "official language", "ar": "اللغة الرسمية", "zh": "官方语言"},
    "city": {"en": "city", "ar": "مدينة", "zh": "城市"},
}
"""The relation words, aligned across languages (code-switched in the pretraining corpus)."""

NAME_LINE_LABELS: dict[str, str] = {"en": "Names", "ar": "الأسماء", "zh": "名称"}
"""Label opening an aligned-name line in the corpus."""
