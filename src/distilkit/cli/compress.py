"""The compress command: flags → CompressConfig → distilkit.compression.run.compress."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from distilkit.cli.app import TrainProgress, app, out_console
from distilkit.cli.app import run_command as _run
from distilkit.cli.tasks import EXCLUDE_HELP, UNLABELED_HELP


@app.command()
def compress(
    teacher: Annotated[str, typer.Option(help="Fine-tuned sequence classifier to compress (finetune output).")],
    task: Annotated[str, typer.Option(help="Its task: a GLUE name (sst2, mrpc, ...).")],
    data: Annotated[str, typer.Option(help="The task's benchmark folder, e.g. ../shared/data/glue/SST-2.")],
    out: Annotated[Path, typer.Option(help="Deployable model, front.json, report.html; rerun to resume.")],
    max_latency_ms: Annotated[
        float | None, typer.Option(help="Target: p50 latency at --batch-size, --seq-len, --backend, --threads.")
    ] = None,
    min_speedup: Annotated[float | None, typer.Option(help="Target: × the teacher on the same backend.")] = None,
    min_retention: Annotated[
        float | None, typer.Option(help="Target: the fastest student keeping this % of the teacher's score.")
    ] = None,
    backend: Annotated[str, typer.Option(help="torch-fp32, torch-bf16, onnx-fp32 or onnx-int8.")] = "onnx-int8",
    batch_size: Annotated[int, typer.Option(help="Sequences per request when timing.")] = 1,
    seq_len: Annotated[int, typer.Option(help="Tokens per sequence when timing.")] = 128,
    threads: Annotated[int, typer.Option(help="Threads when timing (0 = every core).")] = 0,
    timing_repeats: Annotated[int, typer.Option(help="Timed runs per model and round.")] = 10,
    time_budget: Annotated[float, typer.Option(help="Seconds for the whole command (a rerun gets a fresh one).")] = (
        3600.0
    ),
    search_fraction: Annotated[
        float, typer.Option(help="Share of the time for the search rounds; the rest trains the winner.")
    ] = 0.5,
    eta: Annotated[int, typer.Option(help="Successive halving keeps the best 1/eta each round.")] = 2,
    max_candidates: Annotated[int, typer.Option(help="Shapes of the predicted front trained at all.")] = 8,
    depths: Annotated[str | None, typer.Option(help="Layer counts to consider, e.g. 2,3,4,6 (default: all).")] = None,
    widths: Annotated[
        str | None, typer.Option(help="Hidden sizes (whole teacher heads), e.g. 192,384 (default: ¼ ½ ¾ 1).")
    ] = None,
    layers: Annotated[str, typer.Option(help="Teacher layers kept: spread (evenly) or probe.")] = "spread",
    probe_text: Annotated[
        str | None, typer.Option(help="Text for narrowing and --layers probe (default: the demo corpus).")
    ] = None,
    selection_fraction: Annotated[
        float | None, typer.Option(help="Train share held out to choose on (default: the teacher's, else 0.1).")
    ] = None,
    selection_seed: Annotated[int | None, typer.Option(help="Seed of that split (default: the teacher's).")] = None,
    max_len: Annotated[int | None, typer.Option(help="Training tokens per example (default: the task's).")] = None,
    train_batch_size: Annotated[int, typer.Option(help="Training batch size (task-distill --batch-size).")] = 32,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 5e-5,
    epochs: Annotated[float, typer.Option(help="Epochs of the winner's full run.")] = 3.0,
    alpha_kl: Annotated[float, typer.Option(help="Weight of the soft-target KL.")] = 0.5,
    alpha_hard: Annotated[float, typer.Option(help="Weight of the gold-label loss.")] = 0.5,
    temperature: Annotated[float, typer.Option(help="Softmax temperature of the KL term.")] = 2.0,
    max_train_samples: Annotated[int | None, typer.Option(help="Train on a seeded sample of this many.")] = None,
    unlabeled: Annotated[str | None, typer.Option(help=UNLABELED_HELP)] = None,
    unlabeled_text_column: Annotated[str | None, typer.Option(help="--unlabeled column(s).")] = None,
    augment: Annotated[int, typer.Option(help="Perturbed copies of each training input (soft targets).")] = 0,
    exclude: Annotated[list[str] | None, typer.Option(help=EXCLUDE_HELP)] = None,
    cache_dir: Annotated[str | None, typer.Option(help="Teacher-logit cache (default: task-distill's).")] = None,
    max_drop: Annotated[float, typer.Option(help="int8 accuracy guard: dev points int8 may lose.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Training seed of every candidate.")] = 42,
    overwrite: Annotated[bool, typer.Option(help="Start over instead of resuming a run in --out.")] = False,
) -> None:
    """The best student for a latency, speed-up or retention target, searched under a time budget, and shipped."""
    flags = dict(locals())
    from distilkit.compression.config import CompressConfig
    from distilkit.compression.run import compress as run_compress

    flags.update(out=str(out), exclude=tuple(exclude or ()))

    def go(bar: TrainProgress):
        return run_compress(CompressConfig(**flags), callback=bar)

    result = _run(go, label="compress")
    met = "met" if result.target_met else "NOT met"
    dev = f"dev {result.dev_score:.4f} (teacher {result.teacher_dev_score:.4f})" if result.dev_score is not None else ""
    out_console.print(
        f"chosen {result.chosen}: {result.measured_ms:.2f} ms measured (predicted {result.predicted_ms:.2f}, "
        f"teacher {result.teacher_ms:.2f}), target {met}; {dev}"
    )
    out_console.print(f"model: {result.out / 'model'}; {result.front}; {result.report}")
