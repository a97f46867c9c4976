"""report.html of `compress`: selection score against measured latency for every trained candidate and the teacher,
the chosen one ringed, the latency limit drawn (an inline SVG: no plotting library needed), and every candidate in a
table. Styles and number formatting are the report card's (ship/report.py, ship/results.py)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from distilkit.io import atomic_write_text
from distilkit.ship.report import STYLE
from distilkit.ship.results import figure_text

WIDTH, HEIGHT, MARGIN = 640, 380, 56  # SVG canvas and the room for the axes' labels


def scatter(points: list[dict[str, Any]], limit_ms: float | None) -> str:
    """points: {label, ms, score, kind: teacher|candidate|chosen}; an SVG scatter of score against latency."""
    xs = [p["ms"] for p in points] + ([limit_ms] if limit_ms else [])
    ys = [p["score"] for p in points]
    x_low, x_high = 0.0, max(xs) * 1.1
    y_low, y_high = min(ys) - 0.02, max(ys) + 0.02

    def x(value: float) -> float:
        return MARGIN + (value - x_low) / (x_high - x_low or 1) * (WIDTH - 2 * MARGIN)

    def y(value: float) -> float:
        return HEIGHT - MARGIN - (value - y_low) / (y_high - y_low or 1) * (HEIGHT - 2 * MARGIN)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-size="11" '
        'font-family="system-ui,sans-serif">',
        f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{WIDTH - MARGIN}" y2="{HEIGHT - MARGIN}" stroke="#444"/>',
        f'<line x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{HEIGHT - MARGIN}" stroke="#444"/>',
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 14}" text-anchor="middle">measured latency p50 (ms)</text>',
        f'<text x="14" y="{HEIGHT / 2}" text-anchor="middle" transform="rotate(-90 14 {HEIGHT / 2})">'
        "selection score</text>",
    ]
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        xv, yv = x_low + fraction * (x_high - x_low), y_low + fraction * (y_high - y_low)
        parts.append(f'<text x="{x(xv):.1f}" y="{HEIGHT - MARGIN + 14}" text-anchor="middle">{xv:.3g}</text>')
        parts.append(f'<text x="{MARGIN - 6}" y="{y(yv) + 4:.1f}" text-anchor="end">{yv:.3f}</text>')
    if limit_ms:
        at = x(limit_ms)
        parts.append(f'<line x1="{at:.1f}" y1="{MARGIN}" x2="{at:.1f}" y2="{HEIGHT - MARGIN}" stroke="#c44" '
                     f'stroke-dasharray="4 3"/><text x="{at + 4:.1f}" y="{MARGIN + 10}" fill="#c44">'
                     f"limit {limit_ms:.3g} ms</text>")  # fmt: skip
    colors = {"teacher": "#dd8452", "candidate": "#4c72b0", "chosen": "#55a868"}
    for point in points:
        cx, cy = x(point["ms"]), y(point["score"])
        marker = (f'<rect x="{cx - 6:.1f}" y="{cy - 6:.1f}" width="12" height="12" fill="{colors["teacher"]}"/>'
                  if point["kind"] == "teacher" else
                  f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="{colors[point["kind"]]}"/>')  # fmt: skip
        if point["kind"] == "chosen":
            ring = f'stroke="{colors["chosen"]}" stroke-width="2"'
            marker += f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="10" fill="none" {ring}/>'
        label = html.escape(point["label"] + (" (chosen)" if point["kind"] == "chosen" else ""))
        parts.append(f'{marker}<text x="{cx + 8:.1f}" y="{cy - 8:.1f}">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


def plot_points(front: dict[str, Any]) -> list[dict[str, Any]]:
    teacher = front["teacher"]
    points = [
        {"label": "teacher", "ms": teacher["measured_ms"], "score": teacher["selection_score"], "kind": "teacher"}
    ]
    for row in front["candidates"]:
        if row["measured_ms"] is not None and row["selection_score"] is not None:
            kind = "chosen" if row["name"] == front["chosen"] else "candidate"
            points.append(
                {"label": row["name"], "ms": row["measured_ms"], "score": row["selection_score"], "kind": kind}
            )
    return points


def table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        return (
            f"<td class=n>{html.escape(figure_text(value))}</td>" if numeric else f"<td>{html.escape(str(value))}</td>"
        )

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return f"<table><tr>{head}</tr>" + "".join("<tr>" + "".join(map(cell, r)) + "</tr>" for r in rows) + "</table>"


def render_static(front: dict[str, Any]) -> str:
    """The static tier's page (compress --task embedding): one candidate, so a summary and a table, no plot."""
    final, fidelity = front["final"], front["final"]["fidelity"]
    rows = [["STS-B dev Spearman ×100", final["teacher_dev_score"] or "", final["dev_score"] or ""],
            ["ms per request", final["teacher_ms"], final["measured_ms"]], ["speed-up", 1.0, final["speedup"]],
            ["same nearest neighbour @1", 1.0, fidelity["nn_agreement@1"]],
            ["cosine to the teacher (PCA space)", 1.0, fidelity["cosine_in_pca_space"]]]  # fmt: skip
    summary = (f"<p>Chosen: <b>{html.escape(front['chosen'])}</b>; target met: "
               f"<b>{'yes' if final['target_met'] else 'no'}</b>. {html.escape(front['note'])}.</p>")  # fmt: skip
    title = f"distilkit compress: {html.escape(str(front['teacher']['path']))}"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{STYLE}</style></head>"
            f"<body><h1>{title}</h1><section>{summary}{table(['', 'teacher', 'static'], rows)}</section>"
            "</body></html>\n")  # fmt: skip


def render(front: dict[str, Any]) -> str:
    if front.get("tier") == "static":
        return render_static(front)
    target, final, teacher, cost = front["target"], front["final"], front["teacher"], front["cost_model"]
    where = (
        f"{target['backend']}, batch {target['batch_size']}, {target['seq_len']} tokens, threads {target['threads']}"
    )
    summary = (
        f"<p>Target: <b>--{target['name'].replace('_', '-')} {target['value']:g}</b> ({where}). Chosen: "
        f"<b>{html.escape(front['chosen'])}</b> — predicted {final['predicted_ms']:.3g} ms, measured "
        f"{final['measured_ms']:.3g} ms (teacher {final['teacher_ms']:.3g} ms); selection score "
        f"{final['selection_score']:.4f} ({final['selection_retention']:.1f}% of the teacher); dev score "
        f"{figure_text(final['dev_score'])} vs the teacher's {figure_text(final['teacher_dev_score'])}, scored once. "
        f"Target met: <b>{'yes' if final['target_met'] else 'no'}</b>.</p>"
    )
    columns = ("name", "layers", "hidden", "heads", "params", "predicted_ms", "measured_ms", "bytes", "selection_score",
               "retention", "steps", "status")  # fmt: skip
    rows = [[row[column] for column in columns] for row in front["candidates"]]
    candidates = table(["shape", "layers", "hidden", "heads", "parameters", "predicted ms", "measured ms", "bytes",
                        "selection score", "retention %", "steps (last round)", "status"], rows)  # fmt: skip
    lines = [[width, line["a_ms"], line["b_ms_per_layer"]] for width, line in cost["lines"].items()]
    points = [[f"{p['layers']}x{p['hidden']}", p["measured_ms"], p["predicted_ms"]] for p in cost["points"]]
    model = (
        f"<p>latency ≈ a + b·layers per width, fitted from random-weight models timed here in {cost['seconds']:.0f} s; "
        f"teacher measured {teacher['measured_ms']:.3g} ms, predicted {figure_text(cost['teacher_predicted_ms'])} ms; "
        f"mean |error| over the trained candidates {figure_text(front['mean_abs_prediction_error_pct'])}%.</p>"
        + table(["width", "a (ms)", "b (ms per layer)"], lines)
        + table(["timed shape", "measured ms", "fitted ms"], points)
    )
    sections = {
        "Quality against measured latency": summary + scatter(plot_points(front), target["latency_limit_ms"]),
        "Every candidate": candidates,
        "The latency model": model,
    }
    body = "".join(f"<section><h2>{html.escape(k)}</h2>{v}</section>" for k, v in sections.items())
    title = f"distilkit compress: {html.escape(str(teacher['path']))}"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{STYLE}</style></head>"
            f"<body><h1>{title}</h1>{body}</body></html>\n")  # fmt: skip


def write_report(front: dict[str, Any], path: str | Path) -> Path:
    atomic_write_text(path, render(front))
    return Path(path)
