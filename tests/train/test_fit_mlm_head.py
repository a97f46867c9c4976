"""fit-mlm-head on a tiny BertModel: only the head trains, it learns, its folder distils, refusals are one line."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoModelForMaskedLM, BertModel
from typer.testing import CliRunner

from conftest import build_tiny_tokenizer
from distilkit.cli import app
from distilkit.data.dataset import write_token_dataset
from distilkit.data.prepare import PrepareConfig, prepare
from distilkit.errors import ConfigError, DataError, ModelError
from distilkit.models.sentence import SentenceSpec, read_sentence_spec, write_sentence_files
from distilkit.models.student import InitStudentConfig, init_student
from distilkit.train.distill import DistillConfig, distill
from distilkit.train.mlm_head import RECORD, FitMlmHeadConfig, fit_mlm_head, split, with_fresh_head
from tiny import SPECIALS, VOCAB, make_model, make_tokenizer, tiny_config

N_WORDS = 20  # each sequence repeats one of 20 words: a masked word is the word of its neighbours


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A 2-layer BertModel teacher (no MLM head), 400 one-word sequences, and its head fitted for 100 steps."""
    root = tmp_path_factory.mktemp("mlm-head")
    torch.manual_seed(0)
    config = tiny_config(layers=2)
    # Word embeddings of a trained model's scale (std 0.2, not the 0.02 of a fresh init): with the decoder tied to
    # them, logits of 0.02-std embeddings stay flat however the head is trained.
    config.initializer_range = 0.2
    BertModel(config).save_pretrained(root / "teacher")
    make_tokenizer(root / "teacher")
    rng = np.random.default_rng(0)
    words = np.arange(len(SPECIALS), len(SPECIALS) + N_WORDS)
    sequences = [
        np.concatenate([[2], np.full(int(rng.integers(6, 16)), rng.choice(words)), [3]]).astype(np.uint16)
        for _ in range(400)
    ]
    special_ids = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    write_token_dataset(root / "data", sequences, vocab_size=len(VOCAB), special_ids=special_ids, max_len=24)
    config = FitMlmHeadConfig(
        str(root / "teacher"), str(root / "data"), str(root / "out"), max_steps=100, lr=3e-2, batch_size=32,
        heldout_fraction=0.2, seed=0, device="cpu", save_every=50,
    )  # fmt: skip
    events = []
    return root, config, fit_mlm_head(config, callback=events.append), events


def test_only_the_head_changes(fitted):
    root, config, result, _ = fitted
    teacher = BertModel.from_pretrained(root / "teacher").state_dict()
    model = AutoModelForMaskedLM.from_pretrained(result.out)
    assert type(model).__name__ == "BertForMaskedLM"
    saved = model.state_dict()
    encoder = [key for key in teacher if not key.startswith("pooler.")]  # MaskedLM has no pooler
    assert all(torch.equal(saved[f"bert.{key}"], teacher[key]) for key in encoder)
    # The decoder is the (unchanged) word embedding matrix; the transform, layer norm and bias moved from their draw.
    assert model.cls.predictions.decoder.weight.data_ptr() == model.bert.embeddings.word_embeddings.weight.data_ptr()
    fresh = with_fresh_head(config.teacher, config.seed).state_dict()
    head = [key for key in saved if key.startswith("cls.") and "decoder.weight" not in key]
    assert all(not torch.equal(saved[key], fresh[key]) for key in head)
    trained = set(json.loads((result.out / RECORD).read_text())["trained"])
    assert trained == {
        "cls.predictions.bias", "cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
        "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.bias",
    }  # fmt: skip


def test_the_head_learns_and_reports_held_out_accuracy(fitted):
    _, config, result, events = fitted
    record = json.loads((result.out / RECORD).read_text())
    # Chance is 1 in 145 ids (1 in 20 of the words used); the seeded case reached 0.88 when written.
    assert result.accuracy >= 0.6
    assert record["masked_token_accuracy"] == result.accuracy and record["steps"] == 100
    train_ids, heldout_ids = split(400, 0.2, 0)
    assert record["heldout"] == {"fraction": 0.2, "seed": 0, "sequences": 80, "scored": 80,
                                 "masked_tokens": result.masked_tokens}  # fmt: skip
    assert len(train_ids) == 320 and not set(train_ids) & set(heldout_ids)
    assert record["train_sequences"] == 320 and record["data"] == config.data
    assert not (result.out / "checkpoints").exists()  # the final save replaced them
    assert any(e["event"] == "note" and "accuracy" in e["message"] for e in events)


def test_distill_runs_the_triple_loss_on_the_fitted_teacher(fitted, tmp_path):
    root, _, result, _ = fitted
    init_student(InitStudentConfig(str(result.out), str(tmp_path / "student"), num_layers=1))
    distilled = distill(DistillConfig(
        teacher=str(result.out), student=str(tmp_path / "student"), data=str(root / "data"),
        out=str(tmp_path / "run"), batch_size=8, max_steps=2, tensorboard=False, device="cpu",
    ))  # fmt: skip
    assert set(distilled.terms) >= {"kl", "mlm", "cos"}
    assert distilled.steps == 2


def test_a_sentence_transformers_teacher_stays_one(fitted, tmp_path):
    """The embedded teacher is a sentence-transformers folder: OUT keeps its pooling files beside the MaskedLM."""
    root, config, _, _ = fitted
    teacher = tmp_path / "st-teacher"
    shutil.copytree(root / "teacher", teacher)
    write_sentence_files(teacher, SentenceSpec(), 32, 64)
    fit_mlm_head(dataclasses.replace(config, teacher=str(teacher), out=str(tmp_path / "out"), max_steps=2))
    assert read_sentence_spec(tmp_path / "out").from_folder
    assert (tmp_path / "out" / "modules.json").is_file()


def test_a_teacher_with_an_mlm_head_is_refused(fitted, tmp_path):
    _, config, _, _ = fitted
    make_model(tmp_path / "mlm-teacher", mlm=True, layers=2)
    with pytest.raises(ModelError, match="already has a masked-LM head") as error:
        fit_mlm_head(FitMlmHeadConfig(str(tmp_path / "mlm-teacher"), config.data, str(tmp_path / "out")))
    assert "\n" not in str(error.value)


def test_data_of_another_tokenizer_is_one_line(fitted, tmp_path):
    _, config, _, _ = fitted
    (tmp_path / "corpus.txt").write_text("the cat sat on the door of the house\n" * 20)
    build_tiny_tokenizer(tmp_path / "other")
    prepare(PrepareConfig(str(tmp_path / "other"), (str(tmp_path / "corpus.txt"),), str(tmp_path / "data")))
    with pytest.raises(DataError, match="another tokenizer") as error:
        fit_mlm_head(FitMlmHeadConfig(config.teacher, str(tmp_path / "data"), str(tmp_path / "out")))
    assert "\n" not in str(error.value)


def test_missing_data_and_bad_flags_are_one_line(fitted, tmp_path):
    _, config, _, _ = fitted
    result = CliRunner().invoke(app, ["fit-mlm-head", "--teacher", config.teacher, "--data", str(tmp_path / "none"),
                                      "--out", str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "data directory not found" in lines[0], result.output
    with pytest.raises(ConfigError, match=r"--heldout-fraction must be in .*; --lr must be > 0"):
        FitMlmHeadConfig("t", "d", "o", heldout_fraction=1.0, lr=0)
