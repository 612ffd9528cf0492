"""Metric flags through config and runners, and BERTScore end to end with a tiny local encoder."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grasp_env.metrics import bertscore_f1, bertscore_layer, qa_metrics, summary_metrics

ROOT = Path(__file__).resolve().parents[1]
# bert-score's table (model2layers) gives google/bert_uncased_L-2_H-128_A-2 layer 1 of 2.
TABLE_NAME = "google/bert_uncased_L-2_H-128_A-2"
WORDS = ["egypt", "pound", "euro", "dollar", "franc", "uses", "the", "##s"]


def build_encoder(path: Path) -> Path:
    """A 2-layer BERT with a hand-written vocabulary, saved offline to `path`."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    path.mkdir(parents=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789") + list("ابتثجحخدذرزسشصضطظعغفقكلمنهوي")
    vocab = specials + WORDS + chars + list("埃及镑秘鲁索尔")
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizer(str(path / "vocab.txt"), model_max_length=128).save_pretrained(path)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        BertModel(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return build_encoder(tmp_path_factory.mktemp("encoders") / TABLE_NAME.split("/")[1])


def test_layer_comes_from_bert_scores_table(encoder, tmp_path):
    assert bertscore_layer(encoder) == (TABLE_NAME, 1)
    # a hub-cache snapshot folder names the model too
    snapshot = tmp_path / f"models--{TABLE_NAME.replace('/', '--')}" / "snapshots" / "abc123"
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(encoder, target_is_directory=True)
    assert bertscore_layer(snapshot) == (TABLE_NAME, 1)


def test_bertscore_matches_the_package_at_the_table_layer(encoder):
    from bert_score import score

    from grasp_env.metrics import _bert_scorer

    cands, refs = ["egypt uses the pound", "euro"], ["egypt uses the euro", "franc"]
    ours = bertscore_f1(cands, refs, str(encoder))
    _, _, f1 = score(cands, refs, model_type=str(encoder), num_layers=1)
    assert ours == pytest.approx(100 * f1.mean().item(), abs=1e-4)
    _, _, f1_top = score(cands, refs, model_type=str(encoder), num_layers=2)
    assert ours != pytest.approx(100 * f1_top.mean().item(), abs=1e-4)  # not a fixed layer
    assert len(_bert_scorer(str(encoder), 1, None)._model.encoder.layer) == 1
    assert bertscore_f1(["egypt"], ["egypt"], str(encoder)) == pytest.approx(100.0, abs=1e-3)


def test_qa_bertscore_uses_all_gold_answers_and_blank_rows_score_zero(encoder):
    m = qa_metrics(["euro", ""], [["dollar", "euro"], ["franc"]], "en", str(encoder))
    # row 1: the second answer is identical -> 100; row 2: blank prediction -> 0
    assert m["bertscore_f1"] == pytest.approx(50.0, abs=1e-3)
    first_only = bertscore_f1(["euro"], ["dollar"], str(encoder))
    assert first_only < 99.0
    s = summary_metrics(["egypt"], ["egypt"], "en", bertscore_model=str(encoder))
    assert s["bertscore_f1"] == pytest.approx(100.0, abs=1e-3)


def test_the_experiment_validates_metric_flags_before_work(encoder):
    from grasp_env.config import DataConfig, EvalConfig, ExperimentConfig
    from grasp_env.lm.pipeline import check_experiment

    with pytest.raises(ValueError, match="rouge='porter'"):
        EvalConfig(rouge="porter")
    with pytest.raises(ValueError, match="MLQA"):
        DataConfig(task="qa", target="fr")
    hindi = ExperimentConfig(data=DataConfig(task="summarization", target="hi"))
    with pytest.raises(ValueError, match="--eval.rouge unstemmed"):
        check_experiment(hindi)
    check_experiment(ExperimentConfig(data=DataConfig(task="qa", target="hi")))  # no ROUGE for QA
    with pytest.raises(ValueError, match="no config.json"):
        check_experiment(ExperimentConfig(eval=EvalConfig(bertscore_model="/nonexistent/encoder")))
    cfg = ExperimentConfig(
        data=DataConfig(task="summarization"),
        eval=EvalConfig(rouge="unstemmed", bertscore_model=str(encoder)),
    )
    conventions = cfg.metric_conventions()
    assert conventions["rouge_l"].startswith("unstemmed|lang:ar")
    assert conventions["bertscore_f1"].startswith(f"model:{TABLE_NAME}|layer:1|")


def test_pipeline_score_passes_rouge_and_bertscore_through(encoder, monkeypatch):
    from types import SimpleNamespace

    from grasp_env.config import DataConfig, EvalConfig, ExperimentConfig
    from grasp_env.lm import pipeline

    rows = [{"answers": {"text": ["dollar", "euro"], "answer_start": [0, 0]}, "summary": "الكتاب"}]

    def score(prediction, task, target, rouge="xlsum"):
        monkeypatch.setattr(pipeline, "generate", lambda *a, **k: [prediction])
        config = ExperimentConfig.from_preset(
            "tiny",
            task=task,
            data=DataConfig(task=task, target=target),
            eval=EvalConfig(rouge=rouge, bertscore_model=str(encoder)),
        )
        prep = SimpleNamespace(cfg=config, splits=SimpleNamespace(test=rows), tokenizer=None)
        return pipeline.score(prep, model=None)

    qa = score("euro", task="qa", target="en")
    assert qa["em"] == 100.0 and qa["bertscore_f1"] == pytest.approx(100.0, abs=1e-3)
    # كتاب vs الكتاب: one stem under xlsum (the default), two different words unstemmed
    xlsum = score("كتاب", task="summarization", target="ar")
    assert set(xlsum) == {"rouge_l", "bleu4", "chrf", "bertscore_f1"}
    assert xlsum["rouge_l"] == 100.0
    assert score("كتاب", task="summarization", target="ar", rouge="unstemmed")["rouge_l"] == 0.0


@pytest.mark.slow
def test_main_job_reports_bertscore_and_conventions(encoder, isolated_cache, tmp_path):
    env = {**os.environ, "GRASP_CACHE_DIR": str(isolated_cache)}
    flags = [
        "--preset",
        "tiny",
        "--controller.train-steps",
        "20",
        "--controller.update-interval",
        "5",
    ]
    flags += [
        "--eval.bertscore-model",
        str(encoder),
        "--out-dir",
        str(tmp_path),
        "--run-name",
        "bs",
    ]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "runners" / "train_agent.py"), *flags],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "bs" / "metrics.json").read_text())
    assert set(metrics["test"]) == {"em", "f1", "bertscore_f1"}
    assert 0.0 <= metrics["test"]["bertscore_f1"] <= 100.0
    conventions = metrics["metric_conventions"]
    assert conventions["em"] == conventions["f1"] == "mlqa_v1"
    assert conventions["bertscore_f1"].startswith(f"model:{TABLE_NAME}|layer:1|")
    assert "refs:all-gold" in conventions["bertscore_f1"]
