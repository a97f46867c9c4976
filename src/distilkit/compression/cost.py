"""The latency model of `compress`: time random-weight models of a few candidate shapes on this machine (bench's
timing, the chosen backend, batch size, sequence length and threads), fit latency ≈ a + b·layers per hidden width,
and predict every candidate from it — seconds of timing, no training.

A transformer encoder's cost is its embeddings and head (a) plus the same layer repeated (b per layer), so latency
is linear in depth at a fixed width; the fit is checked against a middle depth and the real teacher.
"""

from __future__ import annotations

import copy
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from distilkit.errors import ConfigError

log = logging.getLogger(__name__)

BENCH_ROUNDS = 2  # interleaved rounds per bench call (bench's own default is 3: two models here, not eight cells)
BENCH_WARMUP = 2  # untimed runs per model (allocators, kernel selection)
PEAK_SIZE = 64  # bench always times a matmul peak; the smallest it allows costs nothing


@dataclass(frozen=True, order=True)
class Shape:
    """A student shape: init-student keeps whole teacher heads and the teacher's feed-forward size."""

    layers: int
    hidden: int
    heads: int
    ffn: int

    @property
    def name(self) -> str:
        return f"{self.layers}x{self.hidden}"


@dataclass(frozen=True)
class Timing:
    p50_ms: float
    bytes: int | None  # size of what the backend runs (weights, or the ONNX graph)


def teacher_shape(teacher_config: Any) -> Shape:
    from distilkit.models.student import HEADS_ATTR
    from distilkit.models.teacher import hidden_size, num_layers

    heads = int(getattr(teacher_config, HEADS_ATTR[teacher_config.model_type]))
    ffn = getattr(teacher_config, "intermediate_size", None) or getattr(teacher_config, "hidden_dim", 0)
    return Shape(num_layers(teacher_config), hidden_size(teacher_config), heads, int(ffn))


def shape_config(teacher_config: Any, shape: Shape) -> Any:
    """The teacher's config with the shape's depth, width and heads (what init-student writes)."""
    from distilkit.models.student import HEADS_ATTR
    from distilkit.models.teacher import arch_of

    arch, config = arch_of(teacher_config), copy.deepcopy(teacher_config)
    setattr(config, arch.num_layers_attr, shape.layers)
    setattr(config, arch.hidden_attr, shape.hidden)
    setattr(config, HEADS_ATTR[config.model_type], shape.heads)
    return config


def parameters(teacher_config: Any, shape: Shape) -> int:
    """Parameters of a classifier of ``shape``, counted on the meta device (nothing allocated)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(shape_config(teacher_config, shape))
    return sum(p.numel() for p in model.parameters())


def save_random_model(teacher: str, teacher_config: Any, shape: Shape, folder: Path) -> str:
    """A random-weight classifier of ``shape`` with the teacher's tokenizer: what bench times (no training)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from distilkit.models.teacher import load_tokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(shape_config(teacher_config, shape))
    model.save_pretrained(folder)
    load_tokenizer(teacher).save_pretrained(folder)
    return str(folder)


def linked_copy(source: str | Path, target: Path) -> Path:
    """``target`` holding links to the files of model folder ``source`` (a view to add files to, copying nothing)."""
    import os

    target.mkdir(parents=True, exist_ok=True)
    for entry in Path(source).iterdir():
        if entry.is_file() and not (target / entry.name).exists():
            os.symlink(entry.resolve(), target / entry.name)
    return target


def add_graphs(folder: Path, backend: str) -> None:
    """Export the ONNX graph(s) an ONNX backend runs into ``folder``, once: bench times a folder's own graphs, so both
    timing passes time the same graph and none is exported twice (an export takes longer than its timing)."""
    from distilkit.ship.onnx_graph import INT8_FILE, ONNX_FILE

    if not backend.startswith("onnx") or (folder / ONNX_FILE).is_file():
        return
    from distilkit.models.teacher import load_tokenizer
    from distilkit.ship.kinds import input_names, load_task_model
    from distilkit.ship.onnx_graph import export_onnx, quantize_int8, require_onnx

    require_onnx()
    model = load_task_model(folder, "classification")
    export_onnx(model, "classification", input_names(model, load_tokenizer(folder)), folder / ONNX_FILE)
    if backend == "onnx-int8":
        quantize_int8(folder / ONNX_FILE, folder / INT8_FILE)


def time_models(
    paths: list[str], settings: Any, work: Path, emit: Callable[[dict], None] = lambda event: None
) -> list[Timing]:
    """p50 latency of each model folder at the settings' backend, batch size, sequence length and threads. bench times
    them two at a time (interleaved, so a burst of load hits both), in two passes with other partners and in the
    other order; a model's figure is the lower of its two p50s, so one burst of background load that spans a whole
    bench call does not stand. ConfigError when the backend cannot run here."""
    best: dict[int, Timing] = {}
    order = list(range(len(paths)))
    for passes, indices in enumerate((order, order[::-1])):
        for start in range(0, len(indices), 2):
            pair = indices[start : start + 2] if start + 1 < len(indices) else [indices[start], indices[0]]
            for index, timing in zip(pair, _time_pair([paths[i] for i in pair], settings, work), strict=True):
                if index not in best or timing.p50_ms < best[index].p50_ms:
                    best[index] = timing
        emit({"event": "note", "message": f"timing pass {passes + 1}/2: {len(paths)} models"})
    return [best[index] for index in order]


def _time_pair(pair: list[str], settings: Any, work: Path) -> list[Timing]:
    from distilkit.ship.bench import BenchConfig, bench

    config = BenchConfig(
        pair[0], pair[1], seq_len=settings.seq_len, batch_sizes=(settings.batch_size,), backends=(settings.backend,),
        threads=settings.threads, warmup=BENCH_WARMUP, repeats=settings.timing_repeats, rounds=BENCH_ROUNDS,
        peak_size=PEAK_SIZE, work_dir=str(work),
    )  # fmt: skip
    results, timings = bench(config), []
    for role in ("teacher", "student"):  # bench's names for its two models
        entry = results["models"][role]["backends"][settings.backend]
        if entry["status"] != "ok":
            raise ConfigError(f"--backend {settings.backend} cannot run here: {entry['reason']}")
        timings.append(Timing(float(entry["batches"][str(settings.batch_size)]["p50_ms"]), entry.get("bytes")))
    return timings


def calibration_depths(depths: tuple[int, ...]) -> list[int]:
    """Depths timed per width: the shallowest, the deepest and one between (a check on the straight line)."""
    low, high = min(depths), max(depths)
    return sorted({low, (low + high) // 2, high})


def fit_line(depths: list[int], latencies: list[float]) -> tuple[float, float]:
    """Least-squares (a, b) of latency ≈ a + b·layers; b ≥ 0, so predictions never fall with depth."""
    if len(set(depths)) < 2:
        return float(np.mean(latencies)), 0.0
    b, a = np.polyfit(np.asarray(depths, float), np.asarray(latencies, float), 1)
    if b < 0:  # noise on a flat line: a constant fits it best among the non-decreasing lines
        return float(np.mean(latencies)), 0.0
    return float(a), float(b)


@dataclass
class CostModel:
    """latency ≈ a + b·layers per width (ms), fitted from timed random-weight models, plus what it was fitted on."""

    settings: dict[str, Any]  # backend, batch_size, seq_len, threads
    lines: dict[int, tuple[float, float]]  # hidden width → (a, b)
    points: list[dict[str, Any]]  # every timed shape: layers, hidden, measured_ms, predicted_ms
    teacher_ms: float  # the real teacher, timed the same way
    teacher_bytes: int | None
    teacher_predicted_ms: float | None  # the line at the teacher's shape, when its width was fitted
    seconds: float

    def predict(self, shape: Shape) -> float:
        a, b = self.lines[shape.hidden]
        return a + b * shape.layers

    def record(self) -> dict[str, Any]:
        record = asdict(self)
        record["lines"] = {str(width): {"a_ms": a, "b_ms_per_layer": b} for width, (a, b) in self.lines.items()}
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> CostModel:
        lines = {int(w): (line["a_ms"], line["b_ms_per_layer"]) for w, line in record["lines"].items()}
        return cls(**{**record, "lines": lines})


def fit_cost_model(
    teacher: str, teacher_config: Any, shapes: list[Shape], settings: Any, work: Path, emit: Callable[[dict], None]
) -> CostModel:
    """Time the teacher and the calibration shapes (random weights), fit one line per width."""
    import time

    started = time.monotonic()
    widths = sorted({shape.hidden for shape in shapes})
    depths = calibration_depths(tuple(shape.layers for shape in shapes))
    by_width = {shape.hidden: shape for shape in shapes}
    timed = [Shape(d, w, by_width[w].heads, by_width[w].ffn) for w in widths for d in depths]
    emit({"event": "stage", "stage": "cost", "message": f"timing the teacher and {len(timed)} random-weight shapes "
          f"({', '.join(s.name for s in timed)}) on {settings.backend}, batch {settings.batch_size}, "
          f"{settings.seq_len} tokens"})  # fmt: skip
    work.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="cost-", dir=work))
    try:
        folders = [linked_copy(teacher, scratch / "teacher")]
        folders += [Path(save_random_model(teacher, teacher_config, shape, scratch / shape.name)) for shape in timed]
        for folder in folders:
            add_graphs(folder, settings.backend)
        paths = [str(folder) for folder in folders]
        timings = time_models(paths, settings, scratch, emit)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    lines = {}
    for width in widths:
        rows = [(s.layers, t.p50_ms) for s, t in zip(timed, timings[1:], strict=True) if s.hidden == width]
        lines[width] = fit_line([d for d, _ in rows], [ms for _, ms in rows])
    model = CostModel(
        settings={name: getattr(settings, name) for name in ("backend", "batch_size", "seq_len", "threads")},
        lines=lines, points=[], teacher_ms=timings[0].p50_ms, teacher_bytes=timings[0].bytes,
        teacher_predicted_ms=None, seconds=0.0,
    )  # fmt: skip
    model.points = [{"layers": s.layers, "hidden": s.hidden, "measured_ms": t.p50_ms, "predicted_ms": model.predict(s)}
                    for s, t in zip(timed, timings[1:], strict=True)]  # fmt: skip
    full = teacher_shape(teacher_config)
    if full.hidden in lines:
        model.teacher_predicted_ms = model.predict(full)
    model.seconds = time.monotonic() - started
    return model
