"""export: kinds, ONNX parity (and a loud failure), the int8 accuracy guard, the hf folder with its model card."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from distilkit.cli import app
from distilkit.embeddings import load_sentence_model
from distilkit.errors import ConfigError, ModelError
from distilkit.models.sentence import SentenceSpec, read_sentence_spec, write_sentence_files
from distilkit.ship import export as export_module
from distilkit.ship.export import FORMATS, AccuracyGuardError, ExportConfig, export, glue_dev_score
from distilkit.ship.kinds import model_kind
from distilkit.ship.onnx_graph import INT8_FILE, ONNX_FILE, ort_session
from distilkit.tasks.registry import task_spec

pytest.importorskip("onnxruntime", reason='needs the onnx extra: pip install "distilkit[onnx]"')


def test_kinds_come_from_the_task_file_or_the_architecture(ship_models):
    assert model_kind(ship_models["student"]) == "classification"
    assert model_kind(ship_models["embedding"]) == "embedding"
    assert model_kind(ship_models["ner"]) == "token-classification"
    assert model_kind(ship_models["qa"]) == "qa"


def test_onnx_export_matches_pytorch_at_new_shapes(ship_models, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    out = tmp_path / "onnx"
    result = export(ExportConfig(str(ship_models["embedding"]), "onnx", str(out)))
    assert result.parity_max_abs_diff is not None and result.parity_max_abs_diff < 1e-4
    assert {ONNX_FILE, "config.json", "tokenizer.json", "README.md", "export.json"} <= {p.name for p in out.iterdir()}
    # Dynamic axes: a batch and length the export never saw give PyTorch's numbers.
    tokenizer, model = AutoTokenizer.from_pretrained(out), AutoModel.from_pretrained(ship_models["embedding"]).eval()
    texts = ["the sea", "the old man and the sea was a long day at sea", "a", "the ship"] * 2
    features = tokenizer(texts, padding=True, return_tensors="np")
    session = ort_session(out / ONNX_FILE, threads=1)
    got = session.run(None, {i.name: features[i.name] for i in session.get_inputs()})[0]
    import torch

    with torch.inference_mode():
        expected = model(**{k: torch.from_numpy(v) for k, v in features.items()}).last_hidden_state.numpy()
    assert got.shape == (8, features["input_ids"].shape[1], 32)
    np.testing.assert_allclose(got, expected, atol=1e-4)


SENTENCES = ["the sea", "she said that the old ship had a great heart and the house was good by the sea", "a whale"]
ST_FILES = {"modules.json", "1_Pooling", "sentence_bert_config.json", "config_sentence_transformers.json"}


@pytest.fixture(scope="module")
def cls_sentence_model(ship_models, tmp_path_factory):
    """The tiny embedding model as a sentence-transformers folder that CLS-pools and does not normalise."""
    folder = shutil.copytree(ship_models["embedding"], tmp_path_factory.mktemp("st") / "cls")
    write_sentence_files(folder, SentenceSpec(("cls",), normalize=False), dimension=32, max_positions=64)
    return folder


@pytest.mark.parametrize("format", FORMATS)
def test_every_format_carries_the_sentence_files_and_is_served_cls_pooled(
    ship_models, cls_sentence_model, tmp_path, format
):
    """An exported CLS-pooled model is served as the source model encodes — not mean-pooled and normalised, what a
    folder without modules.json and 1_Pooling/ falls back to."""
    from distilkit.ship.serve.predictor import load_predictor

    out = tmp_path / format
    result = export(ExportConfig(str(cls_sentence_model), format, str(out)))
    assert set(result.files) >= ST_FILES and (out / "1_Pooling" / "config.json").is_file()
    assert read_sentence_spec(out) == read_sentence_spec(cls_sentence_model)
    assert result.record["sentence"] == {"pooling": ["cls"], "normalize": False}
    assert "| pooling | cls |" in (out / "README.md").read_text()
    expected = load_sentence_model(cls_sentence_model).encode(SENTENCES)
    predictor = load_predictor("student", str(out), threads=1)
    assert predictor.backend == ("torch" if format == "hf" else "onnx")
    assert predictor.info["pooling"] == ["cls"] and predictor.info["normalize"] is False
    served = np.array([prediction["embedding"] for prediction in predictor.predict(SENTENCES)])
    # int8 weights move every vector a little; fp32 ONNX and the hf folder agree with PyTorch to the print precision.
    np.testing.assert_allclose(served, expected, atol=0.05 if format == "int8" else 2e-5)
    mean_pooled = load_sentence_model(ship_models["embedding"]).encode(SENTENCES)
    assert np.abs(served - expected).max() < 0.5 * np.abs(served - mean_pooled).max()
    if format == "hf":  # `evaluate --task sts` on the export encodes as on the source
        np.testing.assert_allclose(load_sentence_model(out).encode(SENTENCES), expected, atol=1e-5)


def test_parity_above_tolerance_fails_loudly_and_writes_nothing(ship_models, tmp_path):
    out = tmp_path / "broken"
    with pytest.raises(ModelError, match=r"ONNX parity check failed: max \|onnx − pytorch\| = .* > --atol 1e-12"):
        export(ExportConfig(str(ship_models["embedding"]), "onnx", str(out), atol=1e-12))
    assert not out.exists()


def test_int8_guard_refuses_a_large_drop_and_keeps_the_fp32_export(ship_models, glue_dir, tmp_path, monkeypatch):
    scores = iter([0.90, 0.85])  # fp32 first, then int8: a 5-point drop

    def fake_score(session, tokenizer, task, data_dir, **kwargs):
        return {"task": task.name, "split": "dev", "n": 6, "metrics": {}, "score": next(scores)}

    monkeypatch.setattr(export_module, "glue_dev_score", fake_score)
    out = tmp_path / "int8"
    config = ExportConfig(str(ship_models["student"]), "int8", str(out), eval_task="sst2", data_dir=str(glue_dir))
    with pytest.raises(AccuracyGuardError, match=r"int8 refused: sst2 dev score drops 5\.00 points .* > --max-drop 1"):
        export(config)
    assert (out / ONNX_FILE).is_file() and not (out / INT8_FILE).exists()
    record = json.loads((out / "export.json").read_text())
    assert record["guard"]["accepted"] is False and record["guard"]["drop_points"] == pytest.approx(5.0)


def test_int8_guard_accepts_within_max_drop_with_real_dev_scores(ship_models, glue_dir, student_int8):
    guard = json.loads((student_int8 / "export.json").read_text())["guard"]
    assert guard["accepted"] and (student_int8 / INT8_FILE).is_file() and (student_int8 / ONNX_FILE).is_file()
    for precision in ("fp32", "int8"):
        assert guard[precision]["n"] == 6 and 0.0 <= guard[precision]["score"] <= 1.0
    assert guard["drop_points"] == pytest.approx(100 * (guard["fp32"]["score"] - guard["int8"]["score"]))
    # The fp32 ONNX score is the PyTorch model's accuracy on the same rows.
    fp32 = glue_dev_score(ort_session(student_int8 / ONNX_FILE), _tokenizer(student_int8), task_spec("sst2"), glue_dir)
    assert fp32["score"] == guard["fp32"]["score"] == pytest.approx(_torch_accuracy(ship_models["student"], glue_dir))
    assert "int8 guard.drop_points" in (student_int8 / "README.md").read_text()


def _tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def _torch_accuracy(model_dir, glue_dir) -> float:
    import torch
    from transformers import AutoModelForSequenceClassification

    from distilkit.tasks.readers.glue import read_glue

    examples = read_glue(task_spec("sst2"), glue_dir, "dev")
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = _tokenizer(model_dir)
    with torch.inference_mode():
        logits = model(**tokenizer([e.text for e in examples], padding=True, return_tensors="pt")).logits
    return float((logits.argmax(-1).numpy() == np.array([e.label for e in examples])).mean())


def test_hf_export_has_a_model_card_and_loads_in_transformers(ship_models, tmp_path):
    from transformers import AutoModelForSequenceClassification

    figures = {"p50_ms": 2.5, "p95_ms": 3.0, "sequences_per_s": 400.0, "gflops": 1.0, "peak_fraction": 0.1}
    entry = {"status": "ok", "bytes": 10, "batches": {"1": figures, "8": figures}}
    bench = {"config": {"batch_sizes": [1, 8]}, "ratios": {}, "models": {"student": {"params": 1, "backends": {
        "onnx-int8": entry, "torch-bf16": {"status": "skipped", "reason": "no bf16"}}}}}  # fmt: skip
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    out = tmp_path / "hf"
    export(
        ExportConfig(
            str(ship_models["student"]), "hf", str(out), teacher="tiny-teacher", bench=str(tmp_path / "bench.json")
        )
    )
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_hidden_layers == 2
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers") and "| teacher | tiny-teacher |" in card
    assert "| task | sst2 |" in card and (out / "distilkit_task.json").is_file()
    assert "| student | onnx-int8 | 2.5 | 400.0 |" in card and "torch-bf16" not in card


def test_guard_needs_a_classifier_of_the_task(ship_models, glue_dir, tmp_path):
    config = ExportConfig(str(ship_models["embedding"]), "int8", str(tmp_path / "x"), eval_task="sst2",
                          data_dir=str(glue_dir))  # fmt: skip
    with pytest.raises(
        ModelError, match=r"needs a sst2 classifier with 2 labels, but .* is a model of kind 'embedding'"
    ):
        export(config)
    assert not (tmp_path / "x").exists()


def test_config_collects_every_problem():
    with pytest.raises(ConfigError) as raised:
        ExportConfig("m", "tflite", "out", eval_task="nosuchtask", data_dir="d", max_drop=-1)
    message = str(raised.value)
    assert "--format must be one of hf, onnx, int8" in message and "--eval-task" in message and "≥ 0" in message


def test_cli_errors_are_one_line_with_exit_code_2(ship_models, tmp_path):
    result = CliRunner().invoke(
        app, ["export", "--model", str(ship_models["student"]), "--format", "tflite", "--out", str(tmp_path / "x")]
    )
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "--format must be one of hf, onnx, int8" in lines[0]
    assert AccuracyGuardError.exit_code == 3  # the guard's refusal is told apart from a usage error
