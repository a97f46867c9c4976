"""SQuAD v1.1: read the official JSON, split it by article, build sliding-window features, and map
start/end logits back to answer text — the preprocessing and post-processing of transformers' run_qa.py.

Only the dev file is available to us (train-v1.1 is not), so `split_by_article` carves a train part and an
evaluation part out of one file without letting an article's paragraphs leak across the two.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from distilkit.errors import ConfigError, DataError

if TYPE_CHECKING:
    from transformers import BatchEncoding, PreTrainedTokenizerBase

Offsets = tuple[int, int] | None


@dataclass(frozen=True)
class SquadExample:
    """One question. answers/answer_starts: every gold answer text and its character offset in `context`
    (the first one is the training target; all of them count for evaluation). title names the article."""

    id: str
    title: str
    context: str
    question: str
    answers: tuple[str, ...]
    answer_starts: tuple[int, ...]


def read_squad(path: str | Path) -> list[SquadExample]:
    """Read a SQuAD v1.1 JSON file ({"data": [{"title", "paragraphs": [{"context", "qas": [{"id",
    "question", "answers": [{"text", "answer_start"}]}]}]}]}) into examples, in file order.

    Raises DataError naming the file and the JSON location (e.g. data[3].paragraphs[0].qas[2]) for a missing
    or malformed field, an answer that is not at its answer_start in the context, a question without answers
    (SQuAD v2 unanswerable questions are not supported), a duplicate id, or a file without questions."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"SQuAD file {path} does not exist")
    try:
        root = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path} is not valid JSON ({error.msg}, line {error.lineno} column {error.colno})") from None
    examples: list[SquadExample] = []
    seen_ids: set[str] = set()
    articles = _field(root, "data", list, "the top level", path)
    for article_index, article in enumerate(articles):
        where = f"data[{article_index}]"
        title = _field(article, "title", str, where, path)
        for paragraph_index, paragraph in enumerate(_field(article, "paragraphs", list, where, path)):
            where = f"data[{article_index}].paragraphs[{paragraph_index}]"
            context = _field(paragraph, "context", str, where, path)
            for question_index, qa in enumerate(_field(paragraph, "qas", list, where, path)):
                examples.append(read_question(qa, title, context, f"{where}.qas[{question_index}]", path))
                if examples[-1].id in seen_ids:
                    raise DataError(f"{path}: {where}.qas[{question_index}] repeats question id {examples[-1].id!r}")
                seen_ids.add(examples[-1].id)
    if not examples:
        raise DataError(f"{path} holds no questions")
    return examples


def read_question(qa: Any, title: str, context: str, where: str, path: Path | str) -> SquadExample:
    """One question record {"id", "question", "answers": [{"text", "answer_start"}]} of `context`; DataError
    naming `path` and `where` for a missing field, no answer, or an answer not at its answer_start."""
    question_id = _field(qa, "id", str, where, path)
    question = _field(qa, "question", str, where, path)
    answers = _field(qa, "answers", list, where, path)
    if not answers:
        raise DataError(f"{path}: {where} ({question_id}) has no answers — SQuAD v2 questions are not supported")
    texts, starts = [], []
    for answer_index, answer in enumerate(answers):
        answer_where = f"{where}.answers[{answer_index}]"
        text = _field(answer, "text", str, answer_where, path)
        start = _field(answer, "answer_start", int, answer_where, path)
        if context[start : start + len(text)] != text:
            raise DataError(f"{path}: {answer_where}: {text!r} is not at answer_start {start} of its context")
        texts.append(text)
        starts.append(start)
    return SquadExample(question_id, title, context, question, tuple(texts), tuple(starts))


def _field(node: Any, key: str, kind: type, where: str, path: Path) -> Any:
    if not isinstance(node, dict) or key not in node:
        raise DataError(f"{path}: {where} has no {key!r} field — is this a SQuAD v1.1 file?")
    value = node[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise DataError(f"{path}: {where}.{key} should be a {kind.__name__}, got {type(value).__name__}")
    return value


def split_by_article(
    examples: Sequence[SquadExample], dev_fraction: float, seed: int
) -> tuple[list[SquadExample], list[SquadExample]]:
    """Split examples into (train, dev) by whole articles (grouped by title), so no paragraph of an evaluated
    article is trained on. round(dev_fraction · n_articles) articles, at least one and leaving at least one,
    are drawn with `random.Random(seed)`; each part keeps the input order. Deterministic for a given seed."""
    if not 0.0 < dev_fraction < 1.0:
        raise ConfigError(f"dev_fraction must be between 0 and 1 (exclusive), got {dev_fraction}")
    titles = list(dict.fromkeys(example.title for example in examples))
    if len(titles) < 2:
        raise DataError(f"cannot split {len(titles)} article(s) into train and dev — need at least 2")
    shuffled = sorted(titles)  # sort first: the draw must not depend on file order
    random.Random(seed).shuffle(shuffled)
    dev_count = min(max(round(dev_fraction * len(titles)), 1), len(titles) - 1)
    dev_titles = set(shuffled[:dev_count])
    train = [example for example in examples if example.title not in dev_titles]
    dev = [example for example in examples if example.title in dev_titles]
    return train, dev


def squad_references(examples: Sequence[SquadExample]) -> dict[str, list[str]]:
    """id → gold answer texts, the `references` argument of `metrics.squad_metrics`."""
    return {example.id: list(example.answers) for example in examples}


def _tokenize_windows(
    examples: Sequence[SquadExample], tokenizer: PreTrainedTokenizerBase, max_len: int, stride: int
) -> BatchEncoding:
    """question + context windows of at most max_len tokens, consecutive windows sharing `stride` tokens."""
    if not examples:
        raise ValueError("no examples to encode")
    if not 0 <= stride < max_len:
        raise ConfigError(f"stride must be in [0, max_len), got stride={stride}, max_len={max_len}")
    # Leading whitespace in some questions only wastes window space (run_qa.py strips it too).
    questions = [example.question.lstrip() for example in examples]
    # The tokenizers library panics (not an exception) when no window longer than the stride fits next to a
    # question, so check first.
    room = max_len - tokenizer.num_special_tokens_to_add(pair=True) - stride
    for example, ids in zip(examples, tokenizer(questions, add_special_tokens=False)["input_ids"], strict=True):
        if len(ids) >= room:
            raise ConfigError(
                f"question {example.id} has {len(ids)} tokens, too long for max_len={max_len} with stride={stride} "
                f"— raise max_len or lower stride"
            )
    return tokenizer(
        questions,
        [example.context for example in examples],
        truncation="only_second",
        max_length=max_len,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )


def _model_inputs(encoded: BatchEncoding) -> dict[str, list]:
    return {key: list(encoded[key]) for key in ("input_ids", "attention_mask", "token_type_ids") if key in encoded}


def prepare_train_features(
    examples: Sequence[SquadExample], tokenizer: PreTrainedTokenizerBase, max_len: int = 384, stride: int = 128
) -> dict[str, list]:
    """Training features as in run_qa.py: one feature per window (a long context gives several), unpadded.

    Returns input_ids, attention_mask, token_type_ids (if the tokenizer makes them), start_positions and
    end_positions: the token indices of the first answer's first and last token, or both the CLS index when the
    answer is not wholly inside the window. Needs a fast tokenizer (offsets); question first, context second."""
    encoded = _tokenize_windows(examples, tokenizer, max_len, stride)
    start_positions: list[int] = []
    end_positions: list[int] = []
    for window, offsets in enumerate(encoded["offset_mapping"]):
        example = examples[encoded["overflow_to_sample_mapping"][window]]
        input_ids = encoded["input_ids"][window]
        cls_index = input_ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in input_ids else 0
        context_tokens = [index for index, sequence in enumerate(encoded.sequence_ids(window)) if sequence == 1]
        first, last = context_tokens[0], context_tokens[-1]
        start_char = example.answer_starts[0]
        end_char = start_char + len(example.answers[0])
        if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
            start_positions.append(cls_index)
            end_positions.append(cls_index)
            continue
        start = first
        while start <= last and offsets[start][0] <= start_char:
            start += 1
        end = last
        while end >= first and offsets[end][1] >= end_char:
            end -= 1
        start_positions.append(start - 1)
        end_positions.append(end + 1)
    return {**_model_inputs(encoded), "start_positions": start_positions, "end_positions": end_positions}


def prepare_eval_features(
    examples: Sequence[SquadExample], tokenizer: PreTrainedTokenizerBase, max_len: int = 384, stride: int = 128
) -> dict[str, list]:
    """Evaluation features as in run_qa.py: the model inputs of every window plus, for post-processing,
    example_id (the question id of each window) and offset_mapping (per token the (start, end) character span
    in the context, None for question and special tokens). Drop those two columns before calling the model."""
    encoded = _tokenize_windows(examples, tokenizer, max_len, stride)
    example_ids: list[str] = []
    context_offsets: list[list[Offsets]] = []
    for window, offsets in enumerate(encoded["offset_mapping"]):
        example_ids.append(examples[encoded["overflow_to_sample_mapping"][window]].id)
        sequence_ids = encoded.sequence_ids(window)
        context_offsets.append(
            [tuple(span) if sequence_ids[index] == 1 else None for index, span in enumerate(offsets)]
        )
    return {**_model_inputs(encoded), "example_id": example_ids, "offset_mapping": context_offsets}


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
