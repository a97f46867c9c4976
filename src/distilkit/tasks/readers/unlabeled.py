"""Unlabeled in-domain text for task distillation (`task-distill --unlabeled FILE`) read into examples without
labels; tasks/data.py's `with_unlabeled` appends them to the labelled training set with a label the hard loss
skips — the teacher's soft targets are all the student learns from them (Tang et al. 2019, "Distilling
Task-Specific Knowledge from BERT into Simple Neural Networks", §3.3; TinyBERT's task-distillation stage).

Formats: .txt (or any name tables.py does not know) — one input per line, a pair task's two texts separated by a
tab; .csv, .tsv, .jsonl, .parquet — read by tables.py, the text in the first of own_data.TEXT_COLUMNS present
(text, sentence, sentence1) and a pair task's second text in the first of PAIR_COLUMNS (text_pair, sentence2), or
in the column(s) --unlabeled-text-column names ("a,b" for a pair). Blank inputs are skipped.
"""

from __future__ import annotations

from pathlib import Path

from distilkit.errors import DataError
from distilkit.tasks.readers import glue
from distilkit.tasks.readers.own_data import PAIR_COLUMNS, TEXT_COLUMNS
from distilkit.tasks.readers.tables import FORMATS, open_table


def read_unlabeled(path: str | Path, pair: bool, text_column: str | None = None) -> list[glue.Example]:
    """The inputs of an --unlabeled file as examples without labels; DataError (one line) when the file is
    missing, unreadable, has no such column, or has no text."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--unlabeled file {path} does not exist")
    names = tuple(name.strip() for name in text_column.split(",")) if text_column else None
    if names is not None and len(names) != (2 if pair else 1):
        raise DataError(f"--unlabeled-text-column needs {'two names (a,b) for a pair task' if pair else 'one name'}")
    if not any(path.name.lower().endswith(suffix) for suffix in FORMATS):
        return _text_lines(path, pair)
    table = open_table(path)
    columns = names or _default_columns(table.columns, pair)
    missing = [name for name in columns if name not in table.columns] if columns else ["text"]
    if missing:
        wanted = f"{missing[0]!r}" if names else " or ".join(map(repr, TEXT_COLUMNS))
        if pair and not names:
            wanted += " plus " + " or ".join(map(repr, PAIR_COLUMNS))
        raise DataError(f"--unlabeled file {path} has no column {wanted} (found: {', '.join(table.columns)}) — "
                        "name it with --unlabeled-text-column")  # fmt: skip
    examples = []
    for batch in table.batches(columns):
        for row, where in enumerate(batch.where):
            texts = [batch.values[name][row] for name in columns]
            if any(value is not None and not isinstance(value, str) for value in texts):
                raise DataError(f"--unlabeled file {path}, {where}: the text is not a string")
            if all(value and value.strip() for value in texts):
                examples.append(glue.Example(texts[0].strip(), texts[1].strip() if pair else None, None))
    if not examples:
        raise DataError(f"--unlabeled file {path} has no text")
    return examples


def _default_columns(found: tuple[str, ...], pair: bool) -> tuple[str, ...] | None:
    text = next((name for name in TEXT_COLUMNS if name in found), None)
    second = next((name for name in PAIR_COLUMNS if name in found), None)
    if text is None or (pair and second is None):
        return None
    return (text, second) if pair else (text,)


def _text_lines(path: Path, pair: bool) -> list[glue.Example]:
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        raise DataError(f"--unlabeled file {path} is not UTF-8 text (byte {error.start})") from None
    examples = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if not pair:
            examples.append(glue.Example(line.strip(), None, None))
            continue
        first, tab, second = line.partition("\t")
        if not tab or not first.strip() or not second.strip():
            raise DataError(f"--unlabeled file {path}, line {number}: a pair task needs two tab-separated texts")
        examples.append(glue.Example(first.strip(), second.strip(), None))
    if not examples:
        raise DataError(f"--unlabeled file {path} has no text")
    return examples
