"""evaluate: hand-worked scores through the whole plumbing, the teacher comparison (retention, speed), the
files it writes, and the head/label checks."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

from distilkit.errors import ConfigError, DataError, ModelError
from distilkit.evaluation import EvaluateConfig, evaluate
from distilkit.train.finetune import FinetuneConfig, finetune
from tasks.tiny_tasks import FAST, base_encoder, conll_dir, one_thread, rte_dir, sst2_dir  # noqa: F401 (one_thread: autouse fixture)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    encoder = base_encoder(root / "encoder")
    data = {"sst2": sst2_dir(root), "conll2003": conll_dir(root), "rte": rte_dir(root)}
    for task in data:
        finetune(FinetuneConfig(model=encoder, task=task, data=data[task], out=str(root / task), max_steps=1, **FAST))
    student = base_encoder(root / "student-encoder", layers=1, seed=2)
    finetune(FinetuneConfig(model=student, task="sst2", data=data["sst2"], out=str(root / "student"), max_steps=1,
                            **FAST))  # fmt: skip
    return {"root": root, "encoder": encoder, "data": data}


def fixed_predictions(monkeypatch, rows):
    """Make the model "predict" the given logits rows (one per feature)."""
    module = importlib.import_module("distilkit.evaluation")
    monkeypatch.setattr(module, "predict", lambda model, data, *args: [np.asarray(r) for r in rows(data)])


def test_rte_scores_are_the_hand_worked_ones(monkeypatch, models):
    # RTE dev alternates not_entailment (id 1) / entailment (id 0); predict "entailment" for every example
    fixed_predictions(monkeypatch, lambda data: [[1.0, 0.0]] * len(data))
    result = evaluate(EvaluateConfig(model=str(models["root"] / "rte"), task="rte", data=models["data"]["rte"]))
    assert result["model"]["metrics"] == {"accuracy": 0.5} and result["model"]["main_score"] == 0.5


def test_entity_f1_is_computed_on_words_from_first_sub_tokens(monkeypatch, models):
    # every token predicts B-PER (id 2): "ahab sat in nantucket ." has gold PER + LOC, predicted 5 PER entities
    fixed_predictions(monkeypatch, lambda data: [np.tile([0.0, 0.0, 1.0], (n, 1)) for n in data.lengths])
    out = models["root"] / "ner-e"
    model = str(models["root"] / "conll2003")
    result = evaluate(
        EvaluateConfig(model=model, task="ner", data=models["data"]["conll2003"], split="test", out=str(out))
    )
    precision, recall = 1 / 5, 1 / 2
    assert result["model"]["metrics"] == pytest.approx(
        {"precision": precision, "recall": recall, "f1": 2 * precision * recall / (precision + recall)}
    )
    lines = (out / "predictions_test.tsv").read_text().splitlines()
    assert lines[:3] == ["word\tgold\tprediction", "ahab\tB-PER\tB-PER", "sat\tO\tB-PER"]


def test_teacher_comparison_retention_speed_and_files(tmp_path, models):
    root = models["root"]
    config = EvaluateConfig(model=str(root / "student"), teacher=str(root / "sst2"), task="sst2",
                            data=models["data"]["sst2"], out=str(tmp_path / "e"), speed_repeats=2)  # fmt: skip
    result = evaluate(config)
    student, teacher = result["model"]["main_score"], result["teacher"]["main_score"]
    assert result["retention"] == pytest.approx(100 * student / teacher)
    speed = result["speed"]
    assert speed["speedup"] == pytest.approx(speed["teacher_seconds"] / speed["student_seconds"])
    assert speed["examples"] == 24 and speed["batch_size"] == 32  # the whole 24-example dev split
    assert result["teacher"]["parameters"] > result["model"]["parameters"]
    written = json.loads((tmp_path / "e" / "evaluation.json").read_text())
    assert written["retention"] == pytest.approx(result["retention"])
    assert {p.name for p in (tmp_path / "e").iterdir()} == {
        "evaluation.json", "predictions_dev.tsv", "teacher_predictions_dev.tsv"
    }  # fmt: skip
    with pytest.raises(ConfigError, match="not empty"):
        evaluate(config)


def test_head_and_label_mismatches_are_model_errors(models):
    root, data = models["root"], models["data"]
    sst2 = str(root / "sst2")
    with pytest.raises(ModelError, match="predicts 2 labels but task stsb has 1"):
        evaluate(EvaluateConfig(model=sst2, task="stsb", data=data["sst2"]))
    with pytest.raises(ModelError, match="has a SequenceClassification head but task squad needs a QuestionAnswering"):
        evaluate(EvaluateConfig(model=sst2, task="squad", data=data["sst2"]))
    with pytest.raises(ModelError, match="has labels 0, 1 but task rte has entailment, not_entailment"):
        evaluate(EvaluateConfig(model=sst2, task="rte", data=data["rte"]))
    with pytest.raises(ModelError, match="has no task head"):
        evaluate(EvaluateConfig(model=models["encoder"], task="sst2", data=data["sst2"]))


def test_tags_outside_the_model_label_set_are_data_errors(tmp_path, models):
    folder = tmp_path / "conll"
    folder.mkdir()
    (folder / "valid.txt").write_text("ahab NNP I-NP I-PER\nleft VBD I-VP O\nacme NNP I-NP I-ORG\n")
    with pytest.raises(DataError, match="tag 'B-ORG' is not in the label list"):
        evaluate(EvaluateConfig(model=str(models["root"] / "conll2003"), task="conll2003", data=str(folder)))


def test_config_problems_are_collected():
    with pytest.raises(ConfigError) as error:
        EvaluateConfig(model="m", task="glue", data="d", split="train", speed_repeats=0)
    assert "unknown task 'glue'" in str(error.value) and "--split train" in str(error.value)
    assert "--speed-repeats" in str(error.value)
