"""GLUE: read a task's TSV files (official GLUE layout) into examples.

Every task's file names, header columns and label set are fields of its record (tasks/registry.py), so the
reader is a single function with no per-task branches.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from distilkit.errors import ConfigError, DataError
from distilkit.tasks.registry import TaskSpec, glue_tasks


@dataclass(frozen=True)
class Example:
    """One GLUE example (or a text or text pair of your own). label: index into the task's labels, a float score
    for STS-B and regression, None when the split is unlabelled (GLUE test files)."""

    text: str
    text_pair: str | None
    label: int | float | None


def glue_file(spec: TaskSpec, data_dir: str | Path, split: str) -> Path:
    """Path of a split's TSV. data_dir is the task folder (glue/SST-2) or the GLUE root holding it (glue/)."""
    file_name = spec.files[spec.file_split(split)][0]
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"GLUE data dir {root} does not exist — pass the task folder (e.g. glue/{spec.folder})")
    candidates = [root / spec.folder / file_name, root / file_name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DataError(f"no {file_name} for {spec.folder} in {root} (looked for {' and '.join(map(str, candidates))})")


def read_glue(spec: TaskSpec, data_dir: str | Path, split: str = "train") -> list[Example]:
    """Read one split of a GLUE task into `Example`s, in file order, texts stripped of surrounding whitespace.

    data_dir: see `glue_file`; split: train/dev/test, any alias of them, or a task's extra split such as
    "test_with_scores". Files are read as GLUE ships them: UTF-8 (BOM allowed), tab-separated, no quoting. A split
    without the label column (GLUE test) gives label None.
    Raises ConfigError for a task that is not GLUE or a split it lacks, and DataError naming the file and line for
    a missing or empty file, a wrong column count, a missing column (the label column may only be missing from
    test splits), or a label outside the task's label set."""
    if spec.benchmark != "glue":
        raise ConfigError(f"{spec.name} is not a GLUE task — choose one of: {', '.join(s.name for s in glue_tasks())}")
    split_key = spec.file_split(split)
    path = glue_file(spec, data_dir, split)
    header: tuple[str, ...] | None = spec.headerless_columns if split_key in spec.headerless_splits else None
    needs_label = split_key not in spec.unlabelled_splits
    columns = _column_indices(spec, header, path, needs_label) if header else None
    examples: list[Example] = []
    row_count = 0
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            for row in reader:
                if not row:
                    continue
                row_count += 1
                if header is None:
                    header = tuple(name.strip() for name in row)
                    columns = _column_indices(spec, header, path, needs_label)
                    continue
                if len(row) != len(header):
                    raise DataError(
                        f"{path}, line {reader.line_num}: expected {len(header)} tab-separated columns, got {len(row)}"
                    )
                text_indices, label_index = columns
                texts = [row[index].strip() for index in text_indices]
                label = None if label_index is None else _parse_label(spec, row[label_index], path, reader.line_num)
                examples.append(Example(texts[0], texts[1] if len(texts) > 1 else None, label))
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    if row_count == 0:
        raise DataError(f"{path} is empty — expected a GLUE {spec.folder} TSV")
    if not examples:
        raise DataError(f"{path} has no examples, only a header")
    return examples


def _column_indices(
    spec: TaskSpec, header: tuple[str, ...], path: Path, needs_label: bool
) -> tuple[list[int], int | None]:
    required = spec.text_columns + ((spec.label_column,) if needs_label else ())
    missing = [name for name in required if name not in header]
    if missing:
        raise DataError(f"{path}: header has no column {missing[0]!r} (found: {', '.join(header)})")
    label_index = header.index(spec.label_column) if spec.label_column in header else None
    return [header.index(name) for name in spec.text_columns], label_index


def _parse_label(spec: TaskSpec, value: str, path: Path, line: int) -> int | float:
    value = value.strip()
    if spec.kind == "regression":
        try:
            score = float(value)
        except ValueError:
            score = math.nan
        if not math.isfinite(score):
            raise DataError(f"{path}, line {line}: {spec.label_column} {value!r} is not a number")
        return score
    if value not in spec.labels:
        raise DataError(
            f"{path}, line {line}: {spec.label_column} {value!r} is not one of {', '.join(spec.labels)} "
            f"— is this a {spec.folder} file?"
        )
    return spec.labels.index(value)
