"""Memory-mapped token dataset, deterministic length-grouped global batches, and padding collate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from distilkit.data.prepare import FORMAT, load_meta
from distilkit.io import atomic_dir, write_json


class TokenDataset:
    """Sequences written by ``prepare``: token ids stay on disk (numpy memmap), read per batch."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.meta = load_meta(self.data_dir)
        self.tokens = np.memmap(self.data_dir / "tokens.bin", dtype=self.meta["dtype"], mode="r")
        self.offsets = np.load(self.data_dir / "offsets.npy", mmap_mode="r")
        self.lengths = np.diff(self.offsets).astype(np.int64)
        self.token_counts = np.load(self.data_dir / "token_counts.npy")

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> np.ndarray:
        start, end = int(self.offsets[index]), int(self.offsets[index + 1])
        return np.asarray(self.tokens[start:end], dtype=np.int64)


def write_token_dataset(
    directory: str | Path,
    sequences: list[np.ndarray],
    *,
    vocab_size: int,
    special_ids: dict[str, int | None],
    max_len: int,
    overwrite: bool = False,
) -> Path:
    """Write in-memory token sequences in ``prepare``'s format (synthetic workloads, tests).

    Each sequence already carries its special tokens. Corpora go through ``prepare``, which streams.
    """
    dtype = "uint16" if vocab_size <= 65535 else "uint32"
    flat = np.concatenate(sequences).astype(dtype)
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    with atomic_dir(directory, overwrite=overwrite) as tmp:
        flat.tofile(tmp / "tokens.bin")
        np.save(tmp / "offsets.npy", np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
        np.save(tmp / "token_counts.npy", np.bincount(flat, minlength=vocab_size).astype(np.int64))
        meta = {
            "format": FORMAT, "dtype": dtype, "n_sequences": len(sequences), "n_tokens": len(flat),
            "vocab_size": vocab_size, "max_len": max_len, "special_ids": special_ids,
            "special_token_ids": sorted({i for i in special_ids.values() if i is not None}),
            "tokenizer": None, "sources": [],
        }  # fmt: skip
        write_json(tmp / "meta.json", meta)
    return Path(directory)


@dataclass(frozen=True)
class BatchPlan:
    """Which sequences form each global batch of an epoch (a pure function of seed and epoch).

    Length grouping as in DistilBERT's ``group_by_size``: shuffle, cut into windows of
    ``group_batches`` global batches, sort each window by length, cut into batches, shuffle
    the batch order. Each global batch is sorted by length (longest first) so that the
    micro-batches sliced from it need little padding.
    """

    lengths: np.ndarray
    global_batch: int
    seed: int
    grouped: bool = True
    group_batches: int = 50

    def __post_init__(self) -> None:
        if len(self.lengths) < self.global_batch:
            from distilkit.errors import ConfigError

            raise ConfigError(
                f"the data has {len(self.lengths)} sequences, fewer than one global batch ({self.global_batch}) "
                "— lower --batch-size / --grad-accum or prepare more text"
            )

    def batches_per_epoch(self) -> int:
        return len(self.lengths) // self.global_batch  # the last incomplete batch is dropped

    def epoch(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.lengths))
        n = self.batches_per_epoch() * self.global_batch
        if not self.grouped:
            return [order[i : i + self.global_batch] for i in range(0, n, self.global_batch)]
        window = self.global_batch * self.group_batches
        batches = []
        for start in range(0, len(order), window):
            chunk = order[start : start + window]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.global_batch] for i in range(0, len(chunk), self.global_batch)]
        batches = [b for b in batches if len(b) == self.global_batch]
        # Drop surplus so every epoch has the same number of batches, then shuffle their order.
        batches = batches[: self.batches_per_epoch()]
        return [batches[i] for i in rng.permutation(len(batches))]


def micro_batches(global_indices: np.ndarray, n_chunks: int) -> list[np.ndarray]:
    """Split one global batch into ``n_chunks`` contiguous, equal micro-batches (index a·world + rank)."""
    return list(np.array_split(global_indices, n_chunks))


def pad_batch(sequences: list[torch.Tensor], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the longest sequence of this micro-batch (dynamic padding).

    Returns input_ids (B, L) int64 and attention_mask (B, L) int64.
    """
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.int64)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.int64)
    for row, seq in enumerate(sequences):
        input_ids[row, : len(seq)] = seq
        attention_mask[row, : len(seq)] = 1
    return input_ids, attention_mask
