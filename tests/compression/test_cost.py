"""The latency model: a straight line in depth per width, never falling, fitted from real timings of tiny models."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from distilkit.compression.cost import Shape, calibration_depths, fit_cost_model, fit_line, parameters, teacher_shape
from distilkit.models.teacher import load_config
from tasks.tiny_tasks import one_thread  # noqa: F401 (autouse fixture)
from tiny import make_tokenizer, tiny_config


def test_fit_line_is_least_squares_and_never_falls_with_depth():
    a, b = fit_line([1, 2, 4], [1.0, 2.0, 4.0])
    assert (a, b) == pytest.approx((0.0, 1.0))
    a, b = fit_line([1, 2, 4], [1.2, 1.0, 1.1])  # noise around a flat line: the constant, not a falling slope
    assert (a, b) == pytest.approx((1.1, 0.0))
    assert fit_line([3], [2.5]) == (2.5, 0.0)
    assert calibration_depths((1, 2, 3, 4, 6)) == [1, 3, 6] and calibration_depths((2,)) == [2]


def test_parameters_are_counted_without_building_weights(tiny_teacher):
    from transformers import AutoModelForSequenceClassification

    config = load_config(tiny_teacher["teacher"])
    shape = teacher_shape(config)
    assert shape == Shape(layers=4, hidden=32, heads=2, ffn=64)
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher["teacher"])
    assert parameters(config, shape) == sum(p.numel() for p in teacher.parameters())
    assert parameters(config, Shape(2, 16, 1, 64)) < parameters(config, Shape(2, 32, 2, 64))


def test_cost_model_is_fitted_from_timed_tiny_models(tmp_path):
    """An 8-layer, 64-wide teacher: 1, 4 and 8 layers are timed per width; the prediction rises with depth, and the
    deepest timed model is slower than the shallowest one (8× the layers: a gap no background load closes)."""
    from transformers import AutoModelForSequenceClassification

    teacher = tmp_path / "teacher"
    AutoModelForSequenceClassification.from_config(tiny_config(layers=8, hidden=64, heads=4)).save_pretrained(teacher)
    make_tokenizer(teacher)
    config = load_config(teacher)
    shapes = [Shape(d, w, w // 16, 128) for w in (32, 64) for d in range(1, 9) if (d, w) != (8, 64)]
    settings = SimpleNamespace(backend="torch-fp32", batch_size=1, seq_len=32, threads=1, timing_repeats=5)
    events = []
    model = fit_cost_model(str(teacher), config, shapes, settings, tmp_path / "work", events.append)
    assert sorted({(p["layers"], p["hidden"]) for p in model.points}) == [(d, w) for d in (1, 4, 8) for w in (32, 64)]
    assert all(p["measured_ms"] > 0 for p in model.points) and model.teacher_ms > 0
    for width in (32, 64):
        predictions = [model.predict(Shape(d, width, width // 16, 128)) for d in range(1, 9)]
        assert predictions == sorted(predictions)  # monotone in depth
        timed = {p["layers"]: p["measured_ms"] for p in model.points if p["hidden"] == width}
        assert timed[8] > timed[1] and model.lines[width][1] > 0
        # least squares: the fitted line passes through the mean of what was timed
        fitted = [p["predicted_ms"] for p in model.points if p["hidden"] == width]
        assert sum(fitted) == pytest.approx(sum(timed.values()))
    assert model.teacher_predicted_ms == pytest.approx(model.predict(Shape(8, 64, 4, 128)))
    assert not list((tmp_path / "work").glob("cost-*"))  # the random-weight models are removed
    assert any("timing pass 2/2" in e.get("message", "") for e in events)


@pytest.mark.slow
def test_onnx_int8_timing_exports_each_graph_once_beside_links_to_the_teacher(tiny_teacher, tmp_path):
    pytest.importorskip("onnxruntime", reason='needs the onnx extra: pip install "distilkit[onnx]"')
    from pathlib import Path

    teacher = Path(tiny_teacher["teacher"])
    before = sorted(p.name for p in teacher.iterdir())
    settings = SimpleNamespace(backend="onnx-int8", batch_size=1, seq_len=16, threads=1, timing_repeats=3)
    shapes = [Shape(1, 32, 2, 64), Shape(2, 32, 2, 64)]
    events = []
    model = fit_cost_model(str(teacher), load_config(teacher), shapes, settings, tmp_path, events.append)
    assert [p["layers"] for p in model.points] == [1, 2] and model.teacher_ms > 0
    assert model.predict(shapes[1]) >= model.predict(shapes[0])
    assert sorted(p.name for p in teacher.iterdir()) == before  # the graphs went into a view, not the teacher
