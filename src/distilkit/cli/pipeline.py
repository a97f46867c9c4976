"""Commands of the general-distillation pipeline: prepare, init-student, distill, quickstart."""

from __future__ import annotations

import os
from pathlib import Path

from rich.table import Table

from distilkit.cli.app import app, out_console
from distilkit.cli.app import run_command as _run
from distilkit.cli.fields import config_command
from distilkit.data.prepare import PrepareConfig
from distilkit.models.student import InitStudentConfig
from distilkit.pipeline import QuickstartConfig
from distilkit.train.config import DistillConfig


# ---------------------------------------------------------------- prepare
@app.command()
@config_command(PrepareConfig, paths=("corpus", "out", "exclude"))
def prepare(config: PrepareConfig) -> None:
    """Tokenize a raw text corpus with the teacher's tokenizer into memory-mapped arrays."""
    from distilkit.data.prepare import prepare as run_prepare

    stats = _run(lambda bar: run_prepare(config, progress=lambda p: bar({"event": "prepare", **p})))
    if stats.get("excluded"):
        dropped = stats["excluded"]["dropped"]
        texts = stats["excluded"]["evaluation_texts"]
        lines = ", ".join(f"{n:,} line(s) of {name}" for name, n in dropped.items())
        out_console.print(f"--exclude: {texts:,} evaluation texts; dropped {lines}", markup=False)
    out_console.print(
        f"wrote {stats['n_sequences']:,} sequences, {stats['n_tokens']:,} tokens to {config.out} "
        f"({stats['tokens_per_second']:,.0f} tokens/s)"
    )


# ---------------------------------------------------------------- init-student
@app.command("init-student")
@config_command(InitStudentConfig, paths=("out", "probe_text"))
def init_student(config: InitStudentConfig) -> None:
    """Build a student from the teacher's own weights: fewer layers (chosen or probed), optionally narrower."""
    from distilkit.models.student import init_student as run_init

    result = _run(run_init, config, progress=False)
    if result.probe is not None:
        out_console.print(layer_probe_table(result.probe))
        out_console.print(
            f"chosen layers {list(result.probe.chosen)} ({result.probe.search} search over {len(result.probe.scores)} "
            f"candidates, {result.probe.texts} probe texts)"
        )
    out_console.print(f"student (teacher layers {result.layers}, hidden {result.hidden_size}) saved to {result.out}")


def layer_probe_table(probe) -> Table:
    table = Table(title="undistilled candidates: mean cosine to the teacher's sentence embeddings")
    table.add_column("teacher layers")
    table.add_column("probe score", justify="right")
    for layers, score in probe.table():
        mark = "  ← chosen" if layers == probe.chosen else ""
        table.add_row(",".join(map(str, layers)) + mark, f"{score:.4f}")
    return table


# ---------------------------------------------------------------- distill
@app.command()
@config_command(DistillConfig, paths=("data", "out", "parallel"), aliases={"alpha_ce": "alpha_kl"})  # DistilBERT's name
def distill(config: DistillConfig) -> None:
    """General distillation: KL + MLM + cosine, or sentence embeddings (+ hidden states, attentions, relations)."""
    from distilkit.train.distill import distill as run_distill

    is_main = int(os.environ.get("RANK", "0")) == 0
    result = _run(lambda bar: run_distill(config, callback=bar if is_main else None), label="distill")
    if is_main:
        out_console.print(
            f"{result.steps} steps ({result.skipped_steps} skipped), terms {', '.join(result.terms)}; "
            f"student saved to {result.student_dir}"
        )


# ---------------------------------------------------------------- quickstart
@app.command()
@config_command(QuickstartConfig, paths=("out", "corpus", "eval_data"))
def quickstart(config: QuickstartConfig) -> None:
    """Run the whole pipeline on the embedded default teacher and demo corpus, then compare."""
    from distilkit.pipeline import quickstart as run_quickstart

    summary = _run(lambda bar: run_quickstart(config, callback=bar), label="distill")
    out_console.print(quickstart_table(summary))
    suite = summary["suite"]
    if "skipped" in suite:
        out_console.print(f"embedding suite: not measured — {suite['skipped']}")
    else:
        out_console.print(suite_table(suite))
    out_console.print(f"student: {summary['student_dir']}   summary: {Path(config.out) / 'quickstart.json'}")
    out_console.print(f"report card: {summary['report']}")


def quickstart_table(summary: dict) -> Table:
    before, after = summary["before"], summary["after"]
    table = Table(title="teacher vs student (held-out paragraphs)")
    table.add_column("")
    table.add_column("teacher", justify="right")
    table.add_column("student, undistilled", justify="right")
    table.add_column("student, distilled", justify="right")
    params = (after["teacher_params"], before["student_params"], after["student_params"])
    table.add_row("parameters", *(f"{p / 1e6:.1f} M" for p in params))
    table.add_row(
        "size on disk",
        f"{after['teacher_bytes'] / 2**20:.1f} MiB",
        f"{before['student_bytes'] / 2**20:.1f} MiB",
        f"{after['student_bytes'] / 2**20:.1f} MiB",
    )
    table.add_row("speed-up", "1.00×", f"{before['speedup']:.2f}×", f"{after['speedup']:.2f}×")
    table.add_row("cosine to teacher embedding", "1.000", f"{before['cosine']:.3f}", f"{after['cosine']:.3f}")
    table.add_row(
        "same nearest neighbour @1", "100%", f"{before['nn_agreement@1']:.1%}", f"{after['nn_agreement@1']:.1%}"
    )
    table.add_row(
        "teacher's neighbour in top 10", "100%", f"{before['nn_recall@10']:.1%}", f"{after['nn_recall@10']:.1%}"
    )
    return table


def suite_table(suite: dict) -> Table:
    """The embedding suite (quality beyond the training text): each model's score per task, students' retention."""
    table = Table(title=f"embedding suite ({suite['data']})")
    for column in ("task", "teacher", "student, undistilled", "student, distilled"):
        table.add_column(column, justify="left" if column == "task" else "right")
    scores = suite["scores"]
    for task in suite["tasks"]:
        kept = [
            f"{scores[role][task]:.1f} ({suite[role]['retention'][task]:.1f}%)" for role in ("undistilled", "distilled")
        ]
        table.add_row(task, f"{scores['teacher'][task]:.1f}", *kept)
    table.add_row(
        "mean retention", "", *(f"{suite[role]['mean_retention']:.1f}%" for role in ("undistilled", "distilled"))
    )
    return table
