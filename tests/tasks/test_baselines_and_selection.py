"""The reference points beside every score (#15): each task's trivial baseline, the flag on retention when the
teacher is near it; and the selection split carved from train, recorded, and scored again by evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from distilkit.errors import ConfigError
from distilkit.evaluation import EvaluateConfig, evaluate
from distilkit.tasks.data import TaskData
from distilkit.tasks.predict import retention_meaningful, trivial_baseline
from distilkit.tasks.readers import squad
from distilkit.tasks.readers.glue import Example
from distilkit.tasks.readers.ner import NerSentence
from distilkit.tasks.readers.splits import carve_selection, read_examples, read_split
from distilkit.tasks.registry import task_spec
from distilkit.train.finetune import FinetuneConfig, finetune
from tasks.tiny_tasks import FAST, base_encoder, conll_dir, one_thread, squad_dir, sst2_dir  # noqa: F401


def data_of(task: str, examples: list, labels: tuple[str, ...] = ()) -> TaskData:
    return TaskData(task_spec(task).with_labels(labels or None), examples, {"input_ids": [[0]] * len(examples)})


def test_majority_class_is_the_classification_baseline():
    examples = [Example("a", None, label) for label in (1, 1, 1, 0)]
    baseline = trivial_baseline(data_of("sst2", examples))
    assert baseline["main_score"] == pytest.approx(0.75) and baseline["predictor"] == "majority class 1"
    mrpc = trivial_baseline(data_of("mrpc", [Example("a", "b", label) for label in (1, 1, 1, 0)]))
    assert mrpc["metrics"] == pytest.approx({"f1": 6 / 7, "accuracy": 0.75})  # always "paraphrase": P 3/4, R 1


def test_constant_predictions_score_zero_correlation_and_zero_mcc():
    stsb = trivial_baseline(data_of("stsb", [Example("a", "b", score) for score in (0.0, 2.5, 5.0)]))
    assert stsb["metrics"] == {"pearson": 0.0, "spearman": 0.0} and stsb["main_score"] == 0.0
    cola = trivial_baseline(data_of("cola", [Example("a", None, label) for label in (1, 1, 0)]))
    assert cola["metrics"] == {"matthews": 0.0}


def test_no_entity_and_empty_answer_score_zero():
    sentences = [NerSentence(("ahab", "sat"), ("B-PER", "O"))]
    assert trivial_baseline(data_of("conll2003", sentences, ("O", "B-PER", "I-PER")))["main_score"] == 0.0
    question = squad.SquadExample("q", "t", "ahab sat", "who ?", ("ahab",), (0,))
    assert trivial_baseline(data_of("squad", [question]))["metrics"] == {"exact_match": 0.0, "f1": 0.0}


def test_unlabelled_split_has_no_baseline():
    assert trivial_baseline(data_of("sst2", [Example("a", None, None)])) is None


def test_retention_is_not_meaningful_near_the_baseline():
    assert not retention_meaningful(task_spec("rte"), 0.55, 0.527)  # 2.3 points above the majority class
    assert retention_meaningful(task_spec("rte"), 0.60, 0.527)
    squad_task = task_spec("squad")
    assert not retention_meaningful(squad_task, 4.0, 0.0) and retention_meaningful(squad_task, 60.0, 0.0)  # % scale


def test_selection_split_is_seeded_disjoint_and_holds_squad_articles_whole(tmp_path):
    items = list(range(100))
    train, held = carve_selection(items, 0.1, seed=0)
    assert len(held) == 10 and sorted(train + held) == items and train == sorted(train)
    assert carve_selection(items, 0.1, seed=0) == (train, held) and carve_selection(items, 0.1, seed=1)[1] != held
    questions = read_examples(task_spec("squad"), squad_dir(tmp_path), "dev")
    kept, carved = carve_selection(questions, 0.4, seed=0)
    assert {q.title for q in kept}.isdisjoint({q.title for q in carved}) and len({q.title for q in carved}) == 2
    with pytest.raises(ConfigError, match="trained without one"):
        read_split(task_spec("sst2"), sst2_dir(tmp_path), "selection")


def test_finetune_on_the_selection_split_records_it_and_evaluate_rescores_it(tmp_path):
    encoder, data = base_encoder(tmp_path / "enc"), sst2_dir(tmp_path, n_train=40)
    flags = {"selection_fraction": 0.25, "eval_split": "selection", "eval_every_epoch": True}
    config = FinetuneConfig(model=encoder, task="sst2", data=data, out=str(tmp_path / "m"), epochs=2, **flags, **FAST)
    result = finetune(config)
    info = json.loads((tmp_path / "m" / "distilkit_task.json").read_text())
    assert info["selection"] == {"fraction": 0.25, "seed": 0}
    assert info["train_examples"] == 30 and info["eval_examples"] == 10
    assert [point["epoch"] for point in info["learning_curve"]] == [1, 2.0]
    again = evaluate(EvaluateConfig(model=str(tmp_path / "m"), task="sst2", data=data, split="selection"))
    assert again["model"]["examples"] == 10
    assert again["model"]["main_score"] == pytest.approx(result.main_score)
    assert again["baseline"]["predictor"].startswith("majority class")
    assert np.isclose(info["learning_curve"][-1]["main_score"], result.main_score)


def test_a_tag_seen_only_in_the_selection_split_is_in_the_label_list(tmp_path):
    """The tag vocabulary comes from the whole training file: a rare tag the carve puts in the selection split alone
    (CoNLL-2003 chunking's I-INTJ) is still a label, so the selection split scores instead of failing."""
    folder = Path(conll_dir(tmp_path, n=20))
    examples = read_examples(task_spec("chunk"), folder, "train")
    _, held = carve_selection(examples, 0.25, 0)
    rare = examples.index(held[0])  # the first sentence held out gets the file's only INTJ
    blocks = (folder / "train.txt").read_text(encoding="utf-8").split("\n\n")
    sentence = blocks[rare + 1].splitlines()  # block 0 is the -DOCSTART- line
    sentence[1:3] = ["sat VBD I-INTJ O", "in IN I-INTJ O"]  # a two-word chunk: B-INTJ I-INTJ once read as IOB2
    blocks[rare + 1] = "\n".join(sentence)
    (folder / "train.txt").write_text("\n\n".join(blocks), encoding="utf-8")
    encoder = base_encoder(tmp_path / "enc")
    config = FinetuneConfig(model=encoder, task="chunk", data=str(folder), out=str(tmp_path / "m"),
                            selection_fraction=0.25, eval_split="selection", **FAST)  # fmt: skip
    finetune(config)
    info = json.loads((tmp_path / "m" / "distilkit_task.json").read_text())
    assert {"B-INTJ", "I-INTJ"} <= set(info["labels"])


def test_selection_flags_are_checked_before_any_work(tmp_path):
    data = sst2_dir(tmp_path)
    with pytest.raises(ConfigError, match="needs --selection-fraction"):
        FinetuneConfig(model="m", task="sst2", data=data, out="o", eval_split="selection")
    with pytest.raises(ConfigError, match=r"must be in \[0, 1\)"):
        FinetuneConfig(model="m", task="sst2", data=data, out="o", selection_fraction=1.5)
    with pytest.raises(ConfigError, match="give a --dev file"):
        FinetuneConfig(model="m", task="classification", train="t.csv", dev="d.csv", out="o", selection_fraction=0.1)
