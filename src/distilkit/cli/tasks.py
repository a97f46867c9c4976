"""Commands for downstream tasks: finetune, task-distill, evaluate."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from distilkit.cli.app import app, out_console
from distilkit.cli.app import run_command as _run
from distilkit.cli.fields import config_command, field_help
from distilkit.embedding_suite import SuiteConfig
from distilkit.evaluation import EvaluateConfig
from distilkit.train.finetune import FinetuneConfig
from distilkit.train.task_distill import TaskDistillConfig


def _report(result: Any) -> None:
    scores = ", ".join(f"{name} {value:.4f}" for name, value in result.metrics.items()) or "not evaluated"
    early = " (stopped by --time-budget)" if result.stopped_early else ""
    out_console.print(f"{result.task}: {result.steps} steps{early}, {scores}; model saved to {result.out}")


# ---------------------------------------------------------------- finetune
@app.command()
@config_command(FinetuneConfig, paths=("out",))
def finetune(config: FinetuneConfig) -> None:
    """Fine-tune an encoder (teacher or student) on a GLUE task, SQuAD v1.1, CoNLL-2003 or your own labelled data."""
    from distilkit.train.finetune import finetune as run_finetune

    _report(_run(lambda bar: run_finetune(config, callback=bar)))


# ---------------------------------------------------------------- task-distill
@app.command("task-distill")
@config_command(TaskDistillConfig, paths=("out", "exclude"))
def task_distill(config: TaskDistillConfig) -> None:
    """Task-specific distillation: soft targets of a fine-tuned teacher + gold labels (+ hidden states)."""
    from distilkit.train.task_distill import task_distill as run_task_distill

    _report(_run(lambda bar: run_task_distill(config, callback=bar)))


# ---------------------------------------------------------------- evaluate
@app.command()
@config_command(EvaluateConfig, paths=("out",), build=False)  # --task sts / embedding-suite have configs of their own
def evaluate(
    flags: dict,
    text: Annotated[str | None, typer.Option(help="--task embedding-suite: " + field_help(SuiteConfig)["text"])] = None,
) -> None:
    """Score a fine-tuned model with the task's official metric; with --teacher, a side-by-side table.

    --task sts scores a sentence-embedding model zero-shot on STS-B (Spearman of cosine similarity) and, with
    --teacher, how often it finds the teacher's nearest neighbour (@1, @10).
    """
    from distilkit.evaluation import evaluate as run_evaluate
    from distilkit.tasks.registry import task_spec

    spec = _run(task_spec, flags["task"], progress=False)  # an unknown task: one line listing the valid ones
    out = Path(flags["out"]) if flags["out"] else None
    model, data, teacher, seed = flags["model"], flags["data"], flags["teacher"], flags["seed"]
    if spec.name == "embedding-suite":
        _evaluate_suite(model, data, teacher, text, out, seed)
        return
    if spec.name == "sts":
        split = "test_with_scores" if flags["split"] == "dev" else flags["split"]
        _evaluate_sts(model, data or "", split, teacher, out, flags["max_len"], seed)
        return

    out_console.print(evaluation_table(_run(lambda bar: run_evaluate(EvaluateConfig(**flags), callback=bar))))
    if out:
        out_console.print(f"evaluation and predictions written to {out}")


def _evaluate_suite(
    model: str, data: str | None, teacher: str | None, text: str | None, out: Path | None, seed: int
) -> None:
    from distilkit.embedding_suite import evaluate_suite, suite_table
    from distilkit.io import write_json

    root = data or str(Path(os.environ.get("DISTILKIT_SHARED_DATA", "../shared/data")) / "glue")
    config = dict(model=model, data=root, teacher=teacher, text=text, seed=seed)
    result = _run(lambda bar: evaluate_suite(SuiteConfig(**config), callback=bar))  # config errors: one line
    columns, rows = suite_table(result)
    table = Table(title=f"embedding suite ({root})")
    for column in columns:
        table.add_column(column, justify="left" if column == "task" else "right")
    for row in rows:
        table.add_row(*row)
    out_console.print(table)
    for name, why in result["skipped"].items():
        out_console.print(f"skipped {name}: {why}")
    if out:
        write_json(out / "evaluation.json", result)
        out_console.print(f"evaluation written to {out / 'evaluation.json'}")


def _evaluate_sts(
    model: str, data: str, split: str, teacher: str | None, out: Path | None, max_len: int | None, seed: int
) -> None:
    from distilkit.embeddings import StsConfig, evaluate_sts, sts_table
    from distilkit.io import write_json

    config = StsConfig(model=model, data=data, split=split, teacher=teacher, max_len=max_len, seed=seed)
    result = _run(lambda: evaluate_sts(config), progress=False)
    columns, rows = sts_table(result)
    table = Table(title="zero-shot STS-B")
    for column in columns:
        table.add_column(column, justify="right" if column else "left")
    for row in rows:
        table.add_row(*row)
    out_console.print(table)
    if out:
        write_json(out / "evaluation.json", result)
        out_console.print(f"evaluation written to {out / 'evaluation.json'}")


def evaluation_table(result: dict) -> Table:
    """Metrics per model; with a teacher also retention (%) and speed-up."""
    columns = [("student" if "teacher" in result else "model", result["model"])]  # one model: not a "student"
    if "teacher" in result:
        columns.insert(0, ("teacher", result["teacher"]))
    table = Table(title=f"{result['task']} — {result['split']}, {result['model']['examples']} examples")
    table.add_column("")
    for name, summary in columns:
        table.add_column(f"{name}\n{summary['path']}", justify="right")
    baseline = result.get("baseline")
    if baseline:  # the reference point beside every score (#15)
        table.add_column(f"trivial baseline\n{baseline['predictor']}", justify="right")
    for metric in result["model"]["metrics"]:
        cells = [f"{summary['metrics'][metric]:.4f}" for _, summary in columns]
        cells += [f"{baseline['metrics'].get(metric, float('nan')):.4f}"] if baseline else []
        table.add_row(metric, *cells)
    if "teacher" in result:
        extra = [""] if baseline else []
        table.add_row("parameters", *(f"{summary['parameters'] / 1e6:.1f} M" for _, summary in columns), *extra)
        retention = result["retention"]
        shown = f"{retention:.1f}%" if retention is not None else "n/a"
        if not result.get("retention_meaningful", True):
            shown += " (teacher near trivial: not meaningful)"
        table.add_row("quality retained", "100.0%", shown, *extra)
        table.add_row("speed-up", "1.00×", f"{result['speed']['speedup']:.2f}×", *extra)
    return table
