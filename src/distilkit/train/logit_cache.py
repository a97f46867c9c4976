"""The teacher-logit cache of task distillation: a fine-tuned teacher's logits over a fixed set of features, kept
on disk in memory-mapped .npy files, filled the first time each feature is needed and reused by every later
epoch and run. One folder per (teacher weights, features, kind, max_len, top-k, autocast precision), named
by a hash of them:

    teacher_logits-<key>/header.json   what the store holds (the fingerprints and shapes) and its state
                         values.npy    float32 (rows, C) — or (rows, K): the K largest logits, --cache-top-k
                         indices.npy   int32 (rows, K): the classes of those K logits (top-k stores only)
                         known.npy     uint8 (features,): 1 once all of a feature's rows are written

Crash safety: a feature's rows are flushed before its `known` byte is set and flushed, so a run killed mid-way
leaves only finished rows marked known. header.json says "writing" from the first write until the run closes
the store, which then records each file's sha256 ("closed"). Opening checks it all again: a header that does not
match this teacher and these features, a missing, truncated or mis-shaped file, a checksum that disagrees with a
closed store, or a non-finite known row is discarded with a warning and computed again — never trusted. A store
left "writing" by a killed run is resumed from its known rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from distilkit.errors import DistilkitError
from distilkit.io import atomic_dir, read_json, sha256_file, write_json
from distilkit.models.teacher import WEIGHT_FILES, resolve_model_path
from distilkit.tasks.data import TaskData, collate
from distilkit.tasks.features import IGNORE_INDEX
from distilkit.tasks.heads import forward, head_logits
from distilkit.tasks.registry import TaskSpec

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the layout changes: older stores then never match
PREFIX = "teacher_logits-"
HEADER = "header.json"
NEG_LOGIT = -1e4  # logit given to padding positions of QA windows: exp(-1e4 / T) is 0 for both models, never NaN


def default_cache_dir() -> Path:
    """$DISTILKIT_CACHE_DIR, else ~/.cache/distilkit/teacher-logits ($XDG_CACHE_HOME honoured): shared by every
    run, so a second run on the same teacher and data — whatever its --out — reads the logits instead."""
    if os.environ.get("DISTILKIT_CACHE_DIR"):
        return Path(os.environ["DISTILKIT_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "distilkit" / "teacher-logits"


def weights_fingerprint(model_dir: str | Path) -> str:
    """sha256 over the model's config and weight files, shards included (a retrained teacher gets another one)."""
    path = Path(resolve_model_path(model_dir))
    shards = [p.name for p in path.glob("*-of-*") if p.suffix in (".safetensors", ".bin")]
    digest = hashlib.sha256()
    for name in sorted({"config.json", *WEIGHT_FILES, *shards}):
        if (path / name).is_file():
            digest.update(f"{name}:{sha256_file(path / name)}".encode())
    return digest.hexdigest()


def row_offsets(spec: TaskSpec, data: TaskData) -> np.ndarray:
    """Where each feature's teacher rows start: 1 row per sequence-task feature, 1 per labelled token (first
    sub-tokens) for NER, 1 per window token for QA (start and end logits as 2 columns)."""
    if spec.kind == "token-classification":
        counts = [int(np.count_nonzero(np.asarray(row) != IGNORE_INDEX)) for row in data.features["labels"]]
    elif spec.kind == "qa":
        counts = list(data.lengths)
    else:
        counts = [1] * len(data)
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def effective_top_k(spec: TaskSpec, top_k: int | None) -> int | None:
    """Top-k applies to class logits (classification, NER) when it drops classes; regression and QA keep all."""
    if top_k is None or spec.kind in ("regression", "qa") or top_k >= spec.num_labels:
        return None
    return top_k


def store_identity(teacher: str, data: TaskData, max_len: int, top_k: int | None, precision: str = "fp32") -> dict:
    """Everything a store's contents depend on; its hash names the folder and the header must equal it.
    precision: the autocast dtype the teacher ran under (bf16 logits are close to, not equal to, fp32 ones)."""
    spec = data.spec
    offsets = row_offsets(spec, data)
    return {"format": FORMAT, "teacher": teacher, "features": data.fingerprint(), "task": spec.name,
            "kind": spec.kind, "max_len": max_len, "top_k": top_k, "precision": precision, "n_features": len(data),
            "rows": int(offsets[-1]), "columns": spec.num_labels}  # fmt: skip


class InvalidStore(Exception):
    """A store on disk that must not be trusted (the message says why)."""


class LogitStore:
    """One folder of teacher logits: `rows(feature)` reads, `write([(feature, logits)])` adds crash-safely,
    `close()` seals it with checksums. Open it with `open_store`."""

    def __init__(self, folder: Path, identity: dict, offsets: np.ndarray, state: str) -> None:
        self.folder, self.identity, self.offsets, self.state = folder, identity, offsets, state
        self.top_k: int | None = identity["top_k"]
        self.values = np.load(folder / "values.npy", mmap_mode="r+")
        self.indices = np.load(folder / "indices.npy", mmap_mode="r+") if self.top_k else None
        self.known = np.load(folder / "known.npy", mmap_mode="r+")
        width = self.top_k or identity["columns"]
        expected = [(self.values, (identity["rows"], width), np.float32), (self.known, (len(offsets) - 1,), np.uint8)]
        if self.indices is not None:
            expected.append((self.indices, (identity["rows"], width), np.int32))
        for array, shape, dtype in expected:
            if array.shape != shape or array.dtype != dtype:
                raise InvalidStore(
                    f"an array is {array.dtype}{list(array.shape)}, expected {np.dtype(dtype)}{list(shape)}"
                )
        self.reused = int(self.known.sum())
        self.discarded: str | None = None  # why a store found on disk was thrown away

    @property
    def n_features(self) -> int:
        return len(self.offsets) - 1

    def is_known(self, feature: int) -> bool:
        return bool(self.known[feature])

    def rows(self, feature: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(values, classes) of a feature: its rows of logits, and with top-k the class of each kept logit."""
        lo, hi = self.offsets[feature], self.offsets[feature + 1]
        return np.asarray(self.values[lo:hi]), None if self.indices is None else np.asarray(self.indices[lo:hi])

    def write(self, items: Sequence[tuple[int, np.ndarray]]) -> None:
        """Store the full logits (rows, C) of each feature (top-k kept if so configured): the rows are flushed to
        disk before the features are marked known, so a kill between the two leaves them unknown, not garbage."""
        if not items:
            return
        if self.state != "writing":  # the checksums of a closed store stop holding from the first byte written
            self.state = "writing"
            write_json(self.folder / HEADER, {**self.identity, "state": "writing"})
        for feature, logits in items:
            lo, hi = self.offsets[feature], self.offsets[feature + 1]
            logits = np.asarray(logits, dtype=np.float32).reshape(hi - lo, -1)
            if self.indices is None:
                self.values[lo:hi] = logits
            else:
                classes = np.argsort(-logits, axis=-1, kind="stable")[:, : self.top_k]
                self.values[lo:hi] = np.take_along_axis(logits, classes, axis=-1)
                self.indices[lo:hi] = classes
        self.values.flush()
        if self.indices is not None:
            self.indices.flush()
        for feature, _ in items:
            self.known[feature] = 1
        self.known.flush()

    def close(self) -> None:
        """Seal the store: flush, checksum every file and mark the header "closed"."""
        if self.state != "closed":
            for array in (self.values, self.indices, self.known):
                if array is not None:
                    array.flush()
            write_json(self.folder / HEADER, {**self.identity, "state": "closed", "sha256": _checksums(self.folder)})
            self.state = "closed"

    def verify(self) -> None:
        """Known rows must be finite (and top-k classes in range); raise InvalidStore otherwise."""
        rows = np.repeat(self.known.astype(bool), np.diff(self.offsets))
        if not np.isfinite(self.values[rows]).all():
            raise InvalidStore("rows marked known hold non-finite values")
        if (
            self.indices is not None
            and not ((self.indices[rows] >= 0) & (self.indices[rows] < self.identity["columns"])).all()
        ):
            raise InvalidStore("rows marked known hold class indices out of range")


def _array_files(identity: dict) -> list[str]:
    return ["values.npy", "known.npy"] + (["indices.npy"] if identity["top_k"] else [])


def _checksums(folder: Path) -> dict[str, str]:
    return {name: sha256_file(folder / name) for name in sorted(p.name for p in folder.glob("*.npy"))}


def _create(folder: Path, identity: dict, offsets: np.ndarray) -> None:
    """An empty store, built through io.atomic_dir (never seen half-made). A feature without rows (NER: no
    labelled token) is known from the start."""
    width = identity["top_k"] or identity["columns"]
    shapes = {"values.npy": ((identity["rows"], width), np.float32)}
    if identity["top_k"]:
        shapes["indices.npy"] = ((identity["rows"], width), np.int32)
    try:
        with atomic_dir(folder) as tmp:
            for name, (shape, dtype) in shapes.items():  # zero-filled without holding the array in memory
                np.lib.format.open_memmap(tmp / name, mode="w+", dtype=dtype, shape=shape).flush()
            np.save(tmp / "known.npy", (np.diff(offsets) == 0).astype(np.uint8))
            write_json(tmp / HEADER, {**identity, "state": "writing"})
    except DistilkitError:  # another process created it meanwhile: use theirs
        if not (folder / HEADER).is_file():
            raise


def _load(folder: Path, identity: dict, offsets: np.ndarray) -> LogitStore:
    try:
        header = read_json(folder / HEADER, "teacher-logit cache header")
    except (DistilkitError, OSError) as error:
        raise InvalidStore(f"unreadable header ({error})") from None
    state = header.pop("state", None) if isinstance(header, dict) else None
    checksums = header.pop("sha256", None) if isinstance(header, dict) else None
    if header != identity:
        different = sorted(k for k in identity if not isinstance(header, dict) or header.get(k) != identity[k])
        raise InvalidStore(f"it was made for another {'/'.join(different) or 'layout'}")
    if state not in ("writing", "closed"):
        raise InvalidStore(f"unknown state {state!r}")
    missing = [name for name in _array_files(identity) if not (folder / name).is_file()]
    if missing:
        raise InvalidStore(f"{missing[0]} is missing")
    if state == "closed" and checksums != _checksums(folder):
        raise InvalidStore("its files do not match the checksums written when it was closed (corrupted or truncated)")
    try:
        store = LogitStore(folder, identity, offsets, state)
    except (ValueError, OSError, EOFError) as error:  # a truncated .npy: numpy cannot map it
        raise InvalidStore(f"unreadable array ({error})") from None
    if state == "writing":  # left by a killed run (or still being filled): no checksums to go by
        store.verify()
    return store


def store_folder(cache_dir: str | Path, identity: dict) -> Path:
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
    return Path(cache_dir) / f"{PREFIX}{key}"


def open_store(cache_dir: str | Path, identity: dict, offsets: np.ndarray) -> LogitStore:
    """The store of `identity` in `cache_dir`: reused when it checks out, else (re)created empty."""
    folder = store_folder(cache_dir, identity)
    discarded = None
    if folder.exists():
        try:
            return _load(folder, identity, offsets)
        except InvalidStore as error:
            discarded = str(error)
            log.warning("discarding the teacher-logit cache %s: %s — computing it again", folder, error)
            shutil.rmtree(folder, ignore_errors=True)
    _create(folder, identity, offsets)
    store = _load(folder, identity, offsets)
    store.discarded = discarded
    return store


class TeacherCache:
    """The teacher's logits on the training features, from stores covering consecutive ranges of them (the
    labelled set, then any unlabeled text). A feature its store lacks is computed the first time it is in a batch
    (teacher in eval mode, no gradients) or by `precompute`, and written there for every later epoch and run."""

    def __init__(self, teacher: nn.Module, data: TaskData, pad_id: int, stores: Sequence[LogitStore]) -> None:
        self.teacher, self.data, self.pad_id, self.stores = teacher, data, pad_id, list(stores)
        self.starts = np.cumsum([0] + [store.n_features for store in self.stores])
        if self.starts[-1] != len(data):
            raise ValueError(f"the stores cover {self.starts[-1]} features, the data has {len(data)}")
        self.reused, self.computed = sum(store.reused for store in self.stores), 0

    def locate(self, index: int) -> tuple[LogitStore, int]:
        part = int(np.searchsorted(self.starts, index, side="right")) - 1
        return self.stores[part], index - int(self.starts[part])

    def is_known(self, index: int) -> bool:
        store, local = self.locate(index)
        return store.is_known(local)

    @torch.no_grad()
    def fill(self, indices: Iterable[int], device: torch.device) -> None:
        """Run the teacher on the features of `indices` it has not seen yet."""
        missing = [int(index) for index in indices if not self.is_known(int(index))]
        if missing:
            batch = {k: v.to(device) for k, v in collate(self.data.features, missing, self.pad_id).items()}
            self.remember(batch, head_logits(self.data.spec, forward(self.teacher, batch)))

    def precompute(
        self, indices: Iterable[int], batch_size: int, device: torch.device, emit: Callable[[dict], None]
    ) -> None:
        """Fill every feature of `indices` up front, in length-sorted batches (little padding); emits
        {"event": "teacher-logits", "done", "total"} after each batch."""
        missing = np.array([index for index in indices if not self.is_known(index)], dtype=np.int64)
        missing = missing[np.argsort(self.data.lengths[missing], kind="stable")]
        for start in range(0, len(missing), batch_size):
            self.fill(missing[start : start + batch_size].tolist(), device)
            emit({"event": "teacher-logits", "done": min(start + batch_size, len(missing)), "total": len(missing)})

    def remember(self, batch: dict[str, torch.Tensor], logits: torch.Tensor) -> None:
        """Keep the teacher logits of a batch (already computed, e.g. by a hidden-state matching pass)."""
        logits, kind = logits.detach().float().cpu(), self.data.spec.kind
        writes: dict[int, dict[int, np.ndarray]] = {id(store): {} for store in self.stores}
        for row, index in enumerate(batch["index"].tolist()):
            store, local = self.locate(index)
            if store.is_known(local) or local in writes[id(store)]:
                continue
            if kind == "token-classification":
                values = logits[row][batch["labels"][row].cpu() != IGNORE_INDEX]
            elif kind == "qa":
                values = logits[row, : store.offsets[local + 1] - store.offsets[local]]
            else:
                values = logits[row : row + 1]
            writes[id(store)][local] = values.numpy()
        for store in self.stores:
            self.computed += len(writes[id(store)])
            store.write(list(writes[id(store)].items()))

    def batch(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The teacher logits of a training batch, shaped like what the soft loss compares — (B, C) sequence,
        (labelled tokens, C) NER, (B, L, 2) QA padded with NEG_LOGIT — and, with top-k, the classes they belong
        to (then C is K)."""
        device = batch["input_ids"].device
        indices = batch["index"].tolist()
        self.fill(indices, device)
        rows = [store.rows(local) for store, local in map(self.locate, indices)]
        values = [torch.from_numpy(value) for value, _ in rows]
        classes = None if rows[0][1] is None else torch.from_numpy(np.concatenate([c for _, c in rows])).long()
        if self.data.spec.kind != "qa":
            return torch.cat(values).to(device), None if classes is None else classes.to(device)
        padded = torch.full((len(indices), batch["input_ids"].shape[1], 2), NEG_LOGIT)
        for row, piece in enumerate(values):
            padded[row, : len(piece)] = piece
        return padded.to(device), None

    def close(self) -> None:
        for store in self.stores:
            store.close()


def open_teacher_cache(
    teacher: nn.Module,
    teacher_dir: str,
    data: TaskData,
    parts: Sequence[TaskData],
    pad_id: int,
    cache_dir: str | Path,
    max_len: int,
    top_k: int | None,
    precision: str = "fp32",
) -> TeacherCache:
    """The cache of `teacher` over `data`, whose consecutive ranges are the features of `parts` (each part has
    its own store, so the unlabeled text's logits survive a change of the labelled sample)."""
    fingerprint = weights_fingerprint(teacher_dir)
    top_k = effective_top_k(data.spec, top_k)
    stores = [
        open_store(
            cache_dir, store_identity(fingerprint, part, max_len, top_k, precision), row_offsets(part.spec, part)
        )
        for part in parts
    ]
    return TeacherCache(teacher, data, pad_id, stores)
