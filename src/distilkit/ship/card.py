"""The model card (README.md) that `export` writes next to a model: what it is, where it came from, how good and
how fast it is, and how to load it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from distilkit.embeddings import count_parameters
from distilkit.models.sentence import read_sentence_spec
from distilkit.models.teacher import hidden_size, num_layers
from distilkit.ship.bench import summary_rows
from distilkit.ship.kinds import TASK_FILE, read_task
from distilkit.ship.onnx_graph import INT8_FILE, ONNX_FILE
from distilkit.ship.results import figure_text, flatten, read_result


def model_card(
    source: str, out: str, kind: str, model: nn.Module, record: dict[str, Any], bench: str | None = None
) -> str:
    """README.md for an exported model.

    The teacher and distillation data come from the distill run folder that holds the model (run/student),
    scores from distilkit_task.json and the int8 guard, speed from a `distilkit bench` JSON."""
    run = read_result(Path(source).parent / "config.json")
    run_config = run.get("config", {}) if isinstance(run, dict) and run.get("command") == "distill" else {}
    teacher = record["config"].get("teacher") or run_config.get("teacher") or "not recorded"
    layers = getattr(model.config, "distilkit_teacher_layers", "n/a")
    task = read_task(source) or ("none (sentence embeddings)" if kind == "embedding" else "not recorded")
    lines = [
        "---", "library_name: transformers", "tags: [distilkit, knowledge-distillation]", "---", "",
        f"# {Path(out).name}", "", f"A {num_layers(model.config)}-layer {model.config.model_type} {kind} model "
        "distilled with distilkit.", "", "| | |", "|---|---|", f"| teacher | {teacher} |",
        f"| layers copied from the teacher | {layers} |", f"| hidden size | {hidden_size(model.config)} |",
        f"| parameters | {count_parameters(model):,} |", f"| task | {task} |",
        f"| distillation data | {run_config.get('data', 'not recorded')} |", f"| format | {record['format']} |",
    ]  # fmt: skip
    if kind == "embedding":
        spec = read_sentence_spec(source)
        lines.append(f"| pooling | {' + '.join(spec.pooling)}{', L2-normalised' if spec.normalize else ''} |")
    if record.get("parity_max_abs_diff") is not None:
        lines.append(f"| ONNX vs PyTorch, max abs diff | {record['parity_max_abs_diff']:.2e} |")
    guard = {k: v for k, v in (record.get("guard") or {}).items() if k in ("fp32", "int8", "drop_points")}
    task_info = read_result(Path(source) / TASK_FILE)
    dev = {k: v for k, v in task_info.items() if k in ("metrics", "main_score")} if isinstance(task_info, dict) else {}
    scores = flatten(dev) + flatten(guard, "int8 guard")
    lines += ["", "## Scores", ""]
    lines += [f"- {name}: {figure_text(value)}" for name, value in scores] or ["Not recorded."]
    return "\n".join([*lines, "", "## Speed", "", *_speed_lines(bench), "", "## Use", "", *_use_lines(out, record)])


def _speed_lines(bench: str | None) -> list[str]:
    data = read_result(Path(bench)) if bench else None
    if not (isinstance(data, dict) and isinstance(data.get("models"), dict)):
        return ["Not measured — `distilkit bench --teacher DIR --student DIR --out bench.json`, then export again."]
    return [
        "| model | backend | p50 ms, smallest batch | sequences/s, largest batch |", "|---|---|---|---|",
        *(f"| {r['model']} | {r['backend']} | {r['p50_ms']:.1f} | {r['sequences_per_s']:.1f} |"
          for r in summary_rows(data) if r["status"] == "ok"),
    ]  # fmt: skip


def _use_lines(out: str, record: dict[str, Any]) -> list[str]:
    if record["format"] == "hf":
        load = f'model = transformers.AutoModel.from_pretrained("{Path(out).name}")  # or the AutoModelFor… class'
    else:
        int8 = record["format"] == "int8" and (record.get("guard") or {}).get("accepted", True)
        graph = INT8_FILE if int8 else ONNX_FILE
        load = f'session = onnxruntime.InferenceSession("{Path(out).name}/{graph}")  # inputs: {record["inputs"]}'
    return ["```python", load, "```", ""]
