"""Labels of your own data, cell by cell: a class name (integer or word, never a decimal) or a regression score,
and the label set of a training split — sorted, integers numerically, one kind per column, at least two classes —
each problem a one-line DataError naming the file, the line or row, and the column.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from distilkit.errors import DataError

_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
SHOWN_LABELS = 12  # labels listed in an error message


def class_label(value: Any, where: str) -> tuple[str, str]:
    """(name, kind) of a classification cell: kind "integer" (name normalised: " 01" → "1") or "word".
    DataError for an empty cell or a decimal number (a regression target, not a class)."""
    if isinstance(value, bool):
        return str(value).lower(), "word"
    if isinstance(value, int):
        return str(value), "integer"
    text = value.strip() if isinstance(value, str) else value
    if text is None or text == "":
        raise DataError(f"{where}: empty label")
    if isinstance(text, float) or (isinstance(text, str) and _NUMBER.fullmatch(text) and not _INTEGER.fullmatch(text)):
        raise DataError(
            f"{where}: label {value!r} is a decimal number in a classification column — use --task regression "
            "for numeric targets, or integer or word class names"
        )
    if not isinstance(text, str):
        raise DataError(f"{where}: label {value!r} is a {type(value).__name__} — expected a class name or an integer")
    return (str(int(text)), "integer") if _INTEGER.fullmatch(text) else (text, "word")


def score_label(value: Any, where: str) -> float:
    """A regression target as a finite float; DataError naming the cell otherwise."""
    try:
        score = float(value) if not isinstance(value, bool) and value is not None else float("nan")
    except (TypeError, ValueError):
        score = float("nan")
    if not np.isfinite(score):
        raise DataError(f"{where}: label {value!r} is not a number — regression needs a number in every row")
    return score


def label_list(names: Sequence[str], limit: int = SHOWN_LABELS) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")


class LabelScan:
    """The label set of a training split, checked row by row: one kind of label per column, at least two classes.
    While the split is read, each label gets a provisional id in first-seen order (`ids`), so the rows can be
    encoded in the same pass and their ids remapped once the whole set — and so its order — is known."""

    def __init__(self, table: str, column: str) -> None:
        self.table, self.column = table, column
        self.kind: tuple[str, str, str] | None = None  # (kind, first name, its place: "line 2")
        self.ids: dict[str, int] = {}

    @property
    def names(self) -> set[str]:
        return set(self.ids)

    def add(self, value: Any, where: str, place: str) -> int:
        """Check a class cell against the column's kind; its provisional id."""
        name, kind = class_label(value, where)
        if self.kind is None:
            self.kind = (kind, name, place)
        elif kind != self.kind[0]:
            article = "an" if kind == "integer" else "a"
            raise DataError(
                f"{where}: label {name!r} is {article} {kind} but {self.kind[2]} holds {self.kind[1]!r} "
                "— a label column holds integers or words, not both"
            )
        return self.ids.setdefault(name, len(self.ids))

    def add_tags(self, tags: Sequence[str]) -> None:
        """Token tags (no kind check: a tag is a word)."""
        for tag in tags:
            self.ids.setdefault(tag, len(self.ids))

    def labels(self) -> list[str]:
        if len(self.ids) < 2:
            raise DataError(
                f"{self.table}, column {self.column!r}: only one class ({label_list(sorted(self.ids))}) "
                "— a classifier needs at least two"
            )
        integers = self.kind is not None and self.kind[0] == "integer"
        return sorted(self.ids, key=int) if integers else sorted(self.ids)

    def remap(self, labels: Sequence[str]) -> np.ndarray:
        """provisional id → index in `labels` (which hold every name seen)."""
        final = {name: index for index, name in enumerate(labels)}
        return np.array([final[name] for name in self.ids], dtype=np.int64)
