import pytest

from grasp_env.metrics import (
    MetricUnavailable,
    bertscore_f1,
    bleu4,
    chrf,
    exact_match,
    normalize_answer,
    qa_metrics,
    rouge_l,
    segment,
    summary_metrics,
    token_f1,
)


def test_english_normalisation_drops_articles_and_punctuation():
    assert normalize_answer("The  Egyptian Pound.", "en") == "egyptian pound"
    assert exact_match("the Euro!", ["Euro"], "en") == 1.0
    # pred {egyptian, pound} vs gold {pound}: P=1/2, R=1 -> F1 = 2/3
    assert token_f1("Egyptian Pound", ["pound"], "en") == pytest.approx(2 / 3)


def test_arabic_normalisation_follows_mlqa():
    # MLQA removes every "ال" and punctuation (incl. the Arabic comma).
    assert normalize_answer("العربية،", "ar") == "عربية"
    assert exact_match("العربية", ["عربية"], "ar") == 1.0
    # pred {جنيه, مصري} vs gold {جنيه, إسترليني}: overlap 1 -> P = R = 1/2 -> F1 = 1/2
    assert token_f1("جنيه مصري", ["جنيه إسترليني"], "ar") == pytest.approx(0.5)


def test_chinese_is_scored_by_character():
    assert segment("埃及镑 EGP") == ["埃", "及", "镑", "EGP"]
    # pred 埃及镑 (3 chars) vs gold 埃及 (2 chars): P = 2/3, R = 1 -> F1 = 0.8
    assert token_f1("埃及镑", ["埃及"], "zh") == pytest.approx(0.8)
    assert exact_match("埃及镑。", ["埃及镑"], "zh") == 1.0
    assert exact_match("埃及", ["埃及镑"], "zh") == 0.0


def test_rouge_l_hand_computed():
    # tokens a b c d vs a c d e: LCS = a c d = 3, P = R = 3/4 -> F = 0.75
    assert rouge_l("a b c d", "a c d e") == pytest.approx(0.75)
    # Chinese by character: 秘鲁使用索尔 vs 秘鲁用索尔: LCS = 秘鲁用索尔 = 5; P = 5/6, R = 1
    assert rouge_l("秘鲁使用索尔", "秘鲁用索尔") == pytest.approx(2 * (5 / 6) / (5 / 6 + 1))
    # Arabic keeps its words (rouge-score's default tokenizer would drop them): 2 of 3 match
    assert rouge_l("تستخدم مصر الجنيه", "تستخدم مصر الدولار") == pytest.approx(2 / 3)
    assert rouge_l("", "x") == 0.0


def test_bleu_and_chrf():
    refs = ["Egypt uses the Egyptian Pound and speaks Arabic ."]
    assert bleu4(refs, refs, "en") == pytest.approx(100.0)
    assert bleu4(["完全不同的句子"], ["秘鲁使用秘鲁索尔"], "zh") < 5.0
    zh = ["秘鲁使用秘鲁索尔，官方语言是西班牙语。"]
    assert bleu4(zh, zh, "zh") == pytest.approx(100.0)
    assert chrf(zh, zh) == pytest.approx(100.0)
    assert 0 < chrf(["秘鲁使用索尔"], zh) < 100


def test_aggregates():
    m = qa_metrics(["Euro", "Franc"], [["Euro"], ["Dollar"]], "en")
    assert m == {"em": 50.0, "f1": 50.0}
    s = summary_metrics(["a b c d"], ["a c d e"], "en")
    assert s["rouge_l"] == pytest.approx(75.0)
    assert set(s) == {"rouge_l", "bleu4", "chrf"}


def test_bertscore_without_local_model_is_a_clear_error_not_zero():
    with pytest.raises(MetricUnavailable, match="local multilingual encoder"):
        bertscore_f1(["a"], ["a"], None)
    with pytest.raises(MetricUnavailable):
        qa_metrics(["a"], [["a"]], "en", bertscore_model="/nonexistent/model")
