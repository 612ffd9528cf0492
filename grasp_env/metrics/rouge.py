"""Language-aware tokenizers for `rouge-score`'s ROUGE-L scorer (its default drops non-Latin text).

Two conventions, named in every metrics.json (`metric_conventions`):

- ``xlsum`` (default): XL-Sum's multilingual ROUGE (csebuetnlp/xl-sum,
  `multilingual_rouge_scoring`), the scorer behind the published XL-Sum numbers. Lower-case;
  BERT-style cleaning (control characters dropped, Unicode and ASCII punctuation split off and
  dropped); then zh: jieba word segmentation (its space tokens kept, as XL-Sum keeps them); other
  languages: OpenNMT's aggressive pre-tokenizer (letters and digits split apart) and CJK
  characters split off; then Snowball stemming of tokens longer than 3 characters where nltk
  has a Snowball stemmer (Arabic: also strips tashkeel and tatweel and normalises alef/hamza).
  Arabic words are stemmed each by a new nltk stemmer: nltk's ArabicStemmer sets
  `suffixes_verb_step1_success` on itself and never clears it, so a shared one (ours before,
  and XL-Sum's) stems a word by whether any earlier word of the run took a verb suffix (كتبوا:
  كتب before, كتبو after), and a row's score depended on the rows scored before it.

  Two gaps to XL-Sum's own scorer remain, both Arabic, both measured. (1) Stopwords: XL-Sum
  builds nltk's stemmers with ``ignore_stopwords=True``, so words on nltk's stopword list (for
  its published numbers the 248-line Arabic list nltk_data carried from 2017-10 to 2021-10)
  are kept, not removed, but left unstemmed and un-normalised. That list cannot ship here:
  nltk_data states no licence for it, it came (nltk_data issue 94) from xapian-core's
  arabic.txt, a file of a GPL-2.0-or-later project "inspired from" the GPL Arabic Stop Words
  Project, and no PyPI package carries it. So its words of more than 3 letters are stemmed
  here and match where XL-Sum's do not: ليست = ليس, هناك = هنا, فيها = فيه, أكثر = اكثر (the list
  has the hamza spellings only). (2) The shared stemmer: XL-Sum's scorer reuses one, so after
  its first word with a step-1 verb suffix the flag stays set for the rest of the run. On 8
  hand-made paraphrase pairs built to contain such words, mean ROUGE-L F is 66.6 here, 53.9
  with the list, 71.6 with the flag held set and 58.9 with both (XL-Sum's scorer); the list
  lowered 4 pairs (by 0.14 to 0.40), the flag raised 1 (0.4 -> 0.8: it stems كتبتم as تبتم,
  like كتبتموها, not كتب). `XlsumTokenizer(lang, stopwords=...)` applies a list as XL-Sum does.
- ``unstemmed``: the project's earlier convention (the numbers in docs/BENCHMARKS.md before
  issue 12): punctuation becomes a space, CJK characters and kana are one token each, other
  text splits on whitespace, no stemming.

Why xlsum is the default: the summarisation task is XL-Sum, and its published ROUGE-L is the
only reference a reader can hold our numbers against; the unstemmed convention under-credits
Arabic's clitics and spelling variants (0-57 where XL-Sum's scorer gives 67-100, issue 12).
"""

from __future__ import annotations

import logging
import string
import unicodedata
from functools import lru_cache
from importlib import metadata
from typing import Any

from grasp_env.metrics.errors import MetricUnavailable

__all__ = [
    "DEFAULT_ROUGE",
    "ROUGE_CONVENTIONS",
    "UnstemmedTokenizer",
    "XlsumTokenizer",
    "check_rouge",
    "describe_rouge",
    "rouge_tokenizer",
]

ROUGE_CONVENTIONS: tuple[str, ...] = ("xlsum", "unstemmed")
DEFAULT_ROUGE = "xlsum"

# ISO code -> nltk Snowball language; XL-Sum stems every language nltk's Snowball has.
_SNOWBALL = {
    "ar": "arabic",
    "da": "danish",
    "de": "german",
    "en": "english",
    "es": "spanish",
    "fi": "finnish",
    "fr": "french",
    "hu": "hungarian",
    "it": "italian",
    "nl": "dutch",
    "no": "norwegian",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sv": "swedish",
}
# Languages XL-Sum handles with packages this project does not ship (its own Hindi suffix list,
# Bengali and Turkish stemmers, Japanese/Thai/Burmese segmenters): not comparable, so refused.
_XLSUM_ONLY = ("hi", "bn", "tr", "ja", "th", "my")
# XL-Sum leaves tokens of up to this many characters unstemmed (its min_char_length).
_MIN_STEM_CHARS = 3


def _is_punct(ch: str) -> bool:
    # Every Unicode P* character plus the ASCII non-alphanumerics (string.punctuation).
    return ch in string.punctuation or unicodedata.category(ch).startswith("P")


# The CJK blocks BERT's basic tokenizer splits into characters (XL-Sum's non-zh path): unified
# ideographs, extension A, extensions B-E, compatibility ideographs and their supplement.
_BERT_CJK = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
# The unstemmed convention's range: CJK ideographs (A, B, compatibility) and Japanese kana.
_WIDE_CJK = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0xF900, 0xFAFF),
    (0x3040, 0x30FF),
)


def _is_bert_cjk(ch: str) -> bool:
    return any(lo <= ord(ch) <= hi for lo, hi in _BERT_CJK)


def _is_wide_cjk(ch: str) -> bool:
    return any(lo <= ord(ch) <= hi for lo, hi in _WIDE_CJK)


def _split_chars(text: str, is_single: Any) -> list[str]:
    """Whitespace tokens, with every character for which `is_single` holds on its own."""
    return "".join(f" {ch} " if is_single(ch) else ch for ch in text).split()


def _bert_basic_words(text: str) -> list[str]:
    """Words after BERT's basic cleaning, as XL-Sum applies it.

    Control characters (and NUL, U+FFFD) go, whitespace becomes a space, punctuation ends a word
    and is dropped.
    """
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in " \t\n\r" or cat == "Zs":
            kept.append(" ")
        elif ch not in "\x00\ufffd" and not cat.startswith("C"):
            kept.append(ch)
    return "".join(" " if _is_punct(ch) else ch for ch in "".join(kept)).split()


def check_rouge(lang: str | None, convention: str) -> None:
    """Fail early (no imports) for a convention `rouge_tokenizer` would refuse for `lang`.

    `lang=None` checks the convention's name only (a task that reports no ROUGE).

    Raises:
        ValueError: an unknown convention.
        MetricUnavailable: xlsum for a language XL-Sum scores with a package this project lacks.
    """
    if convention not in ROUGE_CONVENTIONS:
        raise ValueError(f"rouge={convention!r} is unknown; fix: use one of {ROUGE_CONVENTIONS}")
    if convention == "xlsum" and lang in _XLSUM_ONLY:
        raise MetricUnavailable(
            f"XL-Sum's ROUGE for lang={lang!r} needs a segmenter or stemmer this project "
            "does not ship; fix: use --eval.rouge unstemmed"
        )


class UnstemmedTokenizer:
    """The ``unstemmed`` convention: punctuation to spaces, CJK/kana by character, no stems."""

    def tokenize(self, text: str) -> list[str]:
        """Tokens of `text` (the method rouge-score's scorer calls)."""
        text = "".join(" " if _is_punct(ch) else ch for ch in text.lower())
        return _split_chars(text, _is_wide_cjk)


class _FreshStemmer:
    """An nltk stemmer that starts every word from a new instance.

    nltk's ArabicStemmer sets `suffixes_verb_step1_success` on itself and never resets it, so a
    reused one stems each word by whether any earlier word took a verb suffix. A new instance
    costs well under a microsecond against some 25 for the stem itself.
    """

    def __init__(self, stemmer_class: type, stopwords: frozenset[str]) -> None:
        self._stemmer_class = stemmer_class
        self._stopwords = set(stopwords)

    def stem(self, token: str) -> str:
        """`token`'s stem, independent of every word stemmed before."""
        stemmer = self._stemmer_class(ignore_stopwords=False)
        stemmer.stopwords = self._stopwords
        return stemmer.stem(token)


class XlsumTokenizer:
    """The ``xlsum`` convention for one language (see the module docstring).

    Raises:
        MetricUnavailable: for a language XL-Sum scores with a package this project lacks, or
            when jieba, pyonmttok or nltk is missing.
    """

    def __init__(self, lang: str, *, stopwords: frozenset[str] = frozenset()) -> None:
        """Load the segmenter and stemmer for `lang`.

        Args:
            lang: ISO code of the language scored.
            stopwords: words the stemmer leaves unstemmed, as nltk's ``ignore_stopwords``
                does with its own list in XL-Sum's scorer. Empty by default: nltk's list is
                nltk data that cannot ship here (module docstring).
        """
        check_rouge(lang, "xlsum")
        self.lang = lang
        self._segmenter: Any = None
        self._onmt: Any = None
        self._stemmer: Any = None
        try:
            if lang == "zh":
                import jieba

                jieba.setLogLevel(logging.WARNING)  # no "Building prefix dict" on stderr
                self._segmenter = jieba.Tokenizer()  # own instance: global add_word can't leak in
            else:
                import pyonmttok

                self._onmt = pyonmttok.Tokenizer("aggressive")
            if lang == "ar":
                from nltk.stem.snowball import ArabicStemmer

                self._stemmer = _FreshStemmer(ArabicStemmer, stopwords)
            elif lang in _SNOWBALL:
                from nltk.stem.snowball import SnowballStemmer

                self._stemmer = SnowballStemmer(_SNOWBALL[lang], ignore_stopwords=False)
                self._stemmer.stemmer.stopwords = set(stopwords)
        except ImportError as err:
            raise MetricUnavailable(
                f"ROUGE-L (xlsum) needs {err.name}; fix: pip install jieba pyonmttok nltk"
            ) from None

    def tokenize(self, text: str) -> list[str]:
        """Tokens of `text` (the method rouge-score's scorer calls)."""
        clean = " ".join(_bert_basic_words(text.lower()))
        if self._segmenter is not None:
            tokens = list(self._segmenter.cut(clean))
        else:
            tokens = _split_chars(" ".join(self._onmt.tokenize(clean)[0]), _is_bert_cjk)
        if self._stemmer is not None:
            tokens = [self._stemmer.stem(t) if len(t) > _MIN_STEM_CHARS else t for t in tokens]
        return [t for t in tokens if t]


@lru_cache(maxsize=8)
def rouge_tokenizer(lang: str, convention: str = DEFAULT_ROUGE) -> Any:
    """The tokenizer of `convention` for `lang`, for `RougeScorer(tokenizer=...)`."""
    check_rouge(lang, convention)
    return XlsumTokenizer(lang) if convention == "xlsum" else UnstemmedTokenizer()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


def describe_rouge(lang: str, convention: str = DEFAULT_ROUGE) -> str:
    """`convention` for `lang` as a `key:value|...` string with the versions that matter."""
    check_rouge(lang, convention)
    if convention == "unstemmed":
        return f"unstemmed|lang:{lang}|tok:words+cjk-kana-chars|stem:none"
    if lang == "zh":
        tok = f"bert-basic+jieba-{_version('jieba')}"
    else:
        tok = f"bert-basic+onmt-aggressive-{_version('pyonmttok')}+cjk-chars"
    stem = "none"
    if lang in _SNOWBALL:
        # Arabic: a new stemmer per word (before, nltk's leaked state made it order-dependent).
        fresh = ",fresh-per-word" if lang == "ar" else ""
        stem = f"snowball-{_SNOWBALL[lang]}(nltk-{_version('nltk')},no-stopword-list,len>3{fresh})"
    return f"xlsum|lang:{lang}|tok:{tok}|stem:{stem}"
