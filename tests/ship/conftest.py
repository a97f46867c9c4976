"""Tiny random models of every kind the ship commands handle, saved once per session with the tiny tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tiny import make_tokenizer, tiny_config

SST2_DEV = [
    ("the captain was a good man", 1),
    ("a long night at sea", 0),
    ("she said it was very good", 1),
    ("they had no love for the old ship", 0),
    ("the little house by the sea", 1),
    ("what a bad day", 0),
]


def save_model(directory: Path, kind: str, layers: int, seed: int = 0, task: str | None = None, **config) -> Path:
    """A tiny BERT of ``kind`` (embedding, classification, token-classification, qa) with the tiny tokenizer."""
    from transformers import (
        AutoModel,
        AutoModelForQuestionAnswering,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
    )

    torch.manual_seed(seed)
    model_config = tiny_config("bert", layers=layers)
    for key, value in config.items():
        setattr(model_config, key, value)
    loader = {
        "embedding": AutoModel,
        "classification": AutoModelForSequenceClassification,
        "token-classification": AutoModelForTokenClassification,
        "qa": AutoModelForQuestionAnswering,
    }[kind]
    model = loader.from_config(model_config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    make_tokenizer(directory)
    if task:
        (directory / "distilkit_task.json").write_text(json.dumps({"task": task}))
    return directory


LABELS = {"id2label": {0: "negative", 1: "positive"}, "label2id": {"negative": 0, "positive": 1}}
NER_LABELS = {
    "id2label": {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC"},
    "label2id": {"O": 0, "B-PER": 1, "I-PER": 2, "B-LOC": 3},
}


@pytest.fixture(scope="session")
def ship_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name → model folder: a classifier teacher (4 layers) and student (2), and one model of each other kind."""
    root = tmp_path_factory.mktemp("ship-models")
    return {
        "teacher": save_model(root / "teacher", "classification", 4, seed=1, task="sst2", **LABELS),
        "student": save_model(root / "student", "classification", 2, seed=2, task="sst2", **LABELS),
        "embedding": save_model(root / "embedding", "embedding", 2, seed=3),
        "ner": save_model(root / "ner", "token-classification", 2, seed=4, **NER_LABELS),
        "qa": save_model(root / "qa", "qa", 2, seed=5, task="squad"),
    }


@pytest.fixture(scope="session")
def glue_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GLUE root holding a six-row SST-2 dev.tsv in the tiny vocabulary."""
    root = tmp_path_factory.mktemp("glue")
    (root / "SST-2").mkdir()
    rows = "".join(f"{text}\t{label}\n" for text, label in SST2_DEV)
    (root / "SST-2" / "dev.tsv").write_text("sentence\tlabel\n" + rows, encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def student_int8(ship_models, glue_dir, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny student exported to int8 ONNX through the accuracy guard (accepting any drop)."""
    pytest.importorskip("onnxruntime", reason='needs the onnx extra: pip install "distilkit[onnx]"')
    from distilkit.ship.export import ExportConfig, export

    out = tmp_path_factory.mktemp("exports") / "student-int8"
    config = ExportConfig(str(ship_models["student"]), "int8", str(out), eval_task="sst2", data_dir=str(glue_dir),
                          max_drop=100.0)  # fmt: skip
    export(config)
    return out
