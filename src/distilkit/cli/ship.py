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
from distilkit.cli.fields import config_command
from distilkit.ship.bench import BenchConfig
from distilkit.ship.export import ExportConfig
from distilkit.ship.report import ReportConfig
from distilkit.ship.serve.app import ServeConfig


# ---------------------------------------------------------------- bench
@app.command()
@config_command(BenchConfig, paths=("out", "work_dir"))
def bench(config: BenchConfig) -> None:
    """Parameters, size, latency and throughput of teacher and student on every backend, and GFLOP/s vs peak."""
    from distilkit.ship.bench import bench as run_bench
    from distilkit.ship.bench import summary_rows

    results = _run(lambda bar: run_bench(config, callback=bar))
    out_console.print(bench_table(results))
    for row in summary_rows(results):  # below the table, where a long reason does not squeeze the figures
        if row["status"] != "ok":
            out_console.print(Text(f"{row['model']} {row['backend']} skipped: {row['reason']}", style="dim"))
    if config.out:
        out_console.print(f"results: {config.out}")


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
@config_command(ExportConfig, paths=("out", "bench", "data_dir"))
def export(config: ExportConfig) -> None:
    """Export for deployment: hf (with a model card), onnx (parity-checked), int8 (with an accuracy guard)."""
    from distilkit.ship.export import export as run_export

    result = _run(run_export, config, progress=False)
    atol, out = config.atol, config.out
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
@config_command(ServeConfig)
def serve(config: ServeConfig) -> None:
    """Serve POST /predict, GET /health, GET /info, /openapi.json, /docs and a teacher/student page at /.

    /docs loads Swagger UI from cdn.jsdelivr.net; offline it lists the endpoints from /openapi.json instead.
    """
    from distilkit.ship.serve.app import serve as run_serve

    # notes only: no live bar redrawing while serving
    _run(lambda: run_serve(config, callback=TrainProgress("serve")), progress=False)


# ---------------------------------------------------------------- report
@app.command()
@config_command(ReportConfig, paths=("runs", "out"), build=False)
def report(
    flags: dict,
    more_runs: Annotated[
        list[Path] | None, typer.Argument(help="More run folders or files: --runs A B C.", show_default=False)
    ] = None,
) -> None:
    """One self-contained HTML report card: loss curves, quality retained, latency vs quality, all figures."""
    from distilkit.ship.report import report as run_report

    runs = (*flags.pop("runs"), *(str(run) for run in more_runs or ()))
    path = _run(lambda: run_report(ReportConfig(runs=runs, **flags)), progress=False)
    out_console.print(f"report: {path}")
