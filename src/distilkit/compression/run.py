"""`distilkit compress`, top to bottom: check the flags and the teacher, time the teacher and fit the latency model,
keep the candidates predicted to meet the target, search them by successive halving on the selection split, then
ship the winner — full task distillation, export, latency re-measured, the dev score once — with front.json and
report.html. Every stage leaves a file in OUT/work, so a killed run rerun with the same --out goes on from there.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from distilkit.compression.config import (
    DEFAULT_SELECTION_FRACTION,
    EMBEDDING_TASK,
    CompressConfig,
    latency_limit,
    start_or_resume,
)
from distilkit.compression.cost import CostModel, fit_cost_model, linked_copy, parameters, teacher_shape
from distilkit.compression.search import Search, candidate_shapes, pick, predicted_front
from distilkit.errors import ConfigError
from distilkit.io import atomic_dir, read_json, write_json


@dataclass
class CompressResult:
    out: Path
    chosen: str  # the winner's shape, e.g. "3x384"
    target_met: bool
    predicted_ms: float
    measured_ms: float
    teacher_ms: float
    dev_score: float | None
    teacher_dev_score: float | None
    front: Path
    report: Path


def compress(config: CompressConfig, callback: Callable[[dict], None] | None = None) -> CompressResult:
    """Find and ship the student of ``config.teacher`` that meets the target best (see the module docstring)."""
    from distilkit.models.teacher import load_config
    from distilkit.ship.kinds import model_kind

    emit = callback or (lambda event: None)
    if config.task == EMBEDDING_TASK:
        return finish(config, static_front(config, emit))
    deadline = time.monotonic() + config.time_budget
    out = Path(config.out)
    work = out / "work"
    teacher_config = load_config(config.teacher)
    kind = model_kind(config.teacher)
    if kind != "classification":
        hint = " — pass --task embedding for its static tier" if kind == "embedding" else ""
        raise ConfigError(f"compress handles sequence classifiers (a finetune output) and, with --task embedding, "
                          f"sentence-embedding models; {config.teacher} is a {kind} model{hint}")  # fmt: skip
    teacher = teacher_shape(teacher_config)
    shapes = candidate_shapes(teacher, config.depths, config.widths)
    selection, teacher_saw_selection = resolve_selection(config)
    start_or_resume(config, out, selection)
    teacher_score = teacher_selection_score(config, selection, work, emit)  # reads the data: its errors come first

    cost = cost_model(config, teacher_config, shapes, work, emit)
    limit = latency_limit(config, cost.teacher_ms)
    candidates = [{"name": s.name, **asdict(s), "params": parameters(teacher_config, s),
                   "predicted_ms": cost.predict(s)} for s in shapes]  # fmt: skip
    feasible = [c for c in candidates if limit is None or c["predicted_ms"] <= limit]
    if not feasible:
        fastest = min(candidates, key=lambda c: c["predicted_ms"])
        raise ConfigError(
            f"no candidate can meet {target_text(config)}: the fastest, {fastest['layers']} layer(s) × "
            f"{fastest['hidden']} wide, is predicted at {fastest['predicted_ms']:.2f} ms on {config.backend} "
            f"(batch {config.batch_size}, {config.seq_len} tokens, teacher {cost.teacher_ms:.2f} ms) — relax the target"
        )
    chosen = pick(predicted_front(feasible), config.max_candidates, config.min_retention is not None)
    chosen = sorted(chosen, key=lambda c: -c["predicted_ms"])  # the slowest first: its time allowance sets round 0
    emit({"event": "stage", "stage": "plan", "message": f"{len(feasible)} of {len(candidates)} shapes predicted to "
          f"meet {target_text(config)}; searching {', '.join(c['name'] for c in chosen)}"})  # fmt: skip
    for candidate in chosen:
        init_candidate(config, candidate, teacher.hidden, work / "candidates" / candidate["name"] / "init", emit)

    search = Search(config, work, selection, teacher_score, emit)
    search_end = time.monotonic() + config.search_fraction * max(deadline - time.monotonic(), 0.0)
    winner, records = search.run(chosen, search_end)
    shipped = ship(config, search, winner, selection, deadline, emit)

    front = front_record(config, teacher, cost, candidates, feasible, chosen, records, search, winner, shipped)
    front["teacher"].update(selection_score=teacher_score, saw_selection_examples=teacher_saw_selection,
                            params=parameters(teacher_config, teacher))  # fmt: skip
    return finish(config, front)


def static_front(config: CompressConfig, emit) -> dict[str, Any]:
    from distilkit.compression.static import compress_static

    return compress_static(config, emit)


def finish(config: CompressConfig, front: dict[str, Any]) -> CompressResult:
    """front.json and report.html in OUT, and the result."""
    from distilkit.compression.report import write_report

    out = Path(config.out)
    write_json(out / "front.json", front)
    report = write_report(front, out / "report.html")
    final = front["final"]
    return CompressResult(out, front["chosen"], final["target_met"], final["predicted_ms"], final["measured_ms"],
                          final["teacher_ms"], final["dev_score"], final["teacher_dev_score"], out / "front.json",
                          report)  # fmt: skip


def target_text(config: CompressConfig) -> str:
    name, value = config.target
    return f"--{name.replace('_', '-')} {value:g}"


def resolve_selection(config: CompressConfig) -> tuple[tuple[float, int], bool]:
    """((fraction, seed) of the selection split, whether the teacher trained on its examples): the teacher's own
    split by default (finetune --selection-fraction records it), so the teacher never saw what the search scores."""
    path = Path(config.teacher) / "distilkit_task.json"
    recorded = (read_json(path).get("selection") if path.is_file() else None) or {}
    fraction = config.selection_fraction or recorded.get("fraction") or DEFAULT_SELECTION_FRACTION
    seed = config.selection_seed if config.selection_seed is not None else recorded.get("seed", 0)
    return (float(fraction), int(seed)), (recorded.get("fraction"), recorded.get("seed")) != (fraction, seed)


def cost_model(config: CompressConfig, teacher_config: Any, shapes: list, work: Path, emit) -> CostModel:
    path = work / "cost.json"
    if path.is_file():
        return CostModel.from_record(read_json(path))
    model = fit_cost_model(str(Path(config.teacher)), teacher_config, shapes, config, work, emit)
    write_json(path, model.record())
    return model


def init_candidate(config: CompressConfig, candidate: dict[str, Any], teacher_width: int, folder: Path, emit) -> None:
    """The candidate's student from the teacher's layers (and its strongest dims and heads, when narrower)."""
    from distilkit import InitStudentConfig, init_student

    if folder.is_dir():  # init-student writes its folder atomically: present means complete
        return
    width = candidate["hidden"] if candidate["hidden"] < teacher_width else None
    result = init_student(InitStudentConfig(
        teacher=config.teacher, out=str(folder), num_layers=candidate["layers"], hidden_size=width,
        layers="auto" if config.layers == "probe" else None, probe_text=config.probe_text,
        probe_samples=256, probe_max_len=config.max_len or 128,  # 256 lines: seconds per candidate, ample for energy
    ))  # fmt: skip
    message = f"{candidate['name']}: teacher layers {result.layers}, width {result.hidden_size}"
    emit({"event": "note", "message": message})


def teacher_selection_score(config: CompressConfig, selection: tuple[float, int], work: Path, emit) -> float:
    """The teacher's score on the selection split: the denominator of every candidate's retention. The teacher is
    scored through a view of its folder (links to its files) whose distilkit_task.json records the split."""
    from distilkit.evaluation import EvaluateConfig, evaluate  # not `from distilkit`: the module shadows the function

    path = work / "teacher.json"
    if path.is_file():
        return read_json(path)["selection_score"]
    emit({"event": "stage", "stage": "teacher", "message": "scoring the teacher on the selection split"})
    view = work / "teacher-selection"
    info_path = Path(config.teacher) / "distilkit_task.json"
    info = read_json(info_path) if info_path.is_file() else {"task": config.task}
    with atomic_dir(view, overwrite=True) as tmp:
        linked_copy(config.teacher, tmp)
        (tmp / "distilkit_task.json").unlink(missing_ok=True)  # a link: replaced, never written through
        write_json(tmp / "distilkit_task.json", {**info, "selection": {"fraction": selection[0], "seed": selection[1]}})
    result = evaluate(EvaluateConfig(model=str(view), task=config.task, data=config.data, split="selection",
                                     max_len=config.max_len))  # fmt: skip
    score = float(result["model"]["main_score"])
    write_json(path, {"selection_score": score, "metrics": result["model"]["metrics"], "selection": list(selection)})
    shutil.rmtree(view, ignore_errors=True)
    return score


def ship(config: CompressConfig, search: Search, winner: dict[str, Any], selection: tuple[float, int],
         deadline: float, emit) -> dict[str, Any]:  # fmt: skip
    """The winner's full task distillation, dev score (once), exports and re-measured latency: work/shipped.json."""
    from distilkit import BenchConfig, bench, task_distill
    from distilkit.evaluation import EvaluateConfig, evaluate

    work, out = search.work, Path(config.out)
    done = work / "shipped.json"
    if done.is_file():
        return read_json(done)
    final = work / "final"
    trained = work / "final.json"
    if not trained.is_file():
        allowance = max(0.9 * (deadline - time.monotonic()), 0.1 * config.time_budget)  # 10% for export and timing
        emit({"event": "stage", "stage": "final", "message": f"task-distilling {winner['name']} for up to "
              f"{config.epochs:g} epochs or {allowance:.0f} s"})  # fmt: skip
        init = str(search.folder(winner["name"]) / "init")
        settings = {"eval_split": "none", "time_budget": allowance, "overwrite": True}
        result = task_distill(config.task_distill_config(init, str(final), selection=selection, **settings), emit)
        write_json(trained, {"steps": result.steps, "seconds": result.seconds, "stopped_early": result.stopped_early})
    emit({"event": "stage", "stage": "evaluate", "message": "scoring the winner and the teacher on dev (once)"})
    evaluation = evaluate(EvaluateConfig(model=str(final), task=config.task, data=config.data, split="dev",
                                         teacher=config.teacher, max_len=config.max_len, speed_batches=1,
                                         speed_repeats=1))  # fmt: skip
    exports = export_winner(config, final, out, emit)
    emit({"event": "stage", "stage": "bench", "message": f"re-measuring the winner's latency on {config.backend}"})
    timed = bench(BenchConfig(
        config.teacher, str(out / "model"), seq_len=config.seq_len, batch_sizes=(config.batch_size,),
        backends=(config.backend,), threads=config.threads, repeats=config.timing_repeats, peak_size=64,
        out=str(work / "bench.json"), work_dir=str(work),
    ))  # fmt: skip
    measured = {role: timed["models"][role]["backends"][config.backend] for role in ("teacher", "student")}
    p50 = {role: entry["batches"][str(config.batch_size)]["p50_ms"] for role, entry in measured.items()}
    shipped = {
        "name": winner["name"], "training": read_json(trained), "dev_score": evaluation["model"]["main_score"],
        "dev_metrics": evaluation["model"]["metrics"], "teacher_dev_score": evaluation["teacher"]["main_score"],
        "dev_retention": evaluation["retention"], "measured_ms": p50["student"], "teacher_ms": p50["teacher"],
        "bytes": measured["student"].get("bytes"), "exports": exports,
    }  # fmt: skip
    write_json(done, shipped)
    shutil.rmtree(final, ignore_errors=True)  # OUT/model holds it now
    return shipped


def export_winner(config: CompressConfig, final: Path, out: Path, emit) -> dict[str, Any]:
    """OUT/model (transformers, with a model card) and, for an ONNX backend, OUT/onnx or OUT/int8 (the accuracy guard
    on the dev set where the task is a GLUE one). An int8 export the guard refuses keeps its fp32 graph."""
    from distilkit import AccuracyGuardError, ExportConfig, export

    exports: dict[str, Any] = {}
    export(ExportConfig(str(final), "hf", str(out / "model"), teacher=config.teacher, overwrite=True))
    exports["hf"] = str(out / "model")
    if config.backend.startswith("onnx"):
        form = "int8" if config.backend == "onnx-int8" else "onnx"
        settings = {"teacher": config.teacher, "max_drop": config.max_drop, "overwrite": True}
        try:
            guarded = ExportConfig(str(final), form, str(out / form), eval_task=config.task, data_dir=config.data,
                                   **settings) if form == "int8" else None  # fmt: skip
        except ConfigError:  # not a GLUE classification task: no guard
            guarded = None
        try:
            result = export(guarded or ExportConfig(str(final), form, str(out / form), **settings))
            exports[form] = {"out": str(out / form), "guard": result.guard}
        except AccuracyGuardError as error:
            emit({"event": "note", "message": str(error)})
            exports[form] = {"out": str(out / form), "refused": str(error)}
    return exports


def front_record(config, teacher, cost, candidates, feasible, chosen, records, search, winner, shipped) -> dict:
    """front.json: the target, the teacher, the cost model, every candidate and what became of it, the shipped one."""
    limit = latency_limit(config, cost.teacher_ms)
    chosen_names, feasible_names = {c["name"] for c in chosen}, {c["name"] for c in feasible}
    rows = []
    for candidate in sorted(candidates, key=lambda c: c["predicted_ms"]):
        name, folder = candidate["name"], search.folder(candidate["name"])
        rounds = [r for r in records if r["name"] == name]
        latency = read_json(folder / "latency.json") if (folder / "latency.json").is_file() else {}
        status = ("chosen" if name == winner["name"] else "trained" if rounds else
                  "not trained: off the front or beyond --max-candidates" if name in feasible_names
                  else "never trained: predicted over the target")  # fmt: skip
        last = rounds[-1] if rounds else {}
        rows.append({**candidate, "measured_ms": latency.get("measured_ms"), "bytes": latency.get("bytes"),
                     "selection_score": last.get("score"), "retention": last.get("retention"),
                     "steps": last.get("steps"), "rounds": [{k: r[k] for k in ("round", "steps", "score")}
                                                           for r in rounds], "status": status})  # fmt: skip
    measured, predicted = shipped["measured_ms"], winner["predicted_ms"]
    met = (measured <= limit) if limit is not None else winner["retention"] >= config.min_retention
    final = {**shipped, "predicted_ms": predicted, "prediction_error_pct": 100.0 * (predicted - measured) / measured,
             "selection_score": winner["score"], "selection_retention": winner["retention"], "target_met": bool(met),
             "latency_limit_ms": limit}  # fmt: skip
    name, value = config.target
    return {
        "target": {"name": name, "value": value, "latency_limit_ms": limit, "backend": config.backend,
                   "batch_size": config.batch_size, "seq_len": config.seq_len, "threads": config.threads},
        "teacher": {"layers": teacher.layers, "hidden": teacher.hidden, "heads": teacher.heads, "ffn": teacher.ffn,
                    "measured_ms": cost.teacher_ms, "bytes": cost.teacher_bytes, "path": config.teacher,
                    "dev_score": shipped["teacher_dev_score"]},
        "cost_model": cost.record(), "candidates": rows, "chosen": winner["name"], "final": final,
        "searched": sorted(chosen_names), "selection_split": "carved from train; dev is scored once, at the end",
        "time_budget": config.time_budget, "mean_abs_prediction_error_pct": mean_error(rows),
    }  # fmt: skip


def mean_error(rows: list[dict[str, Any]]) -> float | None:
    """Mean |predicted − measured| / measured over the candidates that were timed, in %."""
    errors = [abs(r["predicted_ms"] - r["measured_ms"]) / r["measured_ms"] for r in rows if r["measured_ms"]]
    return 100.0 * sum(errors) / len(errors) if errors else None
