"""Metrics against the references they follow (issue 12).

EM/F1 expectations are worked out by hand from MLQA's `mlqa_evaluation_v1.py` (lower-case, delete
punctuation, replace articles by a space, whitespace or zh mixed segmentation; F1 0 without
overlap; max over gold answers; 100 * sum / questions). ROUGE-L expectations follow XL-Sum's
multilingual ROUGE (csebuetnlp/xl-sum) and rouge-score's LCS F-measure.
"""

import pytest

from grasp_env.metrics import (
    MetricUnavailable,
    bertscore_f1,
    bleu4,
    chrf,
    exact_match,
    metric_conventions,
    normalize_answer,
    qa_metrics,
    rouge_l,
    segment,
    summary_metrics,
    token_f1,
)
from grasp_env.metrics.rouge import XlsumTokenizer, rouge_tokenizer

# --- EM / F1: MLQA v1 ---------------------------------------------------------------------

# Punctuation is deleted, not replaced by a space: each pair is one token on both sides.
DELETED_PUNCTUATION = [
    ("U.S.", "US", "en"),
    ("1,000 people", "1000 people", "en"),
    ("don't", "dont", "en"),
    ("COVID-19", "COVID19", "en"),
    ("٣٬٠٠٠", "٣٠٠٠", "ar"),  # U+066C Arabic thousands separator (Po)
    ("٣٫٥", "٣٥", "ar"),  # U+066B Arabic decimal separator (Po)
    ("500 ق.م", "500 قم", "ar"),
    ("1,000人", "1000人", "zh"),  # zh: "1000" + "人"
]


@pytest.mark.parametrize(("prediction", "gold", "lang"), DELETED_PUNCTUATION)
def test_punctuation_is_deleted_as_in_mlqa(prediction, gold, lang):
    assert normalize_answer(prediction, lang) == normalize_answer(gold, lang)
    assert exact_match(prediction, [gold], lang) == 1.0
    assert token_f1(prediction, [gold], lang) == 1.0


def test_article_removal_happens_after_punctuation_deletion():
    # "5 a.m." -> "5 am": "am" is no article (the old space-replacing code made it "5 m")
    assert normalize_answer("5 a.m.", "en") == "5 am"
    assert exact_match("5 a.m.", ["5 am"], "en") == 1.0
    assert exact_match("5 a.m.", ["5 m"], "en") == 0.0
    assert normalize_answer("The  Egyptian Pound.", "en") == "egyptian pound"


def test_joined_ranges_do_not_overlap_their_parts():
    # the en dash is deleted: "19141918" shares no token with "1914" (F1 was 2/3 before)
    assert normalize_answer("1914–1918", "en") == "19141918"
    assert exact_match("1914–1918", ["1914"], "en") == 0.0
    assert token_f1("1914–1918", ["1914"], "en") == 0.0


def test_both_sides_empty_gives_f1_zero_but_em_one():
    # MLQA / SQuAD v1.1: F1 returns 0 when nothing overlaps, also for two empty strings; EM
    # compares the normalised strings, so "" == "" counts.
    for pred, gold in (("", ""), (".", "the"), ("the", "a")):
        assert token_f1(pred, [gold], "en") == 0.0
        assert exact_match(pred, [gold], "en") == 1.0
    assert token_f1("", ["pound"], "en") == 0.0


@pytest.mark.parametrize(
    ("text", "lang", "normalised"),
    [
        ("El Niño", "es", "niño"),
        ("los Andes", "es", "andes"),
        ("Der Hund und die Katze", "de", "hund und katze"),
        ("của tôi", "vi", "tôi"),
        ("भारत की राजधानी", "hi", "भारत की राजधानी"),  # no articles for Hindi
        ("العربية،", "ar", "عربية"),
        ("بالعربية", "ar", "ب عربية"),  # every "ال", inside words too, becomes a space
    ],
)
def test_articles_per_language(text, lang, normalised):
    assert normalize_answer(text, lang) == normalised


def test_cjk_split_only_for_zh_and_only_mlqa_range():
    assert segment("埃及镑 EGP") == ["埃", "及", "镑", "EGP"]
    # kana stay whole; only U+4E00..U+9FA5 is split
    assert normalize_answer("东京タワー", "zh") == "东 京 タワー"
    assert normalize_answer("㐀㐁", "zh") == "㐀㐁"  # extension A: not in the range
    assert normalize_answer("\u9fa6\u9fa6", "zh") == "\u9fa6\u9fa6"  # just past U+9FA5
    # other languages split on whitespace only
    assert normalize_answer("東京タワー", "en") == "東京タワー"
    assert normalize_answer("埃及镑", "ar") == "埃及镑"
    # pred 埃及镑 (3 chars) vs gold 埃及 (2 chars): P = 2/3, R = 1 -> F1 = 0.8
    assert token_f1("埃及镑", ["埃及"], "zh") == pytest.approx(0.8)
    assert token_f1("埃及镑", ["埃及"], "en") == 0.0
    assert exact_match("埃及镑。", ["埃及镑"], "zh") == 1.0


def test_best_over_gold_answers_and_mlqa_aggregation():
    # {egyptian, pound} vs {pound}: F1 2/3; vs {egyptian, pound, sterling}: P 1, R 2/3 -> 0.8
    assert token_f1("Egyptian Pound", ["pound", "Egyptian pound sterling"], "en") == 0.8
    # rows: EM 1 (second answer), EM 0 / F1 0, EM 1 / F1 0 (both empty) -> 100 * sum / 3
    m = qa_metrics(["Euro", "Franc", "the"], [["EUR", "euro"], ["Dollar"], ["a"]], "en")
    assert m == {"em": 100.0 * 2 / 3, "f1": 100.0 * 1 / 3}
    assert qa_metrics(["جنيه مصري"], [["جنيه إسترليني"]], "ar") == {"em": 0.0, "f1": 50.0}


def test_qa_input_errors_are_clear():
    with pytest.raises(ValueError, match="no predictions"):
        qa_metrics([], [], "en")
    with pytest.raises(ValueError, match="1 predictions for 2"):
        qa_metrics(["a"], [["a"], ["b"]], "en")
    with pytest.raises(ValueError, match="row 1"):
        qa_metrics(["a", "b"], [["a"], []], "en")
    for fn in (exact_match, token_f1):
        with pytest.raises(ValueError, match="no gold answers"):
            fn("a", [], "en")
        with pytest.raises(ValueError, match="is a string"):
            fn("a", "a", "en")
    with pytest.raises(ValueError, match="MLQA"):
        normalize_answer("a", "fr")


# --- ROUGE-L ------------------------------------------------------------------------------


def test_rouge_l_goes_through_rouge_score():
    from rouge_score import rouge_scorer

    plain = rouge_scorer.RougeScorer(["rougeL"]).score("a c d e", "a b c d")["rougeL"].fmeasure
    # tokens a b c d vs a c d e: LCS = a c d = 3, P = R = 3/4 -> F = 0.75
    assert rouge_l("a b c d", "a c d e", "en", "unstemmed") == plain == pytest.approx(0.75)


def test_unstemmed_convention_keeps_the_earlier_numbers():
    # Chinese by character: 秘鲁使用索尔 vs 秘鲁用索尔: LCS = 秘鲁用索尔 = 5; P = 5/6, R = 1
    expected = 2 * (5 / 6) / (5 / 6 + 1)
    assert rouge_l("秘鲁使用索尔", "秘鲁用索尔", "zh", "unstemmed") == pytest.approx(expected)
    # Arabic words unstemmed: 2 of 3 match
    assert rouge_l("تستخدم مصر الجنيه", "تستخدم مصر الدولار", "ar", "unstemmed") == 2 / 3
    assert rouge_l("", "x", "en", "unstemmed") == 0.0


# Arabic spelling variants: XL-Sum's Snowball stemming (tokens over 3 characters) strips
# tashkeel, tatweel and the article and normalises hamza; the unstemmed convention does not.
ARABIC_VARIANTS = [
    # pred, ref, xlsum F, unstemmed F
    ("مُحَمَّدٌ رَسُولُ اللهِ", "محمد رسول الله", 1.0, 0.0),
    ("كتــاب جديد", "كتاب جديد", 1.0, 0.5),
    ("الكتاب", "كتاب", 1.0, 0.0),
    # احمد ذهب إلى مدرس vs احمد ذهب الى مدرسه: LCS 2 of 4 (إلى has 3 letters: not stemmed)
    ("أحمد ذهب إلى المدرسة", "احمد ذهب الى المدرسه", 0.5, 0.25),
]


@pytest.mark.parametrize(("pred", "ref", "xlsum", "unstemmed"), ARABIC_VARIANTS)
def test_xlsum_convention_credits_arabic_variants(pred, ref, xlsum, unstemmed):
    assert rouge_l(pred, ref, "ar") == pytest.approx(xlsum)  # xlsum is the default
    assert rouge_l(pred, ref, "ar", "unstemmed") == pytest.approx(unstemmed)


def test_xlsum_tokens():
    ar = rouge_tokenizer("ar", "xlsum")
    assert ar.tokenize("والكتاب مُحَمَّد كتــاب أحمد إلى") == ["كتاب", "محمد", "كتاب", "احمد", "إلى"]
    # digits split from letters (OpenNMT aggressive), punctuation split off and dropped
    assert ar.tokenize("عام ٢٠٢٠م، ٣٬٠٠٠") == ["عام", "٢٠٢٠", "م", "٣", "٠٠٠"]
    en = rouge_tokenizer("en", "xlsum")
    assert en.tokenize("The cats are running, COVID-19!") == [
        "the",
        "cat",
        "are",
        "run",
        "covid",
        "19",
    ]
    zh = rouge_tokenizer("zh", "xlsum")
    assert zh.tokenize("我爱北京天安门") == ["我", "爱", "北京", "天安门"]
    # XL-Sum feeds jieba the cleaned text: dropped punctuation leaves a space token
    assert zh.tokenize("秘鲁，西班牙") == ["秘鲁", " ", "西班牙"]
    # words [我, 爱, 北京] vs [我, 爱, 北京, 天安门]: P = 1, R = 3/4 -> 6/7 (characters: 8/11)
    assert rouge_l("我爱北京", "我爱北京天安门", "zh") == pytest.approx(6 / 7)
    assert rouge_l("我爱北京", "我爱北京天安门", "zh", "unstemmed") == pytest.approx(8 / 11)


# nltk's ArabicStemmer sets `suffixes_verb_step1_success` on itself and never clears it, so a
# shared stemmer stems "كتبوا" as كتب (Snowball strips -وا) until a word like "سيكتبونها" has been
# stemmed, and as كتبو after it: a row's score then depended on the rows scored before it.
ORDER_ROWS = [
    # pred, ref: each 1.0 when every word is stemmed on its own (كتبوا -> كتب, درسوا -> درس)
    ("كتبوا الرسالة", "كتب الرسالة"),
    ("سيكتبونها غدا", "سيكتبونها غدا"),
    ("الطلاب درسوا", "الطلاب درس"),
]


def test_arabic_rouge_does_not_depend_on_row_order():
    from rouge_score.rouge_scorer import RougeScorer

    def scores(order):
        scorer = RougeScorer(["rougeL"], tokenizer=XlsumTokenizer("ar"))
        return {
            i: scorer.score(ORDER_ROWS[i][1], ORDER_ROWS[i][0])["rougeL"].fmeasure for i in order
        }

    forward, backward = scores([0, 1, 2]), scores([2, 1, 0])
    for i in range(len(ORDER_ROWS)):
        assert forward[i] == backward[i], f"row {i}: {forward[i]} forward, {backward[i]} backward"
    assert forward == {0: 1.0, 1: 1.0, 2: 1.0}
    # the package's cached scorer too: a row scores the same before and after the others
    first = rouge_l(*ORDER_ROWS[0], "ar")
    summary_metrics([p for p, _ in ORDER_ROWS], [r for _, r in ORDER_ROWS], "ar")
    assert rouge_l(*ORDER_ROWS[0], "ar") == first == 1.0


def test_arabic_stem_does_not_depend_on_earlier_words_of_the_text():
    ar = XlsumTokenizer("ar")
    assert ar.tokenize("سيكتبونها كتبوا") == ["سيكتب", "كتب"]
    assert ar.tokenize("كتبوا") == ["كتب"]


def test_stopword_pair_scores_as_documented():
    from rouge_score.rouge_scorer import RougeScorer

    # No stopword list here: ليست -> ليس, هناك -> هنا, معلومات -> معلوم; 3 of 3 match, F = 1.
    assert rouge_l("ليست هناك معلومات", "ليس هنا معلومات", "ar") == 1.0
    # XL-Sum's scorer leaves words of nltk's list (these two are on it) as they are:
    # [ليست, هناك, معلوم] vs [ليس, هنا, معلوم]: LCS 1, P = R = 1/3, F = 1/3.
    listed = XlsumTokenizer("ar", stopwords=frozenset({"ليست", "هناك"}))
    assert listed.tokenize("ليست هناك معلومات") == ["ليست", "هناك", "معلوم"]
    scorer = RougeScorer(["rougeL"], tokenizer=listed)
    f = scorer.score("ليس هنا معلومات", "ليست هناك معلومات")["rougeL"].fmeasure
    assert f == pytest.approx(1 / 3)
    # The list has the hamza spelling only, so أكثر stays and اكثر (off the list) is stemmed:
    # [أكثر, من, مئة] vs [اكثر, من, مئة]: LCS 2, F = 2/3; here both are اكثر, F = 1.
    assert rouge_l("أكثر من مئة", "اكثر من مئة", "ar") == 1.0
    scorer = RougeScorer(["rougeL"], tokenizer=XlsumTokenizer("ar", stopwords=frozenset({"أكثر"})))
    assert scorer.score("اكثر من مئة", "أكثر من مئة")["rougeL"].fmeasure == pytest.approx(2 / 3)
    # other Snowball languages take a list the same way (nltk's ignore_stopwords)
    assert XlsumTokenizer("en").tokenize("having cats") == ["have", "cat"]
    assert XlsumTokenizer("en", stopwords=frozenset({"having"})).tokenize("having cats") == [
        "having",
        "cat",
    ]


def test_rouge_convention_errors():
    with pytest.raises(ValueError, match="rouge='porter'"):
        rouge_l("a", "a", "en", "porter")
    with pytest.raises(MetricUnavailable, match="--eval.rouge unstemmed"):
        rouge_l("a", "a", "hi")


# --- BLEU, chrF, aggregates, conventions --------------------------------------------------


def test_bleu_and_chrf():
    import sacrebleu

    refs = ["Egypt uses the Egyptian Pound and speaks Arabic ."]
    assert bleu4(refs, refs, "en") == pytest.approx(100.0)
    assert bleu4(["完全不同的句子"], ["秘鲁使用秘鲁索尔"], "zh") < 5.0
    zh = ["秘鲁使用秘鲁索尔，官方语言是西班牙语。"]
    assert bleu4(zh, zh, "zh") == pytest.approx(100.0)
    assert chrf(zh, zh) == pytest.approx(100.0)
    assert 0 < chrf(["秘鲁使用索尔"], zh) < 100
    hyp, ref = ["秘鲁使用索尔"], ["秘鲁用索尔，官方语言是西班牙语。"]
    assert bleu4(hyp, ref, "zh") == sacrebleu.corpus_bleu(hyp, [ref], tokenize="zh").score
    assert chrf(hyp, ref) == sacrebleu.corpus_chrf(hyp, [ref]).score


def test_summary_aggregates():
    s = summary_metrics(["a b c d", "x"], ["a c d e", "y"], "en", rouge="unstemmed")
    assert s["rouge_l"] == pytest.approx(100 * (0.75 + 0.0) / 2)
    assert set(s) == {"rouge_l", "bleu4", "chrf"}
    assert summary_metrics(["الكتاب"], ["كتاب"], "ar")["rouge_l"] == pytest.approx(100.0)


def test_empty_and_mismatched_inputs_raise_not_indexerror():
    for call in (
        lambda: bleu4([], [], "en"),
        lambda: chrf([], []),
        lambda: summary_metrics([], [], "en"),
    ):
        with pytest.raises(ValueError, match="no predictions"):
            call()
    with pytest.raises(ValueError, match="2 predictions for 1"):
        summary_metrics(["a", "b"], ["a"], "en")
    with pytest.raises(ValueError, match=r"references \[1\] are blank"):
        summary_metrics(["a", "b"], ["a", " "], "en")


def test_metric_conventions_name_every_reported_metric():
    assert metric_conventions("qa", "ar") == {"em": "mlqa_v1", "f1": "mlqa_v1"}
    zh = metric_conventions("summarization", "zh")
    assert set(zh) == {"rouge_l", "bleu4", "chrf"}
    assert zh["rouge_l"].startswith("xlsum|lang:zh|tok:bert-basic+jieba-")
    assert "tok:zh|smooth:exp" in zh["bleu4"] and "version:" in zh["bleu4"]
    assert "nc:6|nw:0" in zh["chrf"]
    ar = metric_conventions("summarization", "ar", "unstemmed")
    assert ar["rouge_l"].startswith("unstemmed|lang:ar") and "tok:13a" in ar["bleu4"]
    ar_xlsum = metric_conventions("summarization", "ar")["rouge_l"]
    assert "snowball-arabic" in ar_xlsum and "fresh-per-word" in ar_xlsum
    assert "fresh-per-word" not in metric_conventions("summarization", "es")["rouge_l"]
    assert all(isinstance(v, str) for v in zh.values())
    with pytest.raises(ValueError, match="MLQA"):
        metric_conventions("qa", "fr")


def test_bertscore_without_local_model_is_a_clear_error_not_zero(tmp_path):
    with pytest.raises(MetricUnavailable, match="local multilingual encoder"):
        bertscore_f1(["a"], ["a"], None)
    with pytest.raises(MetricUnavailable, match="no config.json"):
        qa_metrics(["a"], [["a"]], "en", bertscore_model="/nonexistent/model")
    (tmp_path / "my-encoder").mkdir()
    (tmp_path / "my-encoder" / "config.json").write_text("{}")
    with pytest.raises(MetricUnavailable, match="model2layers"):
        bertscore_f1(["a"], ["a"], str(tmp_path / "my-encoder"))
