"""finetune → evaluate round trips on tiny files with tiny random encoders: one classification, one regression,
one QA and one NER task; the outputs reload with plain transformers Auto classes; a learnable task is learnt."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from transformers import (
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from distilkit.errors import ConfigError, DataError, ModelError
from distilkit.evaluation import EvaluateConfig, evaluate
from distilkit.io import read_json
from distilkit.models.teacher import load_tokenizer
from distilkit.runtime import setup_runtime
from distilkit.tasks.data import encode, train_batches
from distilkit.tasks.heads import build_head_model
from distilkit.tasks.predict import predict, score
from distilkit.tasks.readers.splits import read_examples
from distilkit.tasks.registry import task_spec
from distilkit.train.finetune import FinetuneConfig, finetune
from tasks.tiny_tasks import FAST, base_encoder, conll_dir, one_thread, squad_dir, sst2_dir, stsb_dir  # noqa: F401 (one_thread: autouse fixture)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> str:
    return base_encoder(tmp_path_factory.mktemp("encoder"))


def test_classification_round_trip_and_plain_transformers_reload(tmp_path, encoder):
    data = sst2_dir(tmp_path)
    result = finetune(
        FinetuneConfig(model=encoder, task="SST-2", data=data, out=str(tmp_path / "m"), max_steps=3, **FAST)
    )
    out = tmp_path / "m"
    assert result.steps == 3 and set(result.metrics) == {"accuracy"}
    info = read_json(out / "distilkit_task.json")
    assert info["task"] == "sst2" and info["labels"] == ["0", "1"] and info["max_len"] == 32
    assert info["metrics"] == result.metrics and info["config"]["model"] == encoder and "versions" in info
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_labels == 2 and model.config.id2label == {0: "0", 1: "1"}
    rows = (out / "predictions_dev.tsv").read_text().splitlines()
    assert rows[0] == "index\tprediction\tlabel\ttext" and len(rows) == 25
    # evaluate scores the same split to the same numbers, and its accuracy is the one of the predictions file
    evaluated = evaluate(EvaluateConfig(model=str(out), task="sst2", data=data, out=str(tmp_path / "e")))
    assert evaluated["model"]["metrics"] == pytest.approx(result.metrics)
    cells = [row.split("\t") for row in (tmp_path / "e" / "predictions_dev.tsv").read_text().splitlines()[1:]]
    assert evaluated["model"]["metrics"]["accuracy"] == pytest.approx(np.mean([c[1] == c[2] for c in cells]))


def test_trivial_task_is_learnt(tmp_path, encoder):
    data = sst2_dir(tmp_path, n_train=64, n_dev=32)
    tokenizer = load_tokenizer(encoder)
    spec = task_spec("sst2")
    dev = encode(spec, read_examples(task_spec("sst2"), data, "dev"), tokenizer, 32, train=False)
    runtime = setup_runtime("cpu", "fp32")
    before, _ = score(dev, predict(build_head_model(encoder, spec), dev, runtime, tokenizer.pad_token_id))
    config = FinetuneConfig(model=encoder, task="sst2", data=data, out=str(tmp_path / "m"), lr=2e-3, epochs=6, **FAST)
    after = finetune(config).metrics
    assert after["accuracy"] >= 0.9 > before["accuracy"]


def test_regression_round_trip_and_test_with_scores_split(tmp_path, encoder):
    data = stsb_dir(tmp_path)
    result = finetune(
        FinetuneConfig(model=encoder, task="sts-b", data=data, out=str(tmp_path / "m"), max_steps=2, **FAST)
    )
    assert set(result.metrics) == {"pearson", "spearman"}
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "m")
    assert model.config.num_labels == 1 and model.config.problem_type == "regression"
    evaluated = evaluate(EvaluateConfig(model=str(tmp_path / "m"), task="stsb", data=data, split="test_with_scores"))
    assert evaluated["split"] == "test_with_scores" and -1 <= evaluated["model"]["main_score"] <= 1
    score_cells = [row.split("\t")[1] for row in (tmp_path / "m" / "predictions_dev.tsv").read_text().splitlines()[1:]]
    assert all(float(cell) == float(cell) for cell in score_cells)  # real numbers, not label names


def test_squad_trains_on_other_articles_and_evaluates_the_held_out_ones(tmp_path, encoder):
    data = squad_dir(tmp_path)
    config = FinetuneConfig(model=encoder, task="squad", data=data, out=str(tmp_path / "m"), stride=16,
                            max_steps=2, squad_dev_fraction=0.4, **{**FAST, "max_len": 48})  # fmt: skip
    result = finetune(config)
    split = read_json(tmp_path / "m" / "squad_split.json")
    assert len(split["heldout_titles"]) == 2 and not set(split["heldout_titles"]) & set(split["train_titles"])
    assert read_json(tmp_path / "m" / "distilkit_task.json")["squad_split"] == split
    assert result.train_features > 4 * 3 * 2  # 12 training questions, each context cut into several windows
    AutoModelForQuestionAnswering.from_pretrained(tmp_path / "m")
    answers = json.loads((tmp_path / "m" / "predictions_dev.json").read_text())
    assert {key.split("-")[0] for key in answers} == {f"q{title[-1]}" for title in split["heldout_titles"]}
    evaluated = evaluate(EvaluateConfig(model=str(tmp_path / "m"), task="squad", data=data))
    assert evaluated["model"]["examples"] == 8 and "held-out articles: 2" in evaluated["split"]
    assert evaluated["model"]["metrics"] == pytest.approx(result.metrics)


def test_ner_round_trip_iob2_labels_and_word_level_predictions(tmp_path, encoder):
    data = conll_dir(tmp_path)
    result = finetune(FinetuneConfig(model=encoder, task="conll2003", data=data, out=str(tmp_path / "m"), max_steps=2,
                                     **FAST))  # fmt: skip
    assert set(result.metrics) == {"precision", "recall", "f1"}
    model = AutoModelForTokenClassification.from_pretrained(tmp_path / "m")
    assert list(model.config.id2label.values()) == ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"]  # IOB1 file, IOB2 labels
    blocks = (tmp_path / "m" / "predictions_dev.tsv").read_text().split("\n\n")
    assert blocks[0].splitlines()[1].split("\t")[:2] == ["ahab", "B-PER"] and len(blocks) == 24
    evaluated = evaluate(EvaluateConfig(model=str(tmp_path / "m"), task="ner", data=data, split="test"))
    assert evaluated["model"]["examples"] == 24


def test_subsampling_is_seeded_and_recorded(tmp_path, encoder):
    data = sst2_dir(tmp_path)
    config = FinetuneConfig(model=encoder, task="sst2", data=data, out=str(tmp_path / "m"), max_steps=1,
                            max_train_samples=10, max_eval_samples=5, **FAST)  # fmt: skip
    finetune(config)
    info = read_json(tmp_path / "m" / "distilkit_task.json")
    assert (info["train_examples"], info["eval_examples"]) == (10, 5)


def test_batches_cover_every_feature_once_per_epoch():
    lengths = np.random.default_rng(0).integers(3, 30, size=101)
    batches = train_batches(lengths, 8, seed=1, epoch=0)
    assert sorted(np.concatenate(batches).tolist()) == list(range(101))
    assert [b.tolist() for b in train_batches(lengths, 8, 1, 0)] == [b.tolist() for b in batches]
    assert [b.tolist() for b in train_batches(lengths, 8, 1, 1)] != [b.tolist() for b in batches]


def test_config_collects_every_problem():
    with pytest.raises(ConfigError) as error:
        FinetuneConfig(model="m", task="sst3", data="d", out="o", lr=0, batch_size=0, warmup_ratio=1.5)
    message = str(error.value)
    assert "unknown task 'sst3'" in message and "--batch-size" in message and "--lr" in message
    assert "--warmup-ratio" in message and "\n" not in message


def test_user_errors_are_one_line(tmp_path, encoder):
    data = sst2_dir(tmp_path)
    out = str(tmp_path / "m")
    with pytest.raises(DataError, match="does not exist"):
        finetune(FinetuneConfig(model=encoder, task="rte", data=str(tmp_path / "nowhere"), out=out, **FAST))
    (tmp_path / "SST-2" / "dev.tsv").unlink()
    with pytest.raises(DataError, match=r"no dev\.tsv for SST-2"):
        finetune(FinetuneConfig(model=encoder, task="sst2", data=data, out=out, **FAST))
    (tmp_path / "squad").mkdir()
    with pytest.raises(DataError, match=r"no dev-v1\.1\.json in"):
        finetune(FinetuneConfig(model=encoder, task="squad", data=str(tmp_path / "squad"), out=out, stride=8, **FAST))
    with pytest.raises(DataError, match=r"no train\.txt or eng\.train in"):
        finetune(FinetuneConfig(model=encoder, task="conll2003", data=str(tmp_path / "squad"), out=out, **FAST))
    (tmp_path / "SST-2" / "train.tsv").write_text("sentence\tlabel\nfine\t1\nbleak\t2\n")
    with pytest.raises(DataError, match=r"train\.tsv, line 3: label '2' is not one of 0, 1"):
        finetune(FinetuneConfig(model=encoder, task="sst2", data=data, out=out, **FAST))
    (tmp_path / "SST-2" / "train.tsv").write_text("text\tlabel\nfine\t1\n")
    with pytest.raises(DataError, match="no column 'sentence'"):
        finetune(FinetuneConfig(model=encoder, task="sst2", data=data, out=out, **FAST))
    (tmp_path / "SST-2" / "train.tsv").write_text("")
    with pytest.raises(DataError, match="is empty"):
        finetune(FinetuneConfig(model=encoder, task="sst2", data=data, out=out, **FAST))
    with pytest.raises(ModelError, match="not found"):
        finetune(FinetuneConfig(model=str(tmp_path / "no-model"), task="sst2", data=data, out=out, **FAST))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        finetune(FinetuneConfig(model=encoder, task="sst2", data=data, out=str(tmp_path / "busy"), **FAST))


def test_time_budget_stops_early_and_says_so(tmp_path, encoder):
    config = FinetuneConfig(model=encoder, task="sst2", data=sst2_dir(tmp_path), out=str(tmp_path / "m"), epochs=50,
                            time_budget=1e-3, eval_split="none", **FAST)  # fmt: skip
    result = finetune(config)
    assert result.stopped_early and result.steps < result.planned_steps == 50 * 6
    training = read_json(tmp_path / "m" / "distilkit_task.json")["training"]
    assert training == {"steps": result.steps, "planned_steps": 300, "stopped_early": True}


class FakeHubSplit(list):
    """What `datasets.load_dataset(..., split=...)` returns, as far as tasks/hub.py looks at it."""

    def __init__(self, rows, features):
        super().__init__(rows)
        self.features, self.column_names = features, list(rows[0])


def names(*labels):
    return type("ClassLabel", (), {"names": list(labels)})()


def test_hub_datasets_map_to_the_local_records(monkeypatch):
    calls = []

    def load_dataset(name, config, split):
        calls.append((name, config, split))
        if name == "glue":
            rows = [{"premise": "a", "hypothesis": "b", "label": 0}, {"premise": "c", "hypothesis": "d", "label": 2}]
            return FakeHubSplit(rows, {"label": names("entailment", "neutral", "contradiction")})
        rows = [{"tokens": ["ahab", "sat"], "ner_tags": [1, 0]}]
        return FakeHubSplit(rows, {"ner_tags": type("Seq", (), {"feature": names("O", "I-PER")})()})

    monkeypatch.setitem(sys.modules, "datasets", type("datasets", (), {"load_dataset": staticmethod(load_dataset)}))
    examples = read_examples(task_spec("mnli"), "hf:glue", "dev")
    assert calls[-1] == ("glue", "mnli", "validation_matched")
    # the hub orders MNLI labels entailment/neutral/contradiction, the GLUE TSVs contradiction/entailment/neutral
    assert [example.label for example in examples] == [1, 0] and examples[0].text_pair == "b"
    sentences = read_examples(task_spec("conll2003"), "hf:conll:2003", "test")
    assert calls[-1] == ("conll", "2003", "test") and sentences[0].tags == ("B-PER", "O")


def test_hub_without_datasets_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import fails
    with pytest.raises(DataError, match=r'pip install "distilkit\[datasets\]"'):
        read_examples(task_spec("sst2"), "hf:glue", "train")
