"""SQuAD v1.1: read the official JSON into questions, and find a split in a SQuAD folder.

Only the dev file is available to us (train-v1.1 is not), so `split_by_article` carves a train part and an
evaluation part out of one file without letting an article's paragraphs leak across the two. Its sliding-window
features are in tasks/features.py, the answers read from start/end logits in tasks/predict.py.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distilkit.errors import ConfigError, DataError
from distilkit.tasks.registry import TaskSpec, canonical_split


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


def squad_source(spec: TaskSpec, data: Path) -> tuple[Path, Path | None]:
    """(dev file, train file or None) of a SQuAD folder; a JSON path is taken as the dev file."""
    dev_name, train_name = spec.files["dev"][0], spec.files["train"][0]
    if data.is_file():
        return data, None
    if not data.is_dir():
        raise DataError(f"SQuAD data {data} does not exist — pass the folder holding {dev_name}")
    dev, train = data / dev_name, data / train_name
    if not dev.is_file():
        raise DataError(f"no {dev_name} in {data}")
    return dev, train if train.is_file() else None


def squad_article_split(spec: TaskSpec, data: Path, dev_fraction: float, seed: int) -> list[str] | None:
    """Held-out article titles when the folder has no train file (None when it has one): SQuAD v1.1 train is
    not in ../shared/data, so we train on the other articles of the dev file (`split_by_article`)."""
    dev_file, train_file = squad_source(spec, data)
    if train_file is not None:
        return None
    _, heldout = split_by_article(read_squad(dev_file), dev_fraction, seed)
    return sorted({example.title for example in heldout})


def read_squad_split(
    spec: TaskSpec, data: Path, split: str, heldout_titles: Sequence[str] | None
) -> list[SquadExample]:
    """The questions of a split: train-v1.1.json or dev-v1.1.json, or — given `heldout_titles` — the articles of
    the dev file outside them ("train") or in them ("dev")."""
    dev_file, train_file = squad_source(spec, data)
    if canonical_split(split) not in ("train", "dev"):
        raise ConfigError(f"SQuAD has splits train and dev, not {split!r}")
    if heldout_titles is None:
        if split == "train" and train_file is None:
            raise DataError(f"no {spec.files['train'][0]} in {data} and no article split to train on")
        return read_squad(train_file if split == "train" else dev_file)
    examples = read_squad(dev_file)
    held = set(heldout_titles)
    missing = held - {example.title for example in examples}
    if missing:
        raise DataError(f"{dev_file} has no article {sorted(missing)[0]!r} of the recorded held-out split")
    return [example for example in examples if (example.title in held) == (split != "train")]
