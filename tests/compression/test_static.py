"""The static-embedding tier (#17) on tiny sentence models: the saved folder loads in sentence-transformers and
encodes as distilkit does, token rows are the teacher's one-token embeddings, PCA dims and SIF weights are as asked,
tuning brings the static model closer to the teacher, `compress --task embedding` writes its front; bad input is a
one-line ConfigError."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from distilkit.compression.config import CompressConfig
from distilkit.compression.run import compress
from distilkit.compression.static import (
    SIF_COEFFICIENT,
    distill_static,
    embed_tokens,
    kept_token_ids,
    token_weights,
)
from distilkit.embeddings import load_sentence_model
from distilkit.errors import ConfigError
from distilkit.models.sentence import SentenceSpec, write_sentence_files
from distilkit.models.static import load_static
from tasks.tiny_tasks import SUBJECTS, base_encoder, one_thread, stsb_dir  # noqa: F401
from tiny import tiny_config

CORPUS = [f"{a} and {b} was {word} ." for a in SUBJECTS for b in SUBJECTS for word in ("good", "old")]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> str:
    """A tiny sentence-transformers teacher (mean pooling, normalised) at hidden 32."""
    folder = tmp_path_factory.mktemp("static") / "teacher"
    base_encoder(folder)
    write_sentence_files(folder, SentenceSpec(("mean",), True, max_seq_length=64), 32, 64)
    return str(folder)


def test_saved_model_loads_in_sentence_transformers_and_encodes_as_distilkit(teacher, tmp_path):
    st = pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed")
    result = distill_static(teacher, tmp_path / "static", dims=8, corpus=CORPUS[:20])
    theirs = st.SentenceTransformer(str(tmp_path / "static"), device="cpu")
    mine = load_sentence_model(tmp_path / "static")
    texts = [*CORPUS[:5], "the whale", "ships " * 300]  # a long text: a static model reads every token
    expected = theirs.encode(texts, convert_to_numpy=True)
    assert expected.shape == (len(texts), 8) == mine.encode(texts).shape and result.dims == 8
    np.testing.assert_allclose(mine.encode(texts, batch_size=2), expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(expected, axis=1), 1.0, atol=1e-6)


def test_token_rows_are_the_teachers_one_token_embeddings_reduced_and_weighted(teacher, tmp_path):
    model = load_sentence_model(teacher)
    whale = model.tokenizer.convert_tokens_to_ids("whale")
    assert np.allclose(embed_tokens(model, [whale])[0], model.encode(["whale"])[0], atol=1e-6)
    result = distill_static(teacher, tmp_path / "static", dims=6)
    ids = kept_token_ids(model.tokenizer)
    assert model.tokenizer.cls_token_id not in ids and whale in ids
    from safetensors.numpy import load_file

    table = load_file(str(tmp_path / "static" / "model.safetensors"))["embedding.weight"]
    weights, weighting = token_weights(model.tokenizer, ids, None, SIF_COEFFICIENT)
    expected = result.projection.transform(embed_tokens(model, ids)) * weights[:, None]
    assert weighting == "sif-zipf" and table.shape[1] == 6 and result.projection.n_components_ == 6
    np.testing.assert_allclose(table[ids], expected, atol=1e-5)
    assert not table[model.tokenizer.cls_token_id].any()  # special tokens keep zero rows


def test_corpus_frequencies_give_sif_weights(teacher):
    tokenizer = load_sentence_model(teacher).tokenizer
    the, whale, ship = (tokenizer.convert_tokens_to_ids(word) for word in ("the", "whale", "ship"))
    corpus = ["the the the whale", "the whale"]  # 6 tokens: "the" 4, "whale" 2, "ship" never
    weights, weighting = token_weights(tokenizer, [the, whale, ship], corpus, sif=0.1)
    assert weighting == "sif-corpus"
    np.testing.assert_allclose(weights, [0.1 / (0.1 + 4 / 6), 0.1 / (0.1 + 2 / 6), 1.0])
    zipf, _ = token_weights(tokenizer, [the, whale, ship], None, sif=0.1)
    assert zipf[0] < zipf[1] < zipf[2]  # the vocabulary's first tokens count as the most frequent


def test_tuning_lowers_the_error_to_the_teacher(teacher, tmp_path):
    torch.manual_seed(0)
    result = distill_static(teacher, tmp_path / "static", dims=8, corpus=CORPUS, tune_epochs=4, lr=1e-2)
    before, after = result.tuning["before"], result.tuning["after"]
    assert after["mse"] < 0.8 * before["mse"] and after["cos"] < before["cos"]
    record = json.loads((tmp_path / "static" / "distilkit_static.json").read_text())
    assert record["tuning"]["after"] == after and record["weighting"] == "sif-corpus"


def test_bad_input_is_one_line(teacher, tmp_path):
    with pytest.raises(ConfigError, match=r"--static-dims must be in \[1, 32\]"):
        distill_static(teacher, tmp_path / "a", dims=33)
    with pytest.raises(ConfigError, match="tuning needs"):
        distill_static(teacher, tmp_path / "b", dims=4, tune_epochs=2)
    from transformers import AutoModelForSequenceClassification

    classifier = tmp_path / "classifier"
    config = tiny_config("bert", layers=1)
    config.architectures = ["BertForSequenceClassification"]
    AutoModelForSequenceClassification.from_config(config).save_pretrained(classifier)
    load_sentence_model(teacher).tokenizer.save_pretrained(classifier)
    with pytest.raises(ConfigError, match="needs a sentence-embedding teacher") as error:
        distill_static(classifier, tmp_path / "c", dims=4)
    assert "\n" not in str(error.value)
    distill_static(teacher, tmp_path / "static", dims=4)
    with pytest.raises(ConfigError, match="already a static model"):
        distill_static(tmp_path / "static", tmp_path / "d", dims=4)
    with pytest.raises(ConfigError, match="needs --corpus"):
        CompressConfig(teacher=teacher, task="embedding", out=str(tmp_path / "e"), min_speedup=2)


def test_compress_embedding_ships_the_static_tier(teacher, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(CORPUS) + "\n", encoding="utf-8")
    config = CompressConfig(teacher=teacher, task="embedding", corpus=str(corpus), data=stsb_dir(tmp_path),
                            out=str(tmp_path / "out"), min_speedup=1.5, static_dims=8, timing_repeats=2,
                            batch_size=16, seed=0)  # fmt: skip
    result = compress(config)
    front = json.loads(result.front.read_text())
    final = front["final"]
    assert result.chosen == front["chosen"] == "static-8" and front["tier"] == "static"
    assert final["speedup"] == pytest.approx(final["teacher_ms"] / final["measured_ms"])
    assert result.target_met == (final["speedup"] >= 1.5)
    assert 0 <= final["fidelity"]["nn_agreement@1"] <= 1 and final["fidelity"]["n"] == 12  # 10% of 128, ≥ 11
    assert final["dev_retention"] == pytest.approx(final["dev_score"] / final["teacher_dev_score"])
    assert "not searched yet" in front["note"] and result.report.is_file()
    assert load_static(tmp_path / "out" / "model").encode(["the sea"]).shape == (1, 8)


def test_evaluation_scores_a_static_model(teacher, tmp_path):
    from distilkit.embedding_suite import SuiteConfig, evaluate_suite
    from distilkit.embeddings import StsConfig, evaluate_sts

    distill_static(teacher, tmp_path / "static", dims=8, corpus=CORPUS)
    stsb_dir(tmp_path / "glue")
    sts = evaluate_sts(StsConfig(model=str(tmp_path / "static"), data=str(tmp_path / "glue" / "STS-B"),
                                 teacher=teacher, k=3, speed_repeats=1))  # fmt: skip
    assert sts["dims"] == {"student": 8, "teacher": 32} and -100 <= sts["student"]["spearman"] <= 100
    suite = evaluate_suite(SuiteConfig(model=str(tmp_path / "static"), data=str(tmp_path / "glue"), teacher=teacher))
    assert suite["tasks"] == ["sts"] and "sts" in suite["retention"]
