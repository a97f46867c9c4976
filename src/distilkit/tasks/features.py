"""Encoded task features in flat numpy arrays: every per-token column (input_ids, masks, NER labels) of all rows
concatenated into one array cut by shared offsets, every per-row column (class labels, scores, QA positions) one
array — no Python list per row, so a million-row training file costs its tokens' bytes (as data/prepare.py's
shards do). `Features.concat` joins encoded chunks; `Features.batch` pads a batch of rows into tensors.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from itertools import chain

import numpy as np
import torch

from distilkit.tasks.ner import IGNORE_INDEX

# Narrow dtypes per column (ids need int32 beyond 32k vocabularies; masks and segments are 0/1).
TOKEN_DTYPES = {"input_ids": np.int32, "attention_mask": np.int8, "token_type_ids": np.int8, "labels": np.int32}
PAD_VALUES = {"labels": IGNORE_INDEX}  # input_ids pad with the tokenizer's pad id, every other column with 0


class RaggedColumn(Sequence):
    """Row view of a per-token column: column[i] is row i's values (a numpy slice, no copy)."""

    def __init__(self, values: np.ndarray, offsets: np.ndarray) -> None:
        self.values, self.offsets = values, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self.values[self.offsets[index] : self.offsets[index + 1]]


class Features(Mapping):
    """Model inputs and targets of n rows. tokens: per-token columns, each of length offsets[-1]; rows: per-row
    columns of length n. As a mapping, features[name] is a RaggedColumn (per-token) or an array (per-row)."""

    def __init__(self, offsets: np.ndarray, tokens: dict[str, np.ndarray], rows: dict[str, np.ndarray]) -> None:
        self.offsets, self.tokens, self.rows = offsets, tokens, rows
        for name, values in tokens.items():
            if len(values) != offsets[-1]:
                raise ValueError(f"column {name} has {len(values)} tokens, offsets say {offsets[-1]}")
        for name, values in rows.items():
            if len(values) != self.num_rows:
                raise ValueError(f"column {name} has {len(values)} rows, expected {self.num_rows}")

    @classmethod
    def from_columns(cls, columns: Mapping[str, Sequence]) -> Features:
        """From an encoder's output: lists of per-token lists (input_ids, ...) and lists of scalars (labels, ...)."""
        if "input_ids" not in columns:
            raise ValueError("features need an input_ids column")
        ids = columns["input_ids"]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        tokens, rows = {}, {}
        for name, values in columns.items():
            if len(values) and isinstance(values[0], (list, tuple, np.ndarray)):
                dtype = TOKEN_DTYPES.get(name, np.int64)
                tokens[name] = np.fromiter(chain.from_iterable(values), dtype=dtype, count=int(offsets[-1]))
            else:
                floats = any(isinstance(value, float) for value in values)
                rows[name] = np.asarray(values, dtype=np.float32 if floats else np.int64)
        return cls(offsets, tokens, rows)

    @classmethod
    def concat(cls, parts: list[Features], consume: bool = False) -> Features:
        """One store of the rows of `parts`, in order. consume: empty the parts column by column as they are
        joined, so encoding a big file peaks at its features plus one column, not twice its features."""
        if not parts:
            raise ValueError("nothing to concatenate")
        lengths = np.concatenate([np.diff(part.offsets) for part in parts])
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])

        def take(part: Features, kind: str, name: str) -> np.ndarray:
            columns = getattr(part, kind)
            return columns.pop(name) if consume else columns[name]

        token_names, row_names = list(parts[0].tokens), list(parts[0].rows)
        tokens = {name: np.concatenate([take(part, "tokens", name) for part in parts]) for name in token_names}
        rows = {name: np.concatenate([take(part, "rows", name) for part in parts]) for name in row_names}
        if consume:
            parts.clear()
        return cls(offsets, tokens, rows)

    @property
    def num_rows(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def nbytes(self) -> int:
        return self.offsets.nbytes + sum(a.nbytes for a in chain(self.tokens.values(), self.rows.values()))

    def __getitem__(self, name: str):
        if name in self.tokens:
            return RaggedColumn(self.tokens[name], self.offsets)
        return self.rows[name]

    def __iter__(self) -> Iterator[str]:
        return chain(self.tokens, self.rows)

    def __len__(self) -> int:
        return len(self.tokens) + len(self.rows)

    def batch(self, indices: Sequence[int] | np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
        """Rows `indices` padded to the longest: input_ids with pad_id, per-token labels with -100, masks and
        segments with 0; per-row targets as long (float32 for regression scores). Adds "index"."""
        index = np.asarray(indices, dtype=np.int64)
        starts, lengths = self.offsets[index], self.offsets[index + 1] - self.offsets[index]
        width = int(lengths.max())
        columns = np.arange(width)
        real = columns[None, :] < lengths[:, None]
        positions = (starts[:, None] + columns[None, :])[real]
        batch: dict[str, torch.Tensor] = {"index": torch.from_numpy(index)}
        for name, values in self.tokens.items():
            fill = pad_id if name == "input_ids" else PAD_VALUES.get(name, 0)
            padded = np.full((len(index), width), fill, dtype=np.int64)
            padded[real] = values[positions]
            batch[name] = torch.from_numpy(padded)
        for name, values in self.rows.items():
            picked = values[index]
            batch[name] = torch.from_numpy(picked.astype(np.float32 if picked.dtype.kind == "f" else np.int64))
        return batch
