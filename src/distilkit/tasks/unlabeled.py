"""Unlabeled in-domain text for task distillation (`task-distill --unlabeled FILE`): read it into examples, and
append them to the labelled training set with a label the hard loss skips — the teacher's soft targets are all
the student learns from them (Tang et al. 2019, "Distilling Task-Specific Knowledge from BERT into Simple Neural
Networks", §3.3; TinyBERT's task-distillation stage).

Formats: .txt — one input per line (a pair task: the two texts separated by a tab); .jsonl, .csv, .tsv — one
input per record, the text in column `text` or `sentence` (a pair task: `text`/`text_pair` or the GLUE task's own
two columns), or the column(s) named by --unlabeled-text-column ("a,b" for a pair). Blank inputs are skipped.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from distilkit.errors import ConfigError, DataError
from distilkit.tasks import glue
from distilkit.tasks.data import TaskData, encode
from distilkit.tasks.features import Features
from distilkit.tasks.ner import IGNORE_INDEX

SINGLE_COLUMNS = (("text",), ("sentence",))
PAIR_COLUMNS = (("text", "text_pair"), ("sentence1", "sentence2"))
TABLE_DELIMITERS = {".csv": ",", ".tsv": "\t"}


def unlabeled_label(kind: str) -> int | float:
    """The label of an unlabeled example: IGNORE_INDEX for a class, NaN for a regression score."""
    return math.nan if kind == "regression" else IGNORE_INDEX


def is_unlabeled(labels: Any, kind: str) -> Any:
    """Per-row mask of the unlabeled rows of a batch's `labels` tensor."""
    return labels.isnan() if kind == "regression" else labels == IGNORE_INDEX


def column_candidates(task: str, pair: bool, option: str | None) -> list[tuple[str, ...]]:
    """The text column(s) to look for, in order: --unlabeled-text-column, else the defaults (a GLUE pair task's
    own two columns too)."""
    if option:
        return [tuple(name.strip() for name in option.split(","))]
    if not pair:
        return list(SINGLE_COLUMNS)
    try:
        own = [glue.get_glue_task(task).text_columns]
    except ConfigError:  # not a GLUE task (own data): the defaults only
        own = []
    return [*PAIR_COLUMNS, *own]


def read_unlabeled(path: str | Path, task: str, pair: bool, text_column: str | None = None) -> list[glue.Example]:
    """The inputs of an --unlabeled file as examples without labels; DataError (one line) when the file is
    missing, not UTF-8, has no such column, or has no text."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--unlabeled file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"--unlabeled file {path} is not UTF-8 text") from None
    candidates = column_candidates(task, pair, text_column)
    if len(candidates[0]) != (2 if pair else 1):
        raise DataError(f"--unlabeled-text-column needs {'two names (a,b)' if pair else 'one name'} for {task}")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        records = _jsonl_records(path, text)
    elif suffix in TABLE_DELIMITERS:
        records = list(enumerate(csv.DictReader(text.splitlines(), delimiter=TABLE_DELIMITERS[suffix]), start=2))
    else:
        return _text_lines(path, text, pair)
    if not records:
        raise DataError(f"--unlabeled file {path} has no text")
    columns = next((names for names in candidates if all(name in records[0][1] for name in names)), None)
    if columns is None:
        wanted = " or ".join("/".join(f"'{name}'" for name in names) for names in candidates)
        raise DataError(f"--unlabeled file {path} has no column {wanted} — name it with --unlabeled-text-column")
    examples = []
    for line, record in records:
        texts = [record.get(name) for name in columns]
        if any(value is not None and not isinstance(value, str) for value in texts):
            raise DataError(f"--unlabeled file {path} line {line}: column {columns[0]!r} is not text")
        if all(value and value.strip() for value in texts):
            examples.append(glue.Example(texts[0].strip(), texts[1].strip() if pair else None, None))
    if not examples:
        raise DataError(f"--unlabeled file {path} has no text")
    return examples


def _jsonl_records(path: Path, text: str) -> list[tuple[int, dict]]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            raise DataError(f"--unlabeled file {path} line {number}: not a JSON object")
        records.append((number, record))
    return records


def _text_lines(path: Path, text: str, pair: bool) -> list[glue.Example]:
    examples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if not pair:
            examples.append(glue.Example(line.strip(), None, None))
            continue
        first, tab, second = line.partition("\t")
        if not tab or not first.strip() or not second.strip():
            raise DataError(f"--unlabeled file {path} line {number}: a pair task needs two tab-separated texts")
        examples.append(glue.Example(first.strip(), second.strip(), None))
    if not examples:
        raise DataError(f"--unlabeled file {path} has no text")
    return examples


def with_unlabeled(
    train: TaskData, unlabeled: list[glue.Example], tokenizer: Any, max_len: int
) -> tuple[TaskData, TaskData]:
    """(the training set: labelled features then unlabeled ones labelled `unlabeled_label`, the unlabeled
    features alone — their fingerprint keys their own teacher-logit store). The labelled features are reused as
    encoded: a streamed training file keeps no text to encode again."""
    spec = train.spec
    marker = unlabeled_label(spec.kind)
    marked = encode(spec, [glue.Example(e.text, e.text_pair, marker) for e in unlabeled], tokenizer, max_len)
    features = Features.concat([train.features, marked.features])
    union = TaskData(spec, None, features, num_examples=train.num_examples + len(unlabeled), has_pair=train.has_pair)
    return union, encode(spec, unlabeled, tokenizer, max_len)
