"""serve's backends: which one --backend auto picks (int8 export inside or next to the student, else PyTorch)
and says why, served outputs equal to evaluate's on every backend, the start-up log, and the CLI's one-line
errors for bad micro-batching flags."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("fastapi", reason='needs the serve extra: pip install "distilkit[serve]"')
pytest.importorskip("onnxruntime", reason='needs the onnx extra: pip install "distilkit[onnx]"')

from fastapi.testclient import TestClient
from typer.testing import CliRunner

import distilkit.ship.serve.backends as backends
from distilkit.errors import ConfigError
from distilkit.ship.serve.app import ServeConfig, create_app, serve
from distilkit.ship.serve.predictor import load_predictor

SENTENCES = ["the sea", "she said that the old ship had a great heart and the house was good by the sea", "a whale"]


def _export_int8(model_dir, out) -> None:
    from distilkit.ship.export import ExportConfig, export

    export(ExportConfig(str(model_dir), "int8", str(out)))  # writes model.onnx and model.int8.onnx


@pytest.fixture(scope="module")
def run_dir(ship_models, tmp_path_factory):
    """run/student with its int8 export in run/student/export, and run/teacher (no export)."""
    run = tmp_path_factory.mktemp("run")
    student = shutil.copytree(ship_models["student"], run / "student")
    shutil.copytree(ship_models["teacher"], run / "teacher")
    _export_int8(student, student / "export")
    os.utime(student / "model.safetensors", (1, 1))  # weights older than the export, whatever the clock
    return run


def _probabilities(predictor, text="a good day at sea"):
    return np.array(list(predictor.predict([text])[0]["probabilities"].values()))


def test_auto_serves_the_int8_export_inside_the_student_folder(run_dir):
    predictor = load_predictor("student", str(run_dir / "student"), "auto", threads=1)
    assert predictor.backend == "onnx" and predictor.info["backend"] == "onnxruntime (model.int8.onnx)"
    choice = predictor.info["backend_choice"]
    assert choice == {
        "asked": "auto",
        "chosen": "onnx-int8",
        "reason": "int8 ONNX export found (export/model.int8.onnx)",
    }
    torch_predictor = load_predictor("student", str(run_dir / "student"), "torch", threads=1)
    assert torch_predictor.backend == "torch" and torch_predictor.info["backend_choice"]["chosen"] == "torch"
    assert 0.9 * torch_predictor.info["params"] < predictor.info["params"] <= 1.1 * torch_predictor.info["params"]
    np.testing.assert_allclose(_probabilities(predictor), _probabilities(torch_predictor), atol=0.02)
    fp32 = load_predictor("student", str(run_dir / "student"), "onnx", threads=1)
    assert fp32.info["backend"] == "onnxruntime (model.onnx)"
    np.testing.assert_allclose(_probabilities(fp32), _probabilities(torch_predictor), atol=1e-5)


def test_auto_falls_back_to_pytorch_and_says_why(run_dir, monkeypatch):
    teacher = load_predictor("teacher", str(run_dir / "teacher"), "auto", threads=1)
    assert teacher.backend == "torch" and "no int8 ONNX export" in teacher.info["backend_choice"]["reason"]
    monkeypatch.setattr(backends, "has_onnxruntime", lambda: False)
    choice = backends.choose_backend(run_dir / "student", "auto")
    assert choice.backend == "torch" and "onnxruntime is not installed" in choice.reason
    with pytest.raises(ConfigError, match=r"--backend onnx-int8 needs ONNX Runtime — pip install"):
        backends.choose_backend(run_dir / "student", "onnx-int8")


def test_an_export_older_than_the_weights_is_not_served_by_auto(run_dir, tmp_path):
    student = shutil.copytree(run_dir / "student", tmp_path / "student")
    graph = student / "export" / "model.int8.onnx"
    os.utime(student / "model.safetensors", (graph.stat().st_mtime + 10,) * 2)  # retrained after the export
    choice = backends.choose_backend(student, "auto")
    assert choice.backend == "torch" and "older than the weights" in choice.reason
    assert "re-export" in backends.choose_backend(student, "onnx-int8").reason  # asked for: served, with a warning


def test_an_export_next_to_the_student_is_used_only_when_made_from_it(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir / "teacher", run / "teacher")
    student = shutil.copytree(run_dir / "student", run / "student", ignore=shutil.ignore_patterns("export"))
    sibling = shutil.copytree(run_dir / "student" / "export", run / "export")
    for source in (str(student), "run/student", "./run/student"):  # absolute, or as given relative to a cwd
        record = json.loads((sibling / "export.json").read_text())
        (sibling / "export.json").write_text(json.dumps({**record, "source": source}))
        choice = backends.choose_backend(student, "auto")
        assert choice.backend == "onnx-int8" and choice.graph == sibling / "model.int8.onnx", source
        assert backends.choose_backend(run / "teacher", "auto").backend == "torch"  # not the teacher's export
    with pytest.raises(
        ConfigError,
        match=r"--backend onnx: no model\.onnx in .*teacher .* `distilkit export --model .*teacher --format onnx",
    ):
        backends.choose_backend(run / "teacher", "onnx")


def test_the_graph_names_are_the_ones_export_writes():
    from distilkit.ship.onnx_graph import INT8_FILE, ONNX_FILE

    assert backends.GRAPHS == {"onnx-int8": INT8_FILE, "onnx": ONNX_FILE}


def test_an_export_folder_serves_itself(run_dir):
    folder = run_dir / "student" / "export"
    assert backends.choose_backend(folder, "auto").graph == folder / "model.int8.onnx"
    (only_fp32,) = [f for f in backends.export_folders(folder) if (f / "model.onnx").is_file()]
    assert only_fp32 == folder


@pytest.mark.parametrize(
    ("pooling", "normalize", "max_seq_length"), [(("cls",), False, 8), (("mean",), True, None)], ids=["cls", "mean"]
)
def test_served_embeddings_equal_evaluate_on_every_backend(ship_models, tmp_path, pooling, normalize, max_seq_length):
    """The int8 export inside a sentence-transformers folder is served with the folder's pooling: fp32 ONNX
    equals what `evaluate --task sts` encodes, int8 within the int8 tolerance."""
    from distilkit.embeddings import load_sentence_model
    from distilkit.models.sentence import SentenceSpec, write_sentence_files

    folder = shutil.copytree(ship_models["embedding"], tmp_path / "st")
    write_sentence_files(folder, SentenceSpec(pooling, normalize, max_seq_length), dimension=32, max_positions=64)
    _export_int8(folder, folder / "export")
    expected = load_sentence_model(folder).encode(SENTENCES)  # what evaluate --task sts scores
    served = {}
    for backend in ("torch", "onnx", "auto"):
        predictor = load_predictor("student", str(folder), backend, threads=1)
        with TestClient(create_app(ServeConfig("unused"), {"student": predictor})) as client:
            body = client.post("/predict", json={"texts": SENTENCES}).json()
            info = client.get("/info").json()["models"]["student"]
        assert info["pooling"] == list(pooling) and info["normalize"] is normalize
        served[info["backend_choice"]["chosen"]] = np.array([p["embedding"] for p in body["predictions"]])
    assert set(served) == {"torch", "onnx", "onnx-int8"}
    np.testing.assert_allclose(served["torch"], expected, atol=2e-5)
    np.testing.assert_allclose(served["onnx"], expected, atol=1e-4)
    np.testing.assert_allclose(served["onnx-int8"], expected, atol=0.05)
    cosines = (served["onnx-int8"] * expected).sum(1) / np.linalg.norm(served["onnx-int8"], axis=1)
    assert (cosines / np.linalg.norm(expected, axis=1) > 0.99).all()
    mean_pooled = load_sentence_model(ship_models["embedding"]).encode(SENTENCES)
    if pooling == ("cls",):  # int8 error is far below the gap to the wrong pooling
        assert np.abs(served["onnx-int8"] - expected).max() < 0.5 * np.abs(expected - mean_pooled).max()


def test_start_up_logs_the_choice_and_the_phases(run_dir, monkeypatch):
    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.update(app=app, **kwargs))
    notes: list[str] = []
    config = ServeConfig(str(run_dir / "student"), str(run_dir / "teacher"), port=8123, threads=1)
    serve(config, callback=lambda event: notes.append(event["message"]))
    assert notes[0] == "student: onnx-int8 — int8 ONNX export found (export/model.int8.onnx) (--backend auto)"
    assert notes[1].startswith("teacher: torch — PyTorch fp32: no int8 ONNX export")
    for phase in ("imports", "load student", "warm-up student", "load teacher", "warm-up teacher", "total"):
        assert phase in notes[2], notes[2]
    assert "http://127.0.0.1:8123" in notes[3] and "/docs" in notes[3] and served["port"] == 8123
    with TestClient(served["app"]) as client:
        info = client.get("/info").json()
    assert info["models"]["student"]["backend_choice"]["chosen"] == "onnx-int8"
    assert {"imports", "load student", "warm-up student"} <= set(info["startup"]["seconds"])
    assert info["startup"]["total"] >= sum(info["startup"]["seconds"].values()) - 1e-3


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-batch", "0"], "--max-batch must be ≥ 1, got 0"),
        (["--max-batch", "-4"], "--max-batch must be ≥ 1, got -4"),
        (["--max-wait-ms", "-1"], "--max-wait-ms must be ≥ 0 (0: never wait for company), got -1.0"),
        (["--max-wait-ms", "nan"], "--max-wait-ms must be ≥ 0"),
        (["--backend", "tensorrt"], "--backend must be one of auto, torch, onnx, onnx-int8, got 'tensorrt'"),
        (["--backend", "onnx-int8"], "--backend onnx-int8: no model.int8.onnx in"),
    ],
)
def test_cli_bad_serving_flags_are_one_line_errors(ship_models, flags, message):
    from distilkit.cli import app

    result = CliRunner().invoke(app, ["serve", "--student", str(ship_models["student"]), *flags])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert message in lines[0] and "Traceback" not in result.output
