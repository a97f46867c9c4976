"""Run a head model over a task split, turn its logits into predictions and the task's metrics, and render
the predictions as a file a user can read (TSV for GLUE and NER, JSON id → answer for SQuAD).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
from torch import nn

from distilkit.tasks import ner, squad
from distilkit.tasks.data import TaskData, collate, eval_batches
from distilkit.tasks.heads import forward, head_logits
from distilkit.tasks.metrics import entity_scores, glue_metrics, main_score, squad_metrics
from distilkit.train.loop import Runtime

Outputs = list[np.ndarray]  # one logits array per feature: (C,) sequence, (L, C) token, (L, 2) QA start/end


@torch.inference_mode()
def predict(model: nn.Module, data: TaskData, runtime: Runtime, pad_id: int, batch_size: int = 64) -> Outputs:
    """Head logits of every feature, in feature order, padding cut off (eval mode, no gradients)."""
    model.eval()
    outputs: list[np.ndarray | None] = [None] * len(data)
    lengths = data.lengths
    for indices in eval_batches(lengths, batch_size):
        batch = {name: value.to(runtime.device) for name, value in collate(data.features, indices, pad_id).items()}
        with runtime.autocast():
            logits = head_logits(data.spec, forward(model, batch)).float().cpu().numpy()
        for row, index in enumerate(indices):
            outputs[index] = logits[row] if logits.ndim == 2 else logits[row, : lengths[index]]
    return outputs  # type: ignore[return-value]


def score(data: TaskData, outputs: Outputs) -> tuple[dict[str, float], Any]:
    """(metrics, predictions) of a split. predictions: class ids or scores (GLUE), tags per word (NER),
    id → answer text (SQuAD). metrics is empty for an unlabelled split (GLUE test)."""
    spec, examples = data.spec, data.examples
    if spec.kind == "qa":
        answers = squad.postprocess_predictions(
            examples, data.post, [row[:, 0] for row in outputs], [row[:, 1] for row in outputs]
        )
        return squad_metrics(answers, squad.squad_references(examples)), answers
    if spec.kind == "token":
        tags = ner.predictions_to_tags(outputs, data.post["word_ids"], spec.labels, [len(s.words) for s in examples])
        return entity_scores([list(s.tags) for s in examples], tags), tags
    logits = np.stack(outputs)
    predicted = logits[:, 0] if spec.kind == "regression" else logits.argmax(axis=-1)
    if examples[0].label is None:
        return {}, predicted
    return glue_metrics(spec.name, predicted, [example.label for example in examples]), predicted


def headline(task: str, metrics: dict[str, float]) -> float | None:
    return main_score(task, metrics) if metrics else None


def predictions_name(data: TaskData, split: str) -> str:
    return f"predictions_{split}.json" if data.spec.kind == "qa" else f"predictions_{split}.tsv"


def _cell(text: str) -> str:
    return " ".join(str(text).split())  # no tab or newline may break a TSV row


def render_predictions(data: TaskData, predictions: Any) -> str:
    """The predictions file: SQuAD → the official {id: answer} JSON; NER → "word gold predicted" per line, a
    blank line between sentences (conlleval's input); GLUE → index, prediction, label, text(s) with label names."""
    spec, examples = data.spec, data.examples
    if spec.kind == "qa":
        return json.dumps(predictions, indent=1, ensure_ascii=False) + "\n"
    if spec.kind == "token":
        blocks = [
            "".join(f"{word}\t{gold}\t{tag}\n" for word, gold, tag in zip(s.words, s.tags, row, strict=True))
            for s, row in zip(examples, predictions, strict=True)
        ]
        return "word\tgold\tprediction\n" + "\n".join(blocks)

    def name(value: Any) -> str:
        if value is None:
            return ""
        return f"{float(value):.4f}" if spec.kind == "regression" else spec.labels[int(value)]

    pair = examples[0].text_pair is not None
    lines = ["index\tprediction\tlabel\t" + ("text\ttext_pair" if pair else "text")]
    for index, (example, value) in enumerate(zip(examples, predictions, strict=True)):
        texts = [_cell(example.text)] + ([_cell(example.text_pair)] if pair else [])
        lines.append("\t".join([str(index), name(value), name(example.label), *texts]))
    return "\n".join(lines) + "\n"


NEAR_TRIVIAL_POINTS = 5.0  # a teacher this close to the trivial baseline leaves no quality to retain (#15)


def points(task: str, value: float) -> float:
    """A main score in points (0–100): SQuAD/QA scores already are, every other score is a fraction."""
    return value if task in ("squad", "qa") else 100.0 * value


def trivial_baseline(data: TaskData) -> dict[str, Any] | None:
    """The score of the best constant prediction on this split — the reference point beside every score: the
    majority class of the split (classification), its mean score (regression: correlations of a constant are 0),
    "O" for every word (token classification: no entity found), the empty answer (QA). None when unlabelled."""
    spec, examples = data.spec, data.examples
    if not examples:
        return None
    if spec.kind == "qa":
        metrics, what = squad_metrics({e.id: "" for e in examples}, squad.squad_references(examples)), "empty answer"
    elif spec.kind == "token":
        metrics = entity_scores([list(s.tags) for s in examples], [["O"] * len(s.words) for s in examples])
        what = "'O' for every word"
    else:
        labels = [example.label for example in examples]
        if labels[0] is None:
            return None
        if spec.kind == "regression":
            constant, what = float(np.mean(labels)), "the split's mean score"
        else:
            values, counts = np.unique(labels, return_counts=True)
            constant = values[counts.argmax()]
            what = f"majority class {spec.labels[int(constant)] if spec.labels else constant}"
        metrics = glue_metrics(spec.name, np.full(len(labels), constant), labels)
        metrics = {name: 0.0 if np.isnan(value) else float(value) for name, value in metrics.items()}
    return {"predictor": what, "metrics": metrics, "main_score": headline(spec.name, metrics)}


def retention_meaningful(task: str, teacher_main: float | None, baseline_main: float | None) -> bool:
    """False when the teacher is within NEAR_TRIVIAL_POINTS of the trivial baseline: its ratio means nothing."""
    if teacher_main is None or baseline_main is None:
        return teacher_main is not None
    return points(task, teacher_main) - points(task, baseline_main) > NEAR_TRIVIAL_POINTS
