"""One self-contained HTML report card from run folders and result files (plots embedded as base64 PNG).

Every input is read defensively: a missing or unfamiliar piece leaves its section saying so, never an error.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distilkit.errors import ConfigError
from distilkit.io import atomic_write_text, read_jsonl
from distilkit.ship.results import figure_text, flatten, headline, read_result, score_of, student_points, task_rows

REPORT_INSTALL = 'pip install "distilkit[report]"'
KNOWN_FILES = ("metrics.jsonl", "quickstart.json", "tasks.json", "export.json", "bench.json")
KINDS = ("distill", "quickstart", "bench", "tasks", "students", "export", "serve")
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
    "text-align:left}td.n{text-align:right}th{background:#f3f3f3}.note{color:#888}img{max-width:100%}"
)


@dataclass(frozen=True)
class ReportConfig:
    runs: tuple[str, ...]  # run folders (distill, quickstart, export) and result files (bench, tasks, serve_load)
    out: str = "report.html"  # the HTML report card
    title: str = "distilkit report card"  # title of the report

    def __post_init__(self) -> None:
        missing = [run for run in self.runs if not Path(run).exists()]
        problems = [] if self.runs else ["--runs needs at least one folder or file"]
        if missing:
            problems.append(f"--runs: {', '.join(missing)} not found")
        if problems:
            raise ConfigError("; ".join(problems))


def report(config: ReportConfig) -> Path:
    """Collect every known result under ``config.runs`` and write the report card to ``config.out``."""
    atomic_write_text(config.out, render(collect(config.runs), config.title))
    return Path(config.out)


def write_report(run_dirs: Sequence[str | Path], out_html: str | Path, title: str = "distilkit report card") -> Path:
    """``report`` for callers such as quickstart: folders or files in, one HTML file out."""
    return report(ReportConfig(tuple(str(r) for r in run_dirs), str(out_html), title))


# ---------------------------------------------------------------- reading
def _files(root: Path) -> Iterable[Path]:
    if root.is_file():
        yield root
        return
    for pattern in ("*", "*/*"):
        for path in sorted(root.glob(pattern)):
            if path.is_file() and (
                path.name in KNOWN_FILES or (path.suffix == ".json" and path.parent.name == "results")
            ):
                yield path


def collect(runs: Iterable[str | Path]) -> dict[str, list[tuple[str, Any]]]:
    """Sort every readable result into kinds: distill logs, quickstart, bench, tasks, export, serve (load test)."""
    found: dict[str, list[tuple[str, Any]]] = {kind: [] for kind in KINDS}
    for root in runs:
        for path in _files(Path(root)):
            label = f"{path.parent.name}/{path.name}"
            if path.suffix == ".jsonl":
                records = [r for r in read_jsonl(path) if isinstance(r, dict) and "step" in r]
                found["distill"] += [(label, records)] if records else []
                continue
            data = read_result(path)
            if path.name == "tasks.json" and isinstance(data, list):
                data = {"tasks": data}
            if not isinstance(data, dict):
                continue
            if "before" in data and "after" in data:
                found["quickstart"].append((label, data))
            elif isinstance(data.get("students"), list):
                found["students"].append((label, data))
            elif isinstance(data.get("models"), dict):
                found["bench"].append((label, data))
            elif data.get("benchmark") == "serve_load" or "p99_ms" in data:
                found["serve"].append((label, data))
            elif "format" in data and "kind" in data:
                found["export"].append((label, data))
            elif path.name == "tasks.json" or "tasks" in data:
                found["tasks"].append((label, data))
    return found


def quality_points(found: dict[str, list]) -> list[tuple[str, float, float]]:
    """(label, batch-1 p50 latency in ms, quality) for the teacher, the student and the int8 student: quality from
    the bench JSON's "quality" record, else tasks.json (fp32) and the export guard (int8)."""
    rows = task_rows(found["tasks"][0][1]) if found["tasks"] else []
    guard = (found["export"][0][1].get("guard") or {}) if found["export"] else {}
    points = []
    for _, data in found["bench"]:
        quality = data.get("quality") or {}
        for label, role, backend in (
            ("teacher", "teacher", "torch-fp32"),
            ("student", "student", "torch-fp32"),
            ("int8 student", "student", "onnx-int8"),
        ):
            batches = data["models"].get(role, {}).get("backends", {}).get(backend, {}).get("batches") or {}
            latency = (batches.get("1") or {}).get("p50_ms")
            score = score_of(quality.get(label.replace(" ", "-")))
            if score is None:
                score = score_of(guard.get("int8")) if label == "int8 student" else (rows[0][role] if rows else None)
            if latency is not None and score is not None:
                points.append((label, float(latency), float(score)))
    return points


# ---------------------------------------------------------------- plots
def pyplot_or_none():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _png(plt, figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def loss_plot(plt, records: list[dict[str, Any]]) -> str:
    """The total loss and every unweighted term against the step, one small panel each."""
    panels = ["loss", *sorted({name for r in records for name in (r.get("terms") or {})})]
    figure, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.6), squeeze=False)
    steps = [r["step"] for r in records]
    for ax, name in zip(axes[0], panels, strict=True):
        values = [r.get("loss") if name == "loss" else (r.get("terms") or {}).get(name) for r in records]
        ax.plot(steps, [float("nan") if v is None else v for v in values], lw=1)
        ax.set_title(name if name == "loss" else f"term: {name}", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    return _png(plt, figure)


def retention_plot(plt, rows: list[dict[str, Any]]) -> str:
    """Retention per task; error bars: the sd over seeds; hatched grey: retention not meaningful."""
    rows = [r for r in rows if r["retained"] is not None]
    figure, ax = plt.subplots(figsize=(1.5 + 0.8 * len(rows), 2.8))
    errors = [100 * (r.get("retained_sd") or 0) for r in rows]
    colors = ["#b0b0b0" if r.get("note") else "#4c72b0" for r in rows]
    bars = ax.bar([r["task"] for r in rows], [100 * r["retained"] for r in rows], color=colors, yerr=errors,
                  capsize=3)  # fmt: skip
    for bar, row in zip(bars, rows, strict=True):
        if row.get("note"):
            bar.set_hatch("//")
    ax.axhline(100, color="grey", lw=0.8, ls="--")
    ax.set_ylabel("quality retained (%)")
    return _png(plt, figure)


def latency_quality_plot(plt, points: list[tuple[str, float, float]]) -> str:
    figure, ax = plt.subplots(figsize=(4.5, 3.2))
    for label, latency, quality in points:
        ax.scatter([latency], [quality], s=50)
        ax.annotate(label, (latency, quality), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlabel("latency p50, batch 1 (ms)")
    ax.set_ylabel("quality (dev score)")
    return _png(plt, figure)


def speed_quality_figure(plt, record: dict[str, Any]):
    """Quality against speed-up for each student (× before distillation, ● after) and the teacher (★ at 1×)."""
    figure, ax = plt.subplots(figsize=(6.4, 4.2))
    teacher = headline(record, record.get("teacher"))
    if teacher is not None:
        ax.scatter([1.0], [teacher], marker="*", s=160, color="black", label="teacher")
    for point in student_points(record):
        color = ax.scatter([point["speedup"]], [point["after"]], label=point["name"]).get_facecolor()[0]
        if point["before"] is not None:
            ax.plot([point["speedup"]] * 2, [point["before"], point["after"]], color=color, alpha=0.4)
            ax.scatter([point["speedup"]], [point["before"]], color=color, marker="x")
    ax.set_xlabel("speed-up over the teacher")
    ax.set_ylabel(str(record.get("metric", "quality")))
    ax.set_title("quality vs speed (× = before distillation)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def throughput_plot(plt, rows: list[dict[str, Any]]) -> str:
    rows = [r for r in rows if r["status"] == "ok"]
    figure, ax = plt.subplots(figsize=(1 + 0.9 * len(rows), 3))
    colors = ["#dd8452" if r["model"] == "teacher" else "#55a868" for r in rows]
    ax.bar([f"{r['model']}\n{r['backend']}" for r in rows], [r["sequences_per_s"] for r in rows], color=colors)
    ax.set_ylabel("sequences / s (largest batch)")
    ax.tick_params(axis="x", labelsize=7)
    return _png(plt, figure)


# ---------------------------------------------------------------- HTML
def _fmt(value: Any) -> str:
    return html.escape(figure_text(value))


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)

    def cell(value: Any) -> str:
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        return f"<td class=n>{_fmt(value)}</td>" if numeric else f"<td>{_fmt(value)}</td>"

    body = "".join("<tr>" + "".join(cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _speed(plt, found: dict[str, list]) -> str:
    from distilkit.ship.bench import summary_rows

    parts = []
    for label, data in found["bench"]:
        try:
            rows = summary_rows(data)
        except (KeyError, TypeError, ValueError):
            continue  # a bench JSON of another shape: its numbers still appear under "All figures"
        peak = (data.get("peak") or {}).get("gflops")
        cells = [
            [r["model"], r["backend"], r["p50_ms"], r["p95_ms"], r["sequences_per_s"], r["gflops"],
             f"{r['peak_fraction']:.0%}", f"{r['speedup']:.2f}×" if r.get("speedup") else ""]
            if r["status"] == "ok" else [r["model"], r["backend"], r["reason"]]
            for r in rows
        ]  # fmt: skip
        header = ["model", "backend", "p50 ms (smallest batch)", "p95 ms", "seq/s (largest batch)", "GFLOP/s"]
        parts.append(
            f"<h3>{html.escape(label)}</h3>"
            + (f"<p>fp32 matmul peak measured in the same run: {peak:,.0f} GFLOP/s</p>" if peak else "")
            + _table([*header, "of peak", "vs teacher fp32"], cells)
            + (throughput_plot(plt, rows) if plt else "")
        )
    return "".join(parts)


def render(found: dict[str, list], title: str) -> str:
    plt = pyplot_or_none()
    no_plot = f"<p class=note>plots need matplotlib — {REPORT_INSTALL}</p>"
    curves = "".join(
        f"<h3>{html.escape(lab)}</h3>{loss_plot(plt, r) if plt else no_plot}" for lab, r in found["distill"]
    )
    quality = ""
    for label, data in found["tasks"]:  # each results file under its own heading: no task twice in one table
        rows = task_rows(data)
        if not rows:
            continue
        cells = [[r["task"], r["teacher"], r["student"], r["retained"], r["retained_sd"], r["note"]] for r in rows]
        quality += f"<h3>{html.escape(label)}</h3>" + _table(
            ["task", "teacher", "student", "retained", "sd over seeds", "note"], cells
        )  # fmt: skip
        if any(r["retained"] is not None for r in rows):
            quality += retention_plot(plt, rows) if plt else no_plot
    for label, data in found["quickstart"]:
        before, after = data.get("before") or {}, data.get("after") or {}
        metrics = ("cosine", "nn_agreement@1", "nn_recall@10", "speedup")
        quality += f"<h3>embedding fidelity to the teacher ({html.escape(label)})</h3>" + _table(
            ["", "student, undistilled", "student, distilled"], [[m, before.get(m), after.get(m)] for m in metrics]
        )
    for label, data in found["students"]:
        sweep, teacher = student_points(data), headline(data, data.get("teacher"))
        quality += f"<h3>students of several sizes ({html.escape(label)})</h3>" + _table(
            ["student", "speed-up", "before distillation", "after", "retained"],
            [[p["name"], p["speedup"], p["before"], p["after"], f"{p['after'] / teacher:.1%}" if teacher else ""]
             for p in sweep],
        )  # fmt: skip
        if sweep and plt:
            quality += _png(plt, speed_quality_figure(plt, data))
    points = quality_points(found)
    tradeoff = _table(["model", "latency p50, batch 1 (ms)", "quality"], points) if points else ""
    tradeoff += latency_quality_plot(plt, points) if points and plt else ""
    serve = [
        [label, d.get("requests"), d.get("concurrency"), d.get("p50_ms"), d.get("p95_ms"), d.get("p99_ms"),
         d.get("errors")]
        for label, d in found["serve"]
    ]  # fmt: skip
    serving = (
        _table(["source", "requests", "concurrency", "p50 ms", "p95 ms", "p99 ms", "errors"], serve) if serve else ""
    )
    figures = [(label, *pair) for kind in KINDS[1:] for label, data in found[kind] for pair in flatten(data)]
    sections = {
        "Loss curves per term": curves,
        "Quality retained per task": quality,
        "Latency vs quality": tradeoff,
        "Speed per backend": _speed(plt, found),
        "Serving under load": serving,
        "All figures": _table(["source", "figure", "value"], figures) if figures else "",
    }
    body = "".join(
        f"<section><h2>{html.escape(name)}</h2>{content or '<p class=note>no data in these runs</p>'}</section>"
        for name, content in sections.items()
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )
