"""Benchmark and run results as rows for the report card and the model card: a result file read defensively,
every figure in a record, a headline score from any of the result shapes distilkit writes, quality retained per
task (with the spread over seeds and why a retention means little), and the students of a size sweep."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SKIPPED_KEYS = ("config", "samples", "versions", "files", "inputs", "machine")  # not figures


def read_result(path: Path) -> Any:
    """A JSON result file's content, or None (with a warning when it exists but is not readable JSON)."""
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        log.warning("skipping %s: not readable JSON", path)
        return None


def flatten(value: Any, prefix: str = "") -> list[tuple[str, float]]:
    """Every number in a nested record as (dotted.path, value), leaving out configs, raw samples and versions."""
    if isinstance(value, dict):
        pairs = [(f"{prefix}.{k}" if prefix else str(k), v) for k, v in value.items() if k not in SKIPPED_KEYS]
        return [item for key, inner in pairs for item in flatten(inner, key)]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [(prefix, value)]
    return []


def figure_text(value: Any) -> str:
    """A figure as a table shows it: 4 significant digits (whole numbers from 100,000), nothing for None."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def score_of(value: Any) -> float | None:
    """A headline number from a number or a metrics dict ({"score"|"main_score"|"main"|…: x} or a sole metric)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dict):
        for key in ("score", "main_score", "main", "accuracy", "f1"):
            if isinstance(value.get(key), int | float):
                return float(value[key])
        numbers = [v for v in value.values() if isinstance(v, int | float) and not isinstance(v, bool)]
        return float(numbers[0]) if len(numbers) == 1 else None
    return None


def task_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """[{task, teacher, student, retained}] from a tasks.json: {"tasks": {name: {...}}}, {name: {...}} or a list."""
    tasks = data.get("tasks", data)
    pairs = (
        tasks.items() if isinstance(tasks, dict) else [(t.get("task", "?"), t) for t in tasks if isinstance(t, dict)]
    )
    rows = []
    for name, entry in pairs:
        if not isinstance(entry, dict):
            continue
        teacher = score_of(entry.get("teacher"))
        student = next((score_of(entry[k]) for k in ("student", "student_kd", "student_ft") if k in entry), None)
        retained = next((score_of(entry[k]) for k in ("retention", "retained", "retention_kd") if k in entry), None)
        if retained is not None and retained > 2:  # given in percent
            retained /= 100
        if retained is None and teacher and student is not None:
            retained = student / teacher
        if (teacher, student, retained) != (None, None, None):
            spread, note = seed_spread(entry, teacher), retention_note(entry, retained)
            rows.append({"task": str(name), "teacher": teacher, "student": student, "retained": retained,
                         "retained_sd": spread, "note": note})  # fmt: skip
    return rows


def seed_spread(entry: dict[str, Any], teacher: float | None) -> float | None:
    """The sd over seeds of the student's score, as a fraction of the teacher's (None for one seed)."""
    student = next((entry[k] for k in ("student_kd", "student") if isinstance(entry.get(k), dict)), {})
    sd = student.get("sd")
    return sd / teacher if isinstance(sd, int | float) and teacher and len(student.get("seeds", [])) > 1 else None


def retention_note(entry: dict[str, Any], retained: float | None) -> str:
    """Why a row's retention means little: a teacher near the trivial baseline, or a student far above it."""
    if entry.get("retention_meaningful") is False:
        return "not meaningful: teacher near the trivial baseline"
    if retained is not None and retained > 1.1:
        return "not meaningful: the student is far above its teacher (an undertrained teacher?)"
    return ""


def student_points(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Students of a size sweep (benchmarks/embedding_students.py) that have a score after distillation:
    [{name, speedup, before, after}]. Scores: the record's ``metric_key`` (e.g. "stsb_spearman"), else score_of."""
    points = []
    for student in record.get("students") or []:
        after = student.get("after") or {}
        score = headline(record, after)
        if isinstance(after.get("speedup"), int | float) and score is not None:
            points.append({"name": str(student.get("name", "?")), "speedup": float(after["speedup"]),
                           "before": headline(record, student.get("before") or {}), "after": score})  # fmt: skip
    return points


def headline(record: dict[str, Any], scores: Any) -> float | None:
    """The score a sweep record plots: ``scores[record["metric_key"]]`` when the record names a key."""
    key = record.get("metric_key")
    return score_of(scores.get(key) if key and isinstance(scores, dict) else scores)
