"""Encoded task features in flat numpy arrays: every per-token column (input_ids, masks, NER labels) of all rows
concatenated into one array cut by shared offsets, every per-row column (class labels, scores, QA positions) one
array — no Python list per row, so a million-row training file costs a few bytes per token, as data/prepare.py's
shards do: ids as uint16 when they fit (int32 otherwise), and a mask or segment column that holds one value
everywhere (attention_mask of unpadded rows, token_type_ids of single texts) as that value alone.
`Features.concat` joins encoded chunks; `Features.batch` pads a batch of rows into tensors.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from itertools import chain
from typing import Any

import numpy as np
import torch

from distilkit.tasks.ner import IGNORE_INDEX

MASK_COLUMNS = ("attention_mask", "token_type_ids")  # 0/1 per token: int8, or one constant
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


def _token_array(name: str, rows: Sequence[Sequence[int]], total: int) -> np.ndarray | int:
    """One per-token column as a flat array of the narrowest fitting type, or its value when it has one value."""
    values = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=total)
    if name in MASK_COLUMNS:
        return int(values[0]) if total and (values == values[0]).all() else values.astype(np.int8)
    if name == "input_ids" and (not total or (values.min() >= 0 and values.max() < 2**16)):
        return values.astype(np.uint16)
    return values.astype(np.int32)


class Features(Mapping):
    """Model inputs and targets of n rows. tokens: per-token columns, each of length offsets[-1]; constants:
    per-token columns holding one value; rows: per-row columns of length n. As a mapping, features[name] is a
    RaggedColumn (per-token) or an array (per-row)."""

    def __init__(
        self,
        offsets: np.ndarray,
        tokens: dict[str, np.ndarray],
        rows: dict[str, np.ndarray],
        constants: dict[str, int] | None = None,
    ) -> None:
        self.offsets, self.tokens, self.rows, self.constants = offsets, tokens, rows, dict(constants or {})
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
        tokens, rows, constants = {}, {}, {}
        for name, values in columns.items():
            if len(values) and isinstance(values[0], (list, tuple, np.ndarray)):
                column = _token_array(name, values, int(offsets[-1]))
                (constants if isinstance(column, int) else tokens)[name] = column
            else:
                floats = any(isinstance(value, float) for value in values)
                rows[name] = np.asarray(values, dtype=np.float32 if floats else np.int64)
        return cls(offsets, tokens, rows, constants)

    @classmethod
    def concat(cls, parts: list[Features], consume: bool = False) -> Features:
        """One store of the rows of `parts`, in order. consume: empty the parts column by column as they are
        joined, so encoding a big file peaks at its features plus one column, not twice its features."""
        if not parts:
            raise ValueError("nothing to concatenate")
        lengths = np.concatenate([np.diff(part.offsets) for part in parts])
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        tokens, constants = {}, {}
        for name in list(parts[0].tokens) + list(parts[0].constants):
            values = {part.constants.get(name) for part in parts}
            if len(values) == 1 and None not in values:
                constants[name] = values.pop()
                continue
            tokens[name] = np.concatenate([part._take(name, consume) for part in parts])
        rows = {name: np.concatenate([part.rows.pop(name) if consume else part.rows[name] for part in parts])
                for name in list(parts[0].rows)}  # fmt: skip
        if consume:
            parts.clear()
        return cls(offsets, tokens, rows, constants)

    def _take(self, name: str, consume: bool) -> np.ndarray:
        if name in self.constants:
            return np.full(int(self.offsets[-1]), self.constants[name], dtype=np.int8)
        return self.tokens.pop(name) if consume else self.tokens[name]

    @property
    def num_rows(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def nbytes(self) -> int:
        return self.offsets.nbytes + sum(a.nbytes for a in chain(self.tokens.values(), self.rows.values()))

    def update_digest(self, digest: Any) -> None:
        """Feed every column (name, values; a constant column as its value) to a hashlib digest, in name order."""
        digest.update(self.offsets.tobytes())
        for name in sorted(self):
            digest.update(name.encode())
            if name in self.constants:
                digest.update(f"={self.constants[name]}".encode())
                continue
            values = self.tokens.get(name, self.rows.get(name))
            digest.update(np.ascontiguousarray(values, dtype=np.int64 if values.dtype.kind in "iu" else None).tobytes())

    def __getitem__(self, name: str):
        if name in self.tokens or name in self.constants:
            return RaggedColumn(self._take(name, consume=False), self.offsets)
        return self.rows[name]

    def __iter__(self) -> Iterator[str]:
        return chain(self.tokens, self.constants, self.rows)

    def __len__(self) -> int:
        return len(self.tokens) + len(self.constants) + len(self.rows)

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
        for name in chain(self.tokens, self.constants):
            fill = pad_id if name == "input_ids" else PAD_VALUES.get(name, 0)
            padded = np.full((len(index), width), fill, dtype=np.int64)
            padded[real] = self.tokens[name][positions] if name in self.tokens else self.constants[name]
            batch[name] = torch.from_numpy(padded)
        for name, values in self.rows.items():
            picked = values[index]
            batch[name] = torch.from_numpy(picked.astype(np.float32 if picked.dtype.kind == "f" else np.int64))
        return batch
