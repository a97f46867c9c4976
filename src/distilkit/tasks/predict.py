"""Run a head model over a task split, turn its logits into predictions (classes, scores, one tag per word, SQuAD
answer spans) and the task's metrics, and render the predictions as a file a user can read (TSV for GLUE and
NER, JSON id → answer for SQuAD).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn

from distilkit.runtime import Runtime
from distilkit.tasks.data import TaskData, collate, eval_batches
from distilkit.tasks.heads import forward, head_logits
from distilkit.tasks.metrics import glue_metrics, squad_metrics, tag_metrics
from distilkit.tasks.readers.squad import SquadExample, squad_references
from distilkit.tasks.registry import TaskSpec

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
    """(metrics, predictions) of a split. predictions: class ids or scores (GLUE), tags per word (token tasks),
    id → answer text (SQuAD). metrics is empty for an unlabelled split (GLUE test)."""
    spec, examples = data.spec, data.examples
    if spec.kind == "qa":
        answers = postprocess_predictions(
            examples, data.post, [row[:, 0] for row in outputs], [row[:, 1] for row in outputs]
        )
        return squad_metrics(answers, squad_references(examples)), answers
    if spec.kind == "token-classification":
        tags = predictions_to_tags(outputs, data.post["word_ids"], spec.labels, [len(s.words) for s in examples])
        return tag_metrics(spec, [list(s.tags) for s in examples], tags), tags
    logits = np.stack(outputs)
    predicted = logits[:, 0] if spec.kind == "regression" else logits.argmax(axis=-1)
    if examples[0].label is None:
        return {}, predicted
    return glue_metrics(spec, predicted, [example.label for example in examples]), predicted


def predictions_to_tags(
    predictions: Sequence[ArrayLike],
    word_ids: Sequence[Sequence[int | None]],
    label_list: Sequence[str],
    num_words: Sequence[int],
) -> list[list[str]]:
    """One predicted tag per word, read at each word's first sub-token.

    predictions: per sentence, (seq_len,) label ids or (seq_len, num_labels) logits; rows may be longer than the
    sentence's tokens (batch padding). word_ids: from `align_labels`. num_words: words per sentence. Words with no
    token (cut by truncation) get "O", so they count as missed spans (or wrong plain tags) against the gold tags."""
    if not len(predictions) == len(word_ids) == len(num_words):
        raise ValueError(f"{len(predictions)} prediction rows, {len(word_ids)} word_ids, {len(num_words)} sentences")
    all_tags: list[list[str]] = []
    for row, token_words, word_count in zip(predictions, word_ids, num_words, strict=True):
        label_ids = np.asarray(row)
        if label_ids.ndim == 2:
            label_ids = label_ids.argmax(axis=-1)
        tags = ["O"] * word_count
        previous_word = None
        for position, word_id in enumerate(token_words):
            if word_id is not None and word_id != previous_word:
                tags[word_id] = label_list[int(label_ids[position])]
            previous_word = word_id
        all_tags.append(tags)
    return all_tags


def postprocess_predictions(
    examples: Sequence[SquadExample],
    features: Mapping[str, Sequence],
    start_logits: ArrayLike | Sequence[ArrayLike],
    end_logits: ArrayLike | Sequence[ArrayLike],
    n_best: int = 20,
    max_answer_len: int = 30,
) -> dict[str, str]:
    """Question id → predicted answer text, as run_qa.py's postprocess_qa_predictions for SQuAD v1.

    features: the output of `prepare_eval_features` (example_id, offset_mapping). start_logits, end_logits:
    one row per feature, (n_features, seq_len) or a list of 1-D arrays; rows may be longer than the feature
    (batch padding). Over all windows of a question, among the n_best highest start and end logits of context
    tokens, the span with start ≤ end, at most max_answer_len tokens and the highest start + end logit wins; its
    text is cut from the context by character offsets. A question with no valid span gets "".
    Unlike run_qa.py, question, special and padding tokens are masked before the n_best are taken, so they
    cannot crowd context tokens out of the candidates."""
    example_ids, all_offsets = features["example_id"], features["offset_mapping"]
    if not len(start_logits) == len(end_logits) == len(example_ids):
        raise ValueError(f"{len(example_ids)} features but {len(start_logits)}/{len(end_logits)} logit rows")
    windows_of: dict[str, list[int]] = defaultdict(list)
    for window, example_id in enumerate(example_ids):
        windows_of[example_id].append(window)
    predictions: dict[str, str] = {}
    for example in examples:
        best_score, best_span = -np.inf, None
        for window in windows_of[example.id]:
            offsets = all_offsets[window]
            starts, ends = np.asarray(start_logits[window]), np.asarray(end_logits[window])
            context_tokens = np.array([offset is not None for offset in offsets], dtype=bool)
            if not context_tokens.any():
                continue
            top_starts = _top_context_tokens(starts, context_tokens, n_best)
            top_ends = _top_context_tokens(ends, context_tokens, n_best)
            span_lengths = top_ends[None, :] - top_starts[:, None] + 1
            scores = np.where(
                (span_lengths >= 1) & (span_lengths <= max_answer_len),
                starts[top_starts][:, None] + ends[top_ends][None, :],
                -np.inf,
            )
            row, column = np.unravel_index(np.argmax(scores), scores.shape)
            if scores[row, column] > best_score:
                best_score = scores[row, column]
                best_span = (offsets[top_starts[row]][0], offsets[top_ends[column]][1])
        predictions[example.id] = example.context[best_span[0] : best_span[1]] if best_span else ""
    return predictions


def _top_context_tokens(logits: np.ndarray, context_tokens: np.ndarray, n_best: int) -> np.ndarray:
    """Indices of the n_best highest logits among the window's context tokens, highest first."""
    masked = np.full(len(context_tokens), -np.inf)
    masked[context_tokens] = logits[: len(context_tokens)][context_tokens]
    ranked = np.argsort(masked)[::-1][:n_best]
    return ranked[context_tokens[ranked]]


def headline(spec: TaskSpec, metrics: dict[str, float]) -> float | None:
    """The task's main score, None when nothing was scored (an unlabelled split)."""
    return spec.main_score(metrics) if metrics else None


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
    if spec.kind == "token-classification":
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


def points(spec: TaskSpec, value: float) -> float:
    """A main score in points (0–100): SQuAD/QA scores already are, every other score is a fraction."""
    return spec.scale * value


def trivial_baseline(data: TaskData) -> dict[str, Any] | None:
    """The score of the best constant prediction on this split — the reference point beside every score: the
    majority class of the split (classification), its mean score (regression: correlations of a constant are 0),
    "O" for every word (span tags: no span found), the split's majority tag for every word (plain tags), the empty
    answer (QA). None when unlabelled."""
    spec, examples = data.spec, data.examples
    if not examples:
        return None
    if spec.kind == "qa":
        metrics, what = squad_metrics({e.id: "" for e in examples}, squad_references(examples)), "empty answer"
    elif spec.kind == "token-classification":
        gold = [list(s.tags) for s in examples]
        constant = "O"  # span schemes: no span found
        if spec.tag_scheme == "plain":
            constant = Counter(tag for tags in gold for tag in tags).most_common(1)[0][0]
        metrics = tag_metrics(spec, gold, [[constant] * len(tags) for tags in gold])
        what = f"{constant!r} for every word" + (" (the majority tag)" if spec.tag_scheme == "plain" else "")
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
        metrics = glue_metrics(spec, np.full(len(labels), constant), labels)
        metrics = {name: 0.0 if np.isnan(value) else float(value) for name, value in metrics.items()}
    return {"predictor": what, "metrics": metrics, "main_score": headline(spec, metrics)}


def retention_meaningful(spec: TaskSpec, teacher_main: float | None, baseline_main: float | None) -> bool:
    """False when the teacher is within NEAR_TRIVIAL_POINTS of the trivial baseline: its ratio means nothing."""
    if teacher_main is None or baseline_main is None:
        return teacher_main is not None
    return points(spec, teacher_main) - points(spec, baseline_main) > NEAR_TRIVIAL_POINTS
