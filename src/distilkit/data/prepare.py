"""Corpus → flat token ids on disk (``distilkit prepare``): the first step of the pipeline.

The corpus is streamed a batch of lines at a time (one document per line), tokenized by the
teacher's Rust tokenizer in one call per batch, cut into sequences of at most ``max_len``
tokens wrapped in the tokenizer's own CLS/SEP, and appended to ``tokens.bin``. Nothing grows
with the corpus in memory, so a corpus larger than RAM works. ``dataset.py`` reads the result.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from distilkit.data.corpus import LineBatch, check_source, read_batches
from distilkit.data.decontam import build_exclusion
from distilkit.errors import ConfigError, DataError, DistilkitError, ModelError
from distilkit.io import atomic_dir, read_json, write_json

log = logging.getLogger(__name__)

FORMAT = "distilkit-tokens/1"
DATA_FILES = ("meta.json", "tokens.bin", "offsets.npy", "token_counts.npy")


@dataclass(frozen=True)
class PrepareConfig:
    """The flags of ``distilkit prepare``."""

    teacher: str  # model dir, pip-teacher name or hub id: its tokenizer is the one the student will use
    corpus: tuple[str, ...]  # UTF-8 text files, one document per line; .gz accepted
    out: str  # output folder for the memory-mapped token arrays
    max_len: int = 128  # incl. specials. DistilBERT used 512; 128 keeps CPU runs fast (BERT's 90% phase)
    min_len: int = 4  # incl. specials; HF's distillation scripts drop <= 11, short dialogue lines are text too
    batch_lines: int = 2048  # lines per tokenizer call: large enough to amortise the call, small in memory
    workers: int = 0  # 0 = the tokenizers library's thread pool (all cores); N = exactly N threads
    max_sequences: int | None = None  # stop after this many sequences (quick runs)
    # Evaluation data to keep out of the corpus (GLUE task dirs, SQuAD/CoNLL folders, text/table files): a line
    # that contains one of its texts or shares an `exclude_ngram`-word run with one is dropped (data/decontam.py).
    exclude: tuple[str, ...] = ()
    exclude_ngram: int = 13  # GPT-3's decontamination n-gram
    overwrite: bool = False  # replace an existing output folder

    def __post_init__(self) -> None:
        corpus = self.corpus
        if isinstance(corpus, (str, os.PathLike)):
            corpus = (corpus,)
        object.__setattr__(self, "corpus", tuple(str(path) for path in corpus))
        object.__setattr__(self, "exclude", tuple(str(path) for path in self.exclude))
        object.__setattr__(self, "out", str(self.out))
        problems = []
        if not self.corpus:
            problems.append("no corpus files given")
        for path in map(Path, self.corpus):
            if not path.exists():
                problems.append(f"corpus file not found: {path}")
            elif not path.is_file():
                problems.append(f"corpus path {path} is not a file")
        if self.max_len < 8:
            problems.append(f"max_len must be >= 8 (got {self.max_len})")
        if not 1 <= self.min_len <= self.max_len:
            problems.append(f"min_len must be between 1 and max_len (got {self.min_len})")
        if self.batch_lines < 1:
            problems.append(f"batch_lines must be >= 1 (got {self.batch_lines})")
        if self.workers < 0:
            problems.append(f"workers must be >= 0 (got {self.workers})")
        if self.max_sequences is not None and self.max_sequences < 1:
            problems.append(f"max_sequences must be >= 1 (got {self.max_sequences})")
        problems += [f"--exclude path not found: {path}" for path in self.exclude if not Path(path).exists()]
        if self.exclude_ngram < 3:
            problems.append(f"exclude_ngram must be >= 3 (got {self.exclude_ngram})")
        if Path(self.out).is_file():
            problems.append(f"output path {self.out} is a file, not a directory")
        if problems:
            raise ConfigError("prepare: " + "; ".join(problems))


# ---------------------------------------------------------------------------------------------
# Tokenizing: one Rust call per batch, then numpy (no Python loop over tokens).


@dataclass(frozen=True)
class _Splitter:
    """Cut each line's ids into pieces and wrap each piece as the tokenizer wraps one text: prefix piece suffix.

    DistilBERT's data recipe (HF ``distillation/lm_seqs_dataset.py``): long documents are split,
    not truncated, and pieces shorter than ``min_len`` (specials included) are dropped. The wrapping
    is the tokenizer's own (``[CLS] … [SEP]``, ``<s> … </s>``), read by :func:`special_wrapping`.
    """

    max_len: int
    min_len: int
    prefix: tuple[int, ...]
    suffix: tuple[int, ...]
    dtype: str

    def __call__(self, flat: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """flat: all lines' ids end to end; lengths: ids per line. Returns (tokens, sequence lengths, lines kept)."""
        n_special = len(self.prefix) + len(self.suffix)
        body = self.max_len - n_special
        n_pieces = -(-lengths // body)  # ceil division; 0 for a line with no tokens
        line_of_piece = np.repeat(np.arange(len(lengths)), n_pieces)
        piece_in_line = np.arange(int(n_pieces.sum())) - np.repeat(np.cumsum(n_pieces) - n_pieces, n_pieces)
        sizes = np.minimum(body, lengths[line_of_piece] - piece_in_line * body)
        keep = sizes + n_special >= self.min_len
        sources = (np.cumsum(lengths) - lengths)[line_of_piece][keep] + piece_in_line[keep] * body
        sizes = sizes[keep]
        seq_lengths = sizes + n_special
        seq_ends = np.cumsum(seq_lengths)
        seq_starts = seq_ends - seq_lengths
        tokens = np.empty(int(seq_ends[-1]) if len(seq_ends) else 0, dtype=self.dtype)
        for offset, token in enumerate(self.prefix):
            tokens[seq_starts + offset] = token
        for offset, token in enumerate(self.suffix):
            tokens[seq_ends - len(self.suffix) + offset] = token
        within = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        body_starts = seq_starts + len(self.prefix)
        tokens[np.repeat(body_starts, sizes) + within] = flat[np.repeat(sources, sizes) + within]
        return tokens, seq_lengths, len(np.unique(line_of_piece[keep]))


def special_wrapping(tokenizer, where: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The special ids the tokenizer puts before and after one text: BERT ``[CLS]``/``[SEP]``, RoBERTa, XLM-R and
    CamemBERT ``<s>``/``</s>``, FlauBERT ``<s>``/``</s>`` (although its cls_token is ``</s>``) — read from the
    tokenizer itself, so that prepared sequences look exactly like what the model sees when it is served."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    wrapped = tokenizer("a", add_special_tokens=True)["input_ids"]
    starts = [i for i in range(len(wrapped) - len(bare) + 1) if wrapped[i : i + len(bare)] == bare]
    if not bare or not starts or len(wrapped) == len(bare):
        raise ModelError(
            f"the tokenizer of {where} adds no special tokens around a text (no post-processor in its tokenizer.json)"
            " — prepare needs the tokenizer the model was trained with"
        )
    start = starts[0]
    return tuple(wrapped[:start]), tuple(wrapped[start + len(bare) :])


class _BatchTokenizer:
    """Lines → (tokens, sequence lengths, lines kept) with a private copy of the Rust tokenizer."""

    def __init__(self, tokenizer_json: str, splitter: _Splitter) -> None:
        from tokenizers import Tokenizer

        self.backend = Tokenizer.from_str(tokenizer_json)
        # A tokenizer.json may truncate and pad (all-MiniLM-L6-v2's does, to 128): that would silently
        # cut every document. The copy leaves the tokenizer saved with the data untouched.
        self.backend.no_truncation()
        self.backend.no_padding()
        # encode_batch_fast skips offset tracking (~10% faster here); older tokenizers lack it.
        self.encode_batch = getattr(self.backend, "encode_batch_fast", self.backend.encode_batch)
        self.splitter = splitter

    def encode(self, lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """All lines' ids end to end, and the number of ids of each line. Rust releases the GIL meanwhile."""
        ids = [encoding.ids for encoding in self.encode_batch(lines, add_special_tokens=False)]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=self.splitter.dtype, count=int(lengths.sum()))
        return flat, lengths

    def __call__(self, lines: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
        return self.splitter(*self.encode(lines))


@contextlib.contextmanager
def _rust_threads_off() -> Iterator[None]:
    """Turn off the tokenizers library's own thread pool for this block (it reads the variable on
    every call; the variable is process-wide, so it is restored on the way out)."""
    previous = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = previous


def _tokenized(
    batches: Iterator[LineBatch], tokenizer_json: str, splitter: _Splitter, workers: int
) -> Iterator[tuple[LineBatch, tuple[np.ndarray, np.ndarray, int]]]:
    """Tokenize batches in order: one call using the Rust thread pool (``workers=0``), or the batch
    cut into ``workers`` slices encoded by as many Python threads with Rust's pool turned off.

    Measured on the 2-core dev box (benchmarks/prepare_throughput.py): both reach the same ~1.6 M
    tokens/s on the demo corpus, against 0.74 M for one call per line; ~90% of the time is in Rust.
    Rust's own pool is the default (no extra threads). ``workers=N`` is the exact cap on cores:
    the pool's size is fixed once a process first uses it, so RAYON_NUM_THREADS cannot do that
    later. Worker processes were tried and dropped: no faster here, and ``spawn`` re-imports the
    caller's ``__main__`` (seconds when it imports torch; an unguarded script recursed and hung).
    """
    batch_tokenizer = _BatchTokenizer(tokenizer_json, splitter)
    if workers == 0:
        for batch in batches:
            yield batch, batch_tokenizer(batch.lines)
        return
    with _rust_threads_off(), ThreadPoolExecutor(workers) as pool:
        for batch in batches:
            cuts = np.linspace(0, len(batch.lines), workers + 1).astype(int)
            slices = [batch.lines[start:end] for start, end in itertools.pairwise(cuts)]
            parts = list(pool.map(batch_tokenizer.encode, slices))
            flat = np.concatenate([part[0] for part in parts])
            lengths = np.concatenate([part[1] for part in parts])
            yield batch, splitter(flat, lengths)


# ---------------------------------------------------------------------------------------------
# Writing: tokens appended to tokens.bin per batch; offsets built from a lengths file at the end.


@dataclass
class _Totals:
    token_counts: np.ndarray  # (vocab_size,) int64: occurrences of each id, specials included
    length_histogram: np.ndarray  # (max_len + 1,) int64: [n] = sequences of n tokens
    lines_read: int = 0
    lines_skipped: int = 0
    n_sequences: int = 0
    n_tokens: int = 0


def _write_offsets(lengths_path: Path, offsets_path: Path, n_sequences: int, chunk: int = 1 << 22) -> None:
    """offsets.npy = [0, cumsum(lengths)], built chunk by chunk so that it never needs to fit in RAM."""
    lengths = np.memmap(lengths_path, dtype=np.int64, mode="r", shape=(n_sequences,))
    offsets = np.lib.format.open_memmap(offsets_path, mode="w+", dtype=np.int64, shape=(n_sequences + 1,))
    offsets[0] = total = 0
    for start in range(0, n_sequences, chunk):
        ends = np.cumsum(lengths[start : start + chunk]) + total
        offsets[start + 1 : start + 1 + len(ends)] = ends
        total = int(ends[-1])
    offsets.flush()
    del offsets, lengths  # close the maps before the lengths file is removed
    lengths_path.unlink()


def _write_tokens(
    directory: Path,
    results: Iterator[tuple[LineBatch, tuple[np.ndarray, np.ndarray, int]]],
    config: PrepareConfig,
    totals: _Totals,
    progress: Callable[[dict], None] | None,
    total_bytes: int,
) -> None:
    limit = config.max_sequences
    with open(directory / "tokens.bin", "wb") as tokens_file, open(directory / "lengths.tmp", "wb") as lengths_file:
        for batch, (tokens, seq_lengths, lines_kept) in results:
            if limit is not None and totals.n_sequences + len(seq_lengths) > limit:
                seq_lengths = seq_lengths[: limit - totals.n_sequences]
                tokens = tokens[: int(seq_lengths.sum())]
            tokens.tofile(tokens_file)
            seq_lengths.astype(np.int64).tofile(lengths_file)
            totals.token_counts += np.bincount(tokens, minlength=len(totals.token_counts))
            totals.length_histogram += np.bincount(seq_lengths, minlength=len(totals.length_histogram))
            totals.lines_read += batch.lines_read
            totals.lines_skipped += batch.lines_read - lines_kept
            totals.n_sequences += len(seq_lengths)
            totals.n_tokens += len(tokens)
            if progress is not None:
                progress(
                    {
                        "lines": totals.lines_read,
                        "sequences": totals.n_sequences,
                        "tokens": totals.n_tokens,
                        "bytes": batch.bytes_done,
                        "total_bytes": total_bytes,
                    }
                )
            if limit is not None and totals.n_sequences >= limit:
                break
    if totals.n_sequences == 0:
        names = ", ".join(config.corpus)
        raise DataError(f"no sequence of at least {config.min_len} tokens in {names} — add text or lower --min-len")
    _write_offsets(directory / "lengths.tmp", directory / "offsets.npy", totals.n_sequences)


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("distilkit", "tokenizers", "transformers", "numpy")}


def prepare(config: PrepareConfig, progress: Callable[[dict], None] | None = None) -> dict:
    """Tokenize ``config.corpus`` into ``config.out`` (see the module docstring); return its meta.json.

    ``progress`` is called after each batch with lines, sequences, tokens, bytes and total_bytes.
    The output directory appears only once complete: an error or a kill leaves nothing behind.
    """
    from distilkit.models.teacher import load_tokenizer, resolve_model_path  # imports torch: only when called

    started = time.perf_counter()
    paths = [Path(path) for path in config.corpus]
    for path in paths:
        check_source(path)  # every file, before hours of work on the first one
    sources = [(path, path.stat().st_size) for path in paths]
    tokenizer_path = resolve_model_path(config.teacher)
    tokenizer = load_tokenizer(tokenizer_path)
    special_ids = {name: getattr(tokenizer, f"{name}_token_id", None) for name in ("cls", "sep", "pad", "mask", "unk")}
    prefix, suffix = special_wrapping(tokenizer, tokenizer_path)
    vocab_size = len(tokenizer)
    dtype = "uint16" if vocab_size <= 65535 else "uint32"
    splitter = _Splitter(config.max_len, config.min_len, prefix, suffix, dtype)
    totals = _Totals(np.zeros(vocab_size, dtype=np.int64), np.zeros(config.max_len + 1, dtype=np.int64))
    total_bytes = sum(size for _, size in sources)
    exclusion = build_exclusion(config.exclude, config.exclude_ngram)
    try:
        with atomic_dir(config.out, overwrite=config.overwrite) as directory:
            stream_started = time.perf_counter()
            batches = read_batches(sources, config.batch_lines, exclusion)
            results = _tokenized(batches, tokenizer.backend_tokenizer.to_str(), splitter, config.workers)
            with contextlib.closing(results):  # ends the threads even when max_sequences stops early
                _write_tokens(directory, results, config, totals, progress, total_bytes)
            stream_seconds = time.perf_counter() - stream_started
            np.save(directory / "token_counts.npy", totals.token_counts)
            tokenizer.save_pretrained(str(directory / "tokenizer"))
            meta = {
                "format": FORMAT,
                "dtype": dtype,
                "n_sequences": totals.n_sequences,
                "n_tokens": totals.n_tokens,
                "vocab_size": vocab_size,
                "max_len": config.max_len,
                "special_ids": special_ids,
                "special_token_ids": sorted(set(tokenizer.all_special_ids)),
                "wrapping": {"prefix": list(prefix), "suffix": list(suffix)},  # around every sequence
                "tokenizer": tokenizer_path,
                "sources": [{"path": str(path.resolve()), "bytes": size} for path, size in sources],
                "lines_read": totals.lines_read,
                "lines_skipped": totals.lines_skipped,
                "seconds": round(time.perf_counter() - started, 3),  # the whole call, tokenizer loading included
                "stream_seconds": round(stream_seconds, 3),  # read → tokenize → write
                "tokens_per_second": round(totals.n_tokens / max(stream_seconds, 1e-9), 1),  # over stream_seconds
                "length_histogram": totals.length_histogram.tolist(),  # [n] = sequences of n tokens
                "excluded": exclusion.record() if exclusion else None,  # --exclude: texts, dropped lines per file
                "config": asdict(config),
                "versions": _versions(),
            }
            write_json(directory / "meta.json", meta)
    except OSError as exc:  # reading errors are DataErrors by now: this is the output side
        raise DistilkitError(f"cannot write {config.out}: {exc.strerror or exc}") from None
    if exclusion is not None:
        log.info(exclusion.summary())
    log.info("prepared %d sequences, %d tokens in %s", totals.n_sequences, totals.n_tokens, config.out)
    return meta


def load_meta(data_dir: str | Path) -> dict[str, Any]:
    """Read and check ``meta.json`` of a directory written by ``prepare``."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data directory not found: {data_dir} — run `distilkit prepare --out {data_dir}` first")
    missing = [name for name in DATA_FILES if not (data_dir / name).is_file()]
    if missing:
        raise DataError(f"{data_dir} is not a prepared data directory (missing {', '.join(missing)}) — re-run prepare")
    meta = read_json(data_dir / "meta.json", "data meta file")
    found = meta.get("format") if isinstance(meta, dict) else None
    if found != FORMAT:
        raise DataError(f"{data_dir} holds data format {found!r}, expected {FORMAT!r} — re-run `distilkit prepare`")
    absent = [key for key in ("dtype", "n_sequences", "n_tokens", "vocab_size", "special_ids") if key not in meta]
    if absent or meta["dtype"] not in ("uint16", "uint32"):
        raise DataError(f"{data_dir}/meta.json is invalid ({', '.join(absent) or 'dtype'}) — re-run prepare")
    expected = meta["n_tokens"] * np.dtype(meta["dtype"]).itemsize
    actual = (data_dir / "tokens.bin").stat().st_size
    if actual != expected:
        raise DataError(f"{data_dir}/tokens.bin has {actual} bytes, meta.json says {expected} — re-run prepare")
    return meta
