"""Evaluate a fine-tuned head model on a task split with the task's official metric and, given a teacher,
compare the two: quality retained (student score / teacher score × 100) and speed-up on the same inputs.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from distilkit.embeddings import count_parameters
from distilkit.errors import ConfigError
from distilkit.io import atomic_dir, atomic_write_text, write_json
from distilkit.models.teacher import load_tokenizer
from distilkit.runtime import Runtime, setup_runtime
from distilkit.tasks.data import TaskData, collate, encode, encode_split, model_inputs
from distilkit.tasks.heads import load_head_model, read_task_info
from distilkit.tasks.predict import (
    NEAR_TRIVIAL_POINTS,
    headline,
    predict,
    predictions_name,
    render_predictions,
    retention_meaningful,
    score,
    trivial_baseline,
)
from distilkit.tasks.readers.own_data import OwnData, OwnDataFlags, source_problems
from distilkit.tasks.readers.splits import SELECTION, read_split, subsample
from distilkit.tasks.registry import TaskSpec, head_task, task_spec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluateConfig(OwnDataFlags):
    model: str  # fine-tuned head model (finetune / task-distill output)
    task: str  # as fine-tuned (a benchmark, classification, regression, token-classification, qa), sts, embedding-suite
    data: str | None = None  # same benchmark folder (or hf:NAME) the model was trained from
    split: str = "dev"  # dev (SQuAD: the held-out articles when trained on a dev split), test, test_with_scores
    teacher: str | None = None  # a second head model: side-by-side scores, retention and speed-up
    out: str | None = None  # folder for evaluation.json and predictions files
    max_eval_samples: int | None = None  # a seeded sample of the split (CPU budget)
    max_len: int | None = None  # tokens per feature; default: as the model was fine-tuned (distilkit_task.json)
    stride: int | None = None  # SQuAD window overlap; default: as fine-tuned, else 128
    batch_size: int = 64  # evaluation batch size
    speed_batch_size: int = 32  # speed is timed on batches of this size (a typical serving batch)
    speed_batches: int = 4  # batches timed per model and pass
    speed_repeats: int = 7  # timings per batch and model, after one warm-up pass
    speed_threads: int | None = None  # CPU threads while timing (default: torch's); 1 is steadiest on a busy host
    seed: int = 42  # seed of the --max-eval-samples sample
    tag_scheme: str | None = None  # token tags: iob1, iob2, bioes or plain; None: as the model was trained
    device: str = "auto"  # auto, cpu or cuda
    precision: str = "auto"  # auto, fp32, bf16 or fp16
    overwrite: bool = False  # replace a non-empty --out folder
    # Your own data instead of --data: OwnDataFlags (--dev or --test FILE, scored with the model's stored labels;
    # with both, --split picks), or --dataset; columns as finetune reads them.

    def __post_init__(self) -> None:
        spec, problems = head_task(self.task, self.tag_scheme)
        problems += source_problems(self, spec, [self.scored_split] if self.split != SELECTION else [])
        for name in ("max_eval_samples", "max_len", "batch_size", "speed_batch_size", "speed_batches",
                     "speed_repeats", "speed_threads"):  # fmt: skip
            if getattr(self, name) is not None and getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be ≥ 1")
        if self.stride is not None and self.stride < 0:
            problems.append("--stride must be ≥ 0")
        if self.split == "train":
            problems.append("--split train would score the training data — use dev or test")
        if self.tag_scheme is not None and spec is not None and spec.kind != "token-classification":
            problems.append(f"--tag-scheme applies to token classification, not to --task {self.task}")
        if problems:
            raise ConfigError("; ".join(problems))

    @cached_property
    def spec(self) -> TaskSpec:
        """The task record --task names (with --tag-scheme), resolved once (ConfigError listing the valid tasks, or
        schemes, when unknown)."""
        return task_spec(self.task).with_scheme(self.tag_scheme)

    @property
    def scored_split(self) -> str:
        """--split, except that own files given only as --test are scored as test."""
        return "test" if self.split == "dev" and self.test and not self.dev else self.split


@dataclass
class Evaluated:
    """One model scored on the split: its model, data and outputs (kept for the speed test and files)."""

    path: str
    model: nn.Module
    data: TaskData
    pad_id: int
    predictions: Any
    summary: dict[str, Any]


def heldout_titles(info: dict | None, split: str) -> list[str] | None:
    """SQuAD: the held-out articles a model trained on part of the dev file must be scored on."""
    squad_split = (info or {}).get("squad_split")
    return squad_split["heldout_titles"] if squad_split and split in ("dev", "validation") else None


def evaluate_one(path: str, config: EvaluateConfig, runtime: Runtime) -> Evaluated:
    started = time.monotonic()
    model, spec = load_head_model(path, config.spec)
    tokenizer = load_tokenizer(path)
    info = read_task_info(path) or {}
    max_len = config.max_len or info.get("max_len") or spec.default_max_len
    stride = config.stride if config.stride is not None else info.get("stride", 128)
    titles = heldout_titles(info, config.split)
    stride = min(stride, max_len // 2)
    own = OwnData.of(config)
    if own is not None:
        data = encode_split(spec, own, config.scored_split, tokenizer, max_len, stride, train=False,
                            sample=config.max_eval_samples, seed=config.seed, label_source="model's")  # fmt: skip
    else:
        recorded = info.get("selection")  # the split carved from train by finetune --selection-fraction
        selection = (recorded["fraction"], recorded["seed"]) if recorded else None
        examples = read_split(spec, config.data, config.split, titles, selection)
        examples = subsample(examples, config.max_eval_samples, config.seed)
        data = encode(spec, examples, tokenizer, max_len, stride, train=False)
    model.to(runtime.device)
    pad_id = tokenizer.pad_token_id or 0
    metrics, predictions = score(data, predict(model, data, runtime, pad_id, config.batch_size))
    split = config.scored_split + (f" (held-out articles: {len(titles)})" if titles else "")
    summary = {
        "path": path, "metrics": metrics, "main_score": headline(spec, metrics), "split": split,
        "examples": data.num_examples, "features": len(data), "max_len": max_len,
        "parameters": count_parameters(model), "seconds": time.monotonic() - started,
    }  # fmt: skip
    return Evaluated(path, model, data, pad_id, predictions, summary)


def _timed_batches(run: Evaluated, count: int, size: int, device: torch.device) -> list[dict[str, torch.Tensor]]:
    batches = []
    for start in range(0, count, size):
        features = collate(run.data.features, range(start, min(start + size, count)), run.pad_id)
        batch = model_inputs(features, getattr(run.model, "config", None))
        batches.append({name: value.to(device) for name, value in batch.items()})
    return batches


@torch.inference_mode()
def measure_speed(runs: list[Evaluated], config: EvaluateConfig, runtime: Runtime) -> tuple[list[float], list[float]]:
    """(fastest, median) seconds per pass over the same examples (the first speed_batches × speed_batch_size, in
    file order) for each model: per batch the minimum (and the median) of speed_repeats timings, summed over
    batches. Models take turns batch by batch, in alternating order, so a burst of load on a shared machine hits
    both alike; the minimum is the timing least disturbed by other load (timeit's advice). One warm-up pass each
    is not counted."""
    threads = torch.get_num_threads()
    if config.speed_threads:
        torch.set_num_threads(config.speed_threads)
    try:
        return _time_runs(runs, config, runtime)
    finally:
        torch.set_num_threads(threads)


def _time_runs(runs: list[Evaluated], config: EvaluateConfig, runtime: Runtime) -> tuple[list[float], list[float]]:
    count = min(config.speed_batches * config.speed_batch_size, *(len(run.data) for run in runs))
    batches = [_timed_batches(run, count, config.speed_batch_size, runtime.device) for run in runs]
    for run in runs:
        run.model.eval()

    def timed(index: int, batch: dict[str, torch.Tensor]) -> float:
        start = time.perf_counter()
        with runtime.autocast():
            runs[index].model(**batch)
        return time.perf_counter() - start

    for index in range(len(runs)):
        for batch in batches[index]:
            timed(index, batch)  # warm-up
    times = [[[] for _ in batches[0]] for _ in runs]
    for repeat in range(config.speed_repeats):
        for position in range(len(batches[0])):
            order = range(len(runs)) if (repeat + position) % 2 == 0 else reversed(range(len(runs)))
            for index in order:
                times[index][position].append(timed(index, batches[index][position]))
    fastest = [sum(min(per_batch) for per_batch in model_times) for model_times in times]
    return fastest, [sum(statistics.median(per_batch) for per_batch in model_times) for model_times in times]


def evaluate(config: EvaluateConfig, callback: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Score `config.model` (and `config.teacher`) on the split; returns {"task", "split", "model": {metrics,
    main_score, ...}} plus, with a teacher, "teacher", "retention" (%) and "speed". Writes evaluation.json and
    predictions_<split>.tsv/json (teacher_predictions_<split>... for the teacher) to `config.out` when given."""
    emit = callback or (lambda event: None)
    if config.out and Path(config.out).is_dir() and any(Path(config.out).iterdir()) and not config.overwrite:
        raise ConfigError(f"{config.out} is not empty — choose another --out or pass --overwrite")
    runtime = setup_runtime(config.device, config.precision)
    spec = config.spec
    runs = []
    for role, path in (("model", config.model), ("teacher", config.teacher)):
        if path is not None:
            runs.append(evaluate_one(path, config, runtime))
            summary = runs[-1].summary
            scores = ", ".join(f"{name} {value:.4f}" for name, value in summary["metrics"].items())
            emit({"event": "stage", "stage": "evaluate", "message": f"{role} {path} on {summary['split']}: {scores}"})
    result: dict[str, Any] = {"task": spec.name, "split": runs[0].summary["split"], "model": runs[0].summary}
    result["baseline"] = trivial_baseline(runs[0].data)
    if config.teacher is not None:
        emit({"event": "stage", "stage": "speed", "message": "timing teacher and student on the same inputs"})
        (student_seconds, teacher_seconds), (student_median, teacher_median) = measure_speed(runs, config, runtime)
        student_main, teacher_main = runs[0].summary["main_score"], runs[1].summary["main_score"]
        result["teacher"] = runs[1].summary
        result["retention"] = 100.0 * student_main / teacher_main if student_main is not None and teacher_main else None
        baseline_main = result["baseline"]["main_score"] if result["baseline"] else None
        result["retention_meaningful"] = retention_meaningful(spec, teacher_main, baseline_main)
        if not result["retention_meaningful"]:
            emit({"event": "note", "message": f"the teacher scores within {NEAR_TRIVIAL_POINTS:g} points of the "
                  "trivial baseline: its quality retained is not meaningful"})  # fmt: skip
        result["speed"] = {
            "teacher_seconds": teacher_seconds, "student_seconds": student_seconds,
            "speedup": teacher_seconds / student_seconds, "speedup_median": teacher_median / student_median,
            "examples": min(config.speed_batches * config.speed_batch_size, len(runs[0].data)),
            "batch_size": config.speed_batch_size,
            "batches": config.speed_batches, "repeats": config.speed_repeats, "device": str(runtime.device),
            "threads": config.speed_threads or torch.get_num_threads(),
        }  # fmt: skip
    result["config"] = asdict(config)
    if config.out:
        with atomic_dir(config.out, overwrite=config.overwrite) as tmp:
            write_json(tmp / "evaluation.json", result)
            for prefix, run in zip(("", "teacher_"), runs, strict=False):
                text = render_predictions(run.data, run.predictions)
                atomic_write_text(tmp / (prefix + predictions_name(run.data, config.scored_split)), text)
    return result
