"""CoNLL column files (CoNLL-2003: word POS chunk NER): find a split's file and read it into sentences with one tag
per word, the tags taken from any column (NER, POS, chunk, or your own). Which scheme the tags follow is
readers/schemes.py's; the tags are aligned to sub-word tokens in tasks/features.py and read back per word in
tasks/predict.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from distilkit.errors import ConfigError, DataError
from distilkit.tasks.registry import TaskSpec, canonical_split


@dataclass(frozen=True)
class NerSentence:
    """One sentence: its words and one tag per word (as in the file, e.g. IOB1 NER tags for CoNLL-2003)."""

    words: tuple[str, ...]
    tags: tuple[str, ...]


def read_conll(path: str | Path, tag_column: int = -1) -> list[NerSentence]:
    """Read a CoNLL column file: one token per line (word = column 0, tag = column `tag_column`, the last by
    default), a blank line between sentences, `-DOCSTART-` document lines skipped. Every token line must have as
    many columns as the file's first one (4 for CoNLL-2003: word POS chunk NER).

    Raises DataError naming the file and line for a wrong column count, a tag column the file does not have
    (naming the columns found), and for a missing or empty file. Any tag is read: readers/schemes.py checks them."""
    path = Path(path)
    sentences = [sentence for _, sentence in iter_conll(path, tag_column)]
    if not sentences:
        raise DataError(f"{path} holds no sentences — expected CoNLL columns (word ... tag)")
    return sentences


def iter_conll(path: str | Path, tag_column: int = -1) -> Iterator[tuple[int, NerSentence]]:
    """The sentences of a CoNLL column file one at a time, each with the line number of its first token; the
    checks of `read_conll`, except that a file without sentences yields nothing."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"CoNLL file {path} does not exist")
    words: list[str] = []
    tags: list[str] = []
    column_count = first_line = 0
    try:
        with path.open(encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                fields = line.split()
                if not fields or fields[0] == "-DOCSTART-":
                    if words:
                        yield first_line, NerSentence(tuple(words), tuple(tags))
                        words, tags = [], []
                    continue
                if not column_count:
                    column_count = len(fields)
                    check_tag_column(path, line_number, column_count, tag_column)
                if len(fields) != column_count or column_count < 2:
                    raise DataError(
                        f"{path}, line {line_number}: expected {max(column_count, 2)} space-separated columns "
                        f"(word ... tag), got {len(fields)}"
                    )
                first_line = first_line if words else line_number
                words.append(fields[0])
                tags.append(fields[tag_column])
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    if words:
        yield first_line, NerSentence(tuple(words), tuple(tags))


def check_tag_column(path: Path, line_number: int, column_count: int, tag_column: int) -> None:
    """DataError when the tag column is the word column or past the file's columns, listing the columns found."""
    if column_count >= 2 and -column_count < tag_column < column_count and tag_column not in (0, -column_count):
        return
    found = f"0 (the word) to {column_count - 1}" if column_count >= 2 else "only the word (column 0)"
    raise DataError(
        f"{path}, line {line_number}: no tag column {tag_column} — the file has {column_count} columns: {found}; "
        "for your own files, name the tag column with --tag-column INDEX (-1 = the last)"
    )


def build_label_list(sentences: Iterable[NerSentence]) -> list[str]:
    """The tag vocabulary in a stable order: "O" first (id 0) when it is a tag, then the other tags sorted. Build
    it from the training split and reuse it for every other split. Span tags are completed per type: every type
    seen gets each prefix its scheme has (B-/I-, and E-/S- for BIOES), so a chunk shape the training split lacks
    (CoNLL-2003 chunking: two-word PRT chunks, I-PRT, only in dev and test) is still a label."""
    tags = {tag for sentence in sentences for tag in sentence.tags}
    spans = {tag for tag in tags if len(tag) > 2 and tag[1] == "-" and tag[0] in "BIES"}
    prefixes = "BIES" if any(tag[0] in "ES" for tag in spans) else "BI"
    tags |= {f"{prefix}-{tag[2:]}" for tag in spans for prefix in prefixes}
    return ["O"] * ("O" in tags) + sorted(tags - {"O"})


def to_iob2(tags: Sequence[str]) -> list[str]:
    """IOB1 → IOB2: an I-X that begins an entity (after O or after another type) becomes B-X, as the
    HF `conll2003` dataset stores it. Entities decode the same either way, so entity F1 is unchanged."""
    converted: list[str] = []
    previous = "O"
    for tag in tags:
        begins = tag.startswith("I-") and (previous == "O" or previous[2:] != tag[2:])
        converted.append("B-" + tag[2:] if begins else tag)
        previous = tag
    return converted


def as_iob2(sentence: NerSentence, scheme: str) -> NerSentence:
    """IOB1 (or IOB2) tags read as IOB2, as the hub's conll2003 stores them (spans and span F1 are unchanged)."""
    if scheme not in ("iob1", "iob2"):
        return sentence
    return NerSentence(sentence.words, tuple(to_iob2(sentence.tags)))


def conll_file(spec: TaskSpec, root: Path, split: str) -> Path:
    """The column file of a split in a CoNLL folder: the first of the task's file names for it that exists."""
    names = spec.files.get(canonical_split(split))
    if names is None:
        raise ConfigError(f"{spec.title} has no split {split!r} — choose train, dev or test")
    if not root.is_dir():
        raise DataError(f"CoNLL data dir {root} does not exist — pass the folder holding train.txt/valid.txt/test.txt")
    for name in names:
        if (root / name).is_file():
            return root / name
    raise DataError(f"no {' or '.join(names)} in {root} for the CoNLL {split} split")
