"""Decontamination (``--exclude``): drop training text that contains an evaluation text or shares a long
word n-gram with one, so that no score is measured on sentences the student was trained on.

Texts are compared as words: NFKC, case-folded, punctuation and spacing dropped (``words``). A training line is
contaminated when
- its words equal an evaluation text's words (every evaluation text, however short), or
- it contains an evaluation text of ``MIN_CONTAINED_WORDS`` to ``ngram - 1`` words as a run of its words, or
- it shares a run of ``ngram`` words with a longer evaluation text: 13, as in the GPT-3 paper's
  decontamination (Brown et al. 2020, App. C).

Every word is mapped to a random 64-bit value (blake2b of the word) and each run of k words to a polynomial hash
of those values (mod 2^64), computed for all runs at once with numpy; a run of a training line matches when its
hash is in the evaluation set of the same length. Used by ``prepare`` (corpus lines) and by ``task-distill``
(``--unlabeled`` rows, ``--augment`` copies).
"""

from __future__ import annotations

import hashlib
import re
import time
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from distilkit.errors import DataError

NGRAM = 13  # GPT-3's decontamination n-gram (Brown et al. 2020, App. C)
MIN_CONTAINED_WORDS = 3  # shorter evaluation texts ("John left.") only match a whole line: as runs they are common
FILTER_BITS = 25  # 32 MB: most runs of a training line are ruled out by one lookup, the rest by binary search
_WORD = re.compile(r"\w+")
_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the run hash (the 64-bit golden ratio)


def words(text: str) -> list[str]:
    """The words of `text` as decontamination compares them: NFKC, case-folded, punctuation dropped."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


class _WordValues:
    """A stable random 64-bit value per word (blake2b), cached."""

    def __init__(self) -> None:
        self.cache: dict[str, int] = {}

    def __call__(self, words: list[str]) -> np.ndarray:
        """(len(words),) uint64."""
        for word in set(words).difference(self.cache):
            self.cache[word] = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        return np.fromiter(map(self.cache.__getitem__, words), np.uint64, len(words))


def _run_hashes(values: np.ndarray, length: int) -> np.ndarray:
    """hashes[i] = Σ_t values[i + t] · BASE^t (mod 2^64) for every run of `length` words; values: (n,) uint64.
    Returns (n - length + 1,) uint64 (empty when n < length)."""
    n = len(values) - length + 1
    if n <= 0:
        return np.empty(0, dtype=np.uint64)
    hashes = values[:n].copy()
    power = np.uint64(1)
    with np.errstate(over="ignore"):
        for t in range(1, length):
            power = power * _BASE
            hashes += values[t : t + n] * power
    return hashes


@dataclass
class EvalIndex:
    """The evaluation texts of ``--exclude`` as hashed word runs. Build with `from_texts`, test with `contaminated`."""

    ngram: int = NGRAM
    whole: set[str] = field(default_factory=set)  # every evaluation text's words, joined by spaces
    runs: dict[int, np.ndarray] = field(default_factory=dict)  # run length → sorted run hashes
    seen: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # top bits of a hash → any run has them
    texts: int = 0
    _values: _WordValues = field(default_factory=_WordValues)

    @classmethod
    def from_texts(cls, texts: Iterable[str], ngram: int = NGRAM) -> EvalIndex:
        """All texts' words end to end, hashed run by run once per run length (numpy, no loop over texts)."""
        if ngram < MIN_CONTAINED_WORDS:
            raise DataError(f"the decontamination n-gram must be at least {MIN_CONTAINED_WORDS} words (got {ngram})")
        index = cls(ngram=ngram)
        tokenized = [tokens for tokens in map(words, texts) if tokens]
        index.texts = len(tokenized)
        index.whole = {" ".join(tokens) for tokens in tokenized}
        counts = np.fromiter(map(len, tokenized), np.int64, len(tokenized))
        values = index._values([word for tokens in tokenized for word in tokens])
        starts = np.cumsum(counts) - counts
        text_end = np.repeat(starts + counts, counts)  # one past the last word of each word's text
        for length in sorted({min(int(n), ngram) for n in np.unique(counts) if n >= MIN_CONTAINED_WORDS}):
            hashes = _run_hashes(values, length)
            if length < ngram:  # a short text: its one run, to be found inside a training line
                picked = hashes[starts[counts == length]]
            else:  # a long text: every n-gram inside it
                positions = np.arange(len(hashes))
                picked = hashes[text_end[positions] - positions >= ngram]
            index.runs[length] = np.unique(picked)
        index.seen = np.zeros(1 << FILTER_BITS, dtype=bool)  # a one-hash Bloom filter over every run hash
        for table in index.runs.values():
            index.seen[table >> np.uint64(64 - FILTER_BITS)] = True
        return index

    def contaminated(self, lines: Sequence[str]) -> np.ndarray:
        """(len(lines),) bool: True where a line contains an evaluation text or shares an n-gram with one."""
        hit = np.zeros(len(lines), dtype=bool)
        if not lines or not self.texts:
            return hit
        tokenized = [words(line) for line in lines]
        for row, tokens in enumerate(tokenized):
            if " ".join(tokens) in self.whole:
                hit[row] = True
        counts = np.fromiter(map(len, tokenized), np.int64, len(tokenized))
        flat = [word for tokens in tokenized for word in tokens]
        values = self._values(flat)
        line_of = np.repeat(np.arange(len(lines)), counts)
        line_end = np.repeat(np.cumsum(counts), counts)  # one past each word's line's last word
        for length, table in self.runs.items():
            hashes = _run_hashes(values, length)
            starts = np.arange(len(hashes))
            inside = line_end[starts] - starts >= length  # runs that do not cross into the next line
            candidates = np.flatnonzero(inside & self.seen[hashes >> np.uint64(64 - FILTER_BITS)])
            found = np.minimum(np.searchsorted(table, hashes[candidates]), len(table) - 1)  # table is sorted
            match = candidates[table[found] == hashes[candidates]]
            hit[line_of[match]] = True
        return hit

    def describe(self) -> dict:
        return {"evaluation_texts": self.texts, "ngram": self.ngram, "min_contained_words": MIN_CONTAINED_WORDS}


@dataclass
class Exclusion:
    """An `EvalIndex` built from ``--exclude`` paths, with what it read and dropped (recorded in outputs)."""

    index: EvalIndex
    sources: dict[str, int]  # path → evaluation texts read from it
    seconds: float = 0.0  # reading + filtering
    dropped: dict[str, int] = field(default_factory=dict)  # training file → lines/rows dropped
    kept: dict[str, int] = field(default_factory=dict)

    def filter(self, name: str, lines: Sequence[str], pairs: Sequence[str | None] | None = None) -> np.ndarray:
        """Keep-mask of `lines` (of the training file `name`), counted under that name. With `pairs` (the second
        text of each row, or None), a row is dropped when either of its texts is contaminated."""
        started = time.perf_counter()
        keep = ~self.index.contaminated(lines)
        if pairs is not None:
            keep &= ~self.index.contaminated([pair or "" for pair in pairs])
        self.dropped[name] = self.dropped.get(name, 0) + int((~keep).sum())
        self.kept[name] = self.kept.get(name, 0) + int(keep.sum())
        self.seconds += time.perf_counter() - started
        return keep

    def record(self) -> dict:
        return {**self.index.describe(), "sources": self.sources, "dropped": self.dropped, "kept": self.kept,
                "seconds": round(self.seconds, 3)}  # fmt: skip

    def summary(self) -> str:
        dropped = ", ".join(f"{Path(name).name}: {n:,} of {n + self.kept.get(name, 0):,}"
                            for name, n in self.dropped.items())  # fmt: skip
        return (f"--exclude: {self.index.texts:,} evaluation texts from {len(self.sources)} source(s); "
                f"dropped {dropped or 'nothing'} ({self.seconds:.1f} s)")  # fmt: skip


def build_exclusion(paths: Sequence[str | Path], ngram: int = NGRAM) -> Exclusion | None:
    """The `Exclusion` of ``--exclude`` paths; None when there are none. DataError for a missing or unreadable path."""
    if not paths:
        return None
    started = time.perf_counter()
    sources: dict[str, int] = {}
    texts: list[str] = []
    for path in map(Path, paths):
        found = list(evaluation_texts(path))
        sources[str(path)] = len(found)
        texts += found
    exclusion = Exclusion(EvalIndex.from_texts(texts, ngram), sources)
    exclusion.seconds = time.perf_counter() - started
    return exclusion


# ---------------------------------------------------------------------------------------------
# Reading evaluation texts: benchmark folders (GLUE task or root, SQuAD, CoNLL) and any file the readers accept.

TEXT_COLUMNS = ("text", "text_pair", "sentence", "sentence1", "sentence2", "question", "question1", "question2",
                "context", "premise", "hypothesis", "#1 String", "#2 String")  # fmt: skip


def evaluation_texts(path: Path) -> Iterator[str]:
    """Every text of the evaluation splits at `path`. A GLUE task folder (or the GLUE root): every split but
    train; a SQuAD folder: dev questions and contexts; a CoNLL folder: valid and test sentences. A file: .txt one
    text per line, .json SQuAD, .conll/.iob CoNLL columns, .csv/.tsv/.jsonl/.parquet its text columns."""
    if not path.exists():
        raise DataError(f"--exclude: {path} does not exist")
    if path.is_dir():
        yield from _folder_texts(path)
    else:
        yield from _file_texts(path)


def _glue_task(folder: Path):
    """The GLUE task record whose folder name (SST-2, STS-B, ...) `folder` has, or None."""
    from distilkit.tasks.registry import glue_tasks

    return next((spec for spec in glue_tasks() if spec.folder.lower() == folder.name.lower()), None)


def _glue_texts(spec, folder: Path, split: str) -> Iterator[str]:
    """The texts of one GLUE split, read as GLUE ships it (no quoting, headerless CoLA)."""
    from distilkit.tasks.readers import glue

    for example in glue.read_glue(spec, folder, split):
        yield from filter(None, (example.text, example.text_pair))


def _folder_texts(path: Path) -> Iterator[str]:
    spec = _glue_task(path)
    if spec is not None:
        for split, (name,) in spec.files.items():
            if split != "train" and (path / name).is_file():
                yield from _glue_texts(spec, path, split)
        return
    if (path / "dev-v1.1.json").is_file():
        yield from _file_texts(path / "dev-v1.1.json")
        return
    conll = [path / name for name in ("valid.txt", "dev.txt", "test.txt", "eng.testa", "eng.testb")]
    if (path / "train.txt").is_file() or (path / "eng.train").is_file():
        for file in filter(Path.is_file, conll):
            yield from _conll_texts(file)
        return
    tasks = [child for child in sorted(path.iterdir()) if child.is_dir() and _glue_task(child) is not None]
    if not tasks:
        raise DataError(f"--exclude: cannot tell what evaluation data the folder {path} holds — give a GLUE task "
                        "folder or root, a SQuAD or CoNLL folder, or the evaluation files themselves")  # fmt: skip
    for child in tasks:
        yield from _folder_texts(child)


def _conll_texts(path: Path) -> Iterator[str]:
    from distilkit.tasks.readers import ner

    for _, sentence in ner.iter_conll(path):
        yield " ".join(sentence.words)


def _file_texts(path: Path) -> Iterator[str]:
    from distilkit.tasks.readers import squad, tables

    name = path.name.lower()
    spec = _glue_task(path.parent)
    split = next((key for key, (file,) in spec.files.items() if file == path.name), None) if spec else None
    if split is not None:  # a GLUE split file
        yield from _glue_texts(spec, path.parent, split)
        return
    if name.endswith(".txt"):
        try:
            yield from filter(None, map(str.strip, path.read_text(encoding="utf-8-sig").splitlines()))
        except UnicodeDecodeError as error:
            raise DataError(f"--exclude: {path} is not UTF-8 text ({error.reason} at byte {error.start})") from None
        return
    if name.endswith(".json") and not name.endswith(".jsonl"):
        for example in squad.read_squad(path):
            yield example.question
            yield example.context
        return
    if name.endswith(tables.CONLL_SUFFIXES):
        yield from _conll_texts(path)
        return
    table = tables.open_table(path)
    columns = [column for column in table.columns if column in TEXT_COLUMNS]
    if not columns:
        raise DataError(f"--exclude: {path} has no text column (looked for {', '.join(TEXT_COLUMNS[:6])}, …; "
                        f"found {', '.join(table.columns)})")  # fmt: skip
    for batch in table.batches(columns):
        for column in columns:
            yield from (str(value).strip() for value in batch.values[column] if value and str(value).strip())
