"""The candidates of `compress` and the search among them: every shape init-student can build from the teacher,
the predicted front of those that meet the target, and successive halving (Jamieson & Talwalkar 2016; Li et al.
2018, Hyperband) over it — all candidates trained briefly, the best 1/η trained longer, until one is left.

Each round gives every candidate the same number of optimizer steps on the same batches (one seed), so their
selection scores compare like for like; the steps come from the time budget. A candidate's round is done once its
marker file is written (atomically): a killed search rerun with the same --out starts from the finished ones.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from distilkit.compression.config import CompressConfig, parse_sizes
from distilkit.compression.cost import Shape
from distilkit.errors import ConfigError
from distilkit.io import read_json, write_json


def candidate_shapes(teacher: Shape, depths: str | None, widths: str | None) -> list[Shape]:
    """Every (layers, width) student smaller than the teacher: whole heads of the teacher's head size, its FFN."""
    head_size = teacher.hidden // teacher.heads
    layer_counts = parse_sizes(depths, "--depths") or tuple(range(1, teacher.layers + 1))
    if max(layer_counts) > teacher.layers:
        raise ConfigError(f"--depths: the teacher has {teacher.layers} layers, got {max(layer_counts)}")
    default = {max(1, round(teacher.heads * share)) * head_size for share in (0.25, 0.5, 0.75, 1.0)}
    hidden_sizes = parse_sizes(widths, "--widths") or tuple(sorted(default))
    bad = [w for w in hidden_sizes if w % head_size or w > teacher.hidden]
    if bad:
        raise ConfigError(f"--widths {bad} do not fit: init-student keeps whole teacher heads, so widths are "
                          f"multiples of the head size {head_size} up to {teacher.hidden}")  # fmt: skip
    shapes = [Shape(d, w, w // head_size, teacher.ffn) for w in hidden_sizes for d in layer_counts]
    shapes = [shape for shape in shapes if (shape.layers, shape.hidden) != (teacher.layers, teacher.hidden)]
    if not shapes:
        size = f"{teacher.layers} layer(s), {teacher.heads} head(s)"
        raise ConfigError(f"nothing to search: the teacher ({size}) is already the smallest student init-student "
                          "builds from it with these --depths/--widths")  # fmt: skip
    return shapes


def predicted_front(candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The feasible candidates no other one beats on both predicted latency and size (parameters), fastest first."""
    front, largest = [], -1
    for candidate in sorted(candidates, key=lambda c: (c["predicted_ms"], -c["params"])):
        if candidate["params"] > largest:
            front.append(candidate)
            largest = candidate["params"]
    return front


def pick(front: list[dict[str, Any]], count: int, retention_target: bool) -> list[dict[str, Any]]:
    """Which front shapes are trained: under a latency limit the largest (the best quality under a limit lies near
    it); for a retention target shapes spread over the whole front (the fastest that keeps R% may be anywhere)."""
    if len(front) <= count:
        return list(front)
    if not retention_target:
        return front[-count:]
    return [front[int(i)] for i in sorted(set(np.round(np.linspace(0, len(front) - 1, count)).astype(int)))]


def round_sizes(candidates: int, eta: int) -> list[int]:
    """Candidates trained per round: n, ⌈n/η⌉, … while more than one is left (one round at least)."""
    sizes = [candidates]
    while sizes[-1] > 1:
        sizes.append(math.ceil(sizes[-1] / eta))
    return sizes[:-1] or sizes


def ranked(results: list[dict[str, Any]], min_retention: float | None) -> list[dict[str, Any]]:
    """Candidates best first. Latency targets: by selection score. A retention target: the fastest that keeps it,
    then the faster ones that do not keep it yet, best score first (more steps may get them there), then the rest."""
    if min_retention is None:
        return sorted(results, key=lambda r: (-r["score"], r["predicted_ms"]))
    passing = sorted((r for r in results if r["retention"] >= min_retention), key=lambda r: r["predicted_ms"])
    fastest = passing[0]["predicted_ms"] if passing else math.inf
    faster = sorted((r for r in results if r not in passing and r["predicted_ms"] < fastest), key=lambda r: -r["score"])
    rest = sorted((r for r in results if r not in passing and r not in faster), key=lambda r: -r["score"])
    return passing[:1] + faster + passing[1:] + rest


@dataclass
class Search:
    """The successive-halving rounds of one compress run: where candidates live and how they are trained."""

    config: CompressConfig
    work: Path  # OUT/work
    selection: tuple[float, int]
    teacher_score: float  # the teacher's selection score (retention's denominator)
    emit: Callable[[dict], None]

    def folder(self, name: str) -> Path:
        return self.work / "candidates" / name

    def train(self, candidate: dict[str, Any], round_index: int, **settings: Any) -> dict[str, Any]:
        """One candidate's run of one round (or its marker, when a previous process finished it)."""
        from distilkit.train.task_distill import task_distill

        marker = self.folder(candidate["name"]) / f"round-{round_index}.json"
        if marker.is_file():
            return read_json(marker)
        out = self.folder(candidate["name"]) / f"round-{round_index}"
        config = self.config.task_distill_config(str(self.folder(candidate["name"]) / "init"), str(out),
                                                 selection=self.selection, overwrite=True, **settings)  # fmt: skip
        result = task_distill(config, callback=self.emit)
        score = float(result.main_score)
        record = {"name": candidate["name"], "round": round_index, "steps": result.steps, "score": score,
                  "retention": 100.0 * score / self.teacher_score if self.teacher_score else math.nan,
                  "seconds": result.seconds, "pace": result.seconds / max(result.steps, 1),
                  "train_features": result.train_features, "predicted_ms": candidate["predicted_ms"]}  # fmt: skip
        write_json(marker, record)
        self.emit({"event": "stage", "stage": f"round {round_index}",
                   "message": f"{candidate['name']}: selection score {score:.4f} ({record['retention']:.1f}% of the "
                   f"teacher) after {result.steps} steps"})  # fmt: skip
        return record

    def round_steps(self, round_index: int, survivors: list[dict[str, Any]], budget: float,
                    previous: list[dict[str, Any]]) -> int | None:  # fmt: skip
        """Steps of every run in a round ≥ 1 (None for round 0: its first run's time allowance decides them),
        fixed once in rounds/round-r.json so a resumed round trains its remaining candidates alike."""
        path = self.work / "rounds" / f"round-{round_index}.json"
        if path.is_file():
            return read_json(path)["steps"]
        if round_index == 0:
            return None
        paces = {r["name"]: r["pace"] for r in previous}
        last = previous[0]["steps"]
        per_epoch = math.ceil(previous[0]["train_features"] / self.config.train_batch_size)
        cap = max(last, math.ceil(per_epoch * self.config.epochs))
        steps = int(budget / max(sum(paces[c["name"]] for c in survivors), 1e-9))
        steps = min(max(steps, last), cap)  # never shorter than the round before: "longer for the best"
        write_json(path, {"steps": steps, "candidates": [c["name"] for c in survivors]})
        return steps

    def run(self, chosen: list[dict[str, Any]], search_end: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Successive halving over ``chosen``; returns (the winner's last record, every round's records)."""
        sizes = round_sizes(len(chosen), self.config.eta)
        survivors, records, previous = list(chosen), [], []
        for index, size in enumerate(sizes):
            survivors = survivors[:size]
            budget = max(search_end - time.monotonic(), 0.0) / (len(sizes) - index)
            steps = self.round_steps(index, survivors, budget, previous)
            results = []
            for candidate in survivors:
                if steps is None:  # round 0's first run (the largest): its time allowance sets the round's steps
                    result = self.train(candidate, index, time_budget=max(budget / size, 1.0))
                    steps = result["steps"]
                    write_json(self.work / "rounds" / "round-0.json",
                               {"steps": steps, "candidates": [c["name"] for c in survivors]})  # fmt: skip
                else:
                    result = self.train(candidate, index, max_steps=steps)
                results.append(result)
            if index == 0:
                self.measure(survivors)
            for candidate in survivors:
                shutil.rmtree(self.folder(candidate["name"]) / f"round-{index}", ignore_errors=True)
            records += results
            order = ranked(results, self.config.min_retention)
            names = [r["name"] for r in order]
            survivors = sorted(survivors, key=lambda c: names.index(c["name"]))
            previous = results
        return ranked(previous, self.config.min_retention)[0], records

    def measure(self, candidates: list[dict[str, Any]]) -> None:
        """Time each trained round-0 model as its latency is predicted (bench, two at a time): latency.json."""
        from distilkit.compression.cost import add_graphs, time_models

        todo = [c for c in candidates if not (self.folder(c["name"]) / "latency.json").is_file()]
        if not todo:
            return
        self.emit({"event": "stage", "stage": "measure", "message": f"timing {len(todo)} trained candidates"})
        paths = [str(self.folder(c["name"]) / "round-0") for c in todo]
        for path in paths:
            add_graphs(Path(path), self.config.backend)
        for candidate, timing in zip(todo, time_models(paths, self.config, self.work, self.emit), strict=True):
            write_json(self.folder(candidate["name"]) / "latency.json",
                       {"measured_ms": timing.p50_ms, "bytes": timing.bytes})  # fmt: skip
