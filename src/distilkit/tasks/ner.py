"""CoNLL-2003 NER: read the column files, align word-level tags to sub-word tokens, and map token-level
predictions back to one tag per word for the entity F1 in `distilkit.tasks.metrics.entity_scores`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from distilkit.errors import DataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100  # the label torch.nn.CrossEntropyLoss (and transformers' token heads) skip
_TAG = re.compile(r"O|[BIES]-\S+")


@dataclass(frozen=True)
class NerSentence:
    """One sentence: its words and one NER tag per word (as in the file, e.g. IOB1 for CoNLL-2003)."""

    words: tuple[str, ...]
    tags: tuple[str, ...]


def read_conll(path: str | Path) -> list[NerSentence]:
    """Read a CoNLL column file: one token per line (word = first column, NER tag = last column), a blank line
    between sentences, `-DOCSTART-` document lines skipped. Every token line must have as many columns as the
    file's first one (4 for CoNLL-2003: word POS chunk NER).

    Raises DataError naming the file and line for a wrong column count or a tag that is not O/B-X/I-X/E-X/S-X,
    and for a missing or empty file."""
    path = Path(path)
    sentences = [sentence for _, sentence in iter_conll(path)]
    if not sentences:
        raise DataError(f"{path} holds no sentences — expected CoNLL columns (word ... tag)")
    return sentences


def iter_conll(path: str | Path) -> Iterator[tuple[int, NerSentence]]:
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
                column_count = column_count or len(fields)
                if len(fields) != column_count or column_count < 2:
                    raise DataError(
                        f"{path}, line {line_number}: expected {max(column_count, 2)} space-separated columns "
                        f"(word ... tag), got {len(fields)}"
                    )
                if not _TAG.fullmatch(fields[-1]):
                    raise DataError(f"{path}, line {line_number}: {fields[-1]!r} is not an NER tag (O, B-X or I-X)")
                first_line = first_line if words else line_number
                words.append(fields[0])
                tags.append(fields[-1])
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    if words:
        yield first_line, NerSentence(tuple(words), tuple(tags))


def is_tag(tag: str) -> bool:
    """O, or B-/I-/E-/S- followed by an entity type: the tags entity F1 decodes."""
    return bool(_TAG.fullmatch(tag))


def build_label_list(sentences: Iterable[NerSentence]) -> list[str]:
    """The tag vocabulary in a stable order: "O" first (id 0), then the other tags sorted. Build it from the
    training split and reuse it for every other split."""
    tags = {tag for sentence in sentences for tag in sentence.tags}
    return ["O", *sorted(tags - {"O"})]


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


def align_labels(
    sentences: Sequence[NerSentence],
    tokenizer: PreTrainedTokenizerBase,
    label_to_id: Mapping[str, int],
    max_len: int,
    label_all_subwords: bool = False,
) -> dict[str, list]:
    """Tokenise pre-split words (is_split_into_words=True, truncation to max_len) and give each token a label.

    The first sub-token of a word gets the word's tag id; later sub-tokens get IGNORE_INDEX (-100), or, with
    label_all_subwords, the tag's I- form (as run_ner.py's label_all_tokens); special tokens get -100.
    Returns input_ids, attention_mask, token_type_ids (if made), labels, and word_ids (per token the word index
    or None) — drop word_ids before the model and keep it for `predictions_to_tags`. Needs a fast tokenizer.
    Raises DataError when a tag is missing from label_to_id."""
    if not sentences:
        raise ValueError("no sentences to encode")
    unknown = sorted({tag for sentence in sentences for tag in sentence.tags} - set(label_to_id))
    if unknown:
        raise DataError(
            f"tag {unknown[0]!r} is not in the label list ({', '.join(label_to_id)}) "
            f"— build the label list from the training file"
        )
    encoded = tokenizer(
        [list(sentence.words) for sentence in sentences], is_split_into_words=True, truncation=True, max_length=max_len
    )
    all_labels: list[list[int]] = []
    all_word_ids: list[list[int | None]] = []
    for index, sentence in enumerate(sentences):
        word_ids = encoded.word_ids(index)
        labels: list[int] = []
        previous_word = None
        for word_id in word_ids:
            if word_id is None:
                labels.append(IGNORE_INDEX)
            elif word_id != previous_word:
                labels.append(label_to_id[sentence.tags[word_id]])
            elif label_all_subwords:
                tag = sentence.tags[word_id]
                inside = "I-" + tag[2:] if tag.startswith("B-") else tag
                labels.append(label_to_id.get(inside, label_to_id[tag]))
            else:
                labels.append(IGNORE_INDEX)
            previous_word = word_id
        all_labels.append(labels)
        all_word_ids.append(list(word_ids))
    features = {key: list(encoded[key]) for key in ("input_ids", "attention_mask", "token_type_ids") if key in encoded}
    return {**features, "labels": all_labels, "word_ids": all_word_ids}


def predictions_to_tags(
    predictions: Sequence[ArrayLike],
    word_ids: Sequence[Sequence[int | None]],
    label_list: Sequence[str],
    num_words: Sequence[int],
) -> list[list[str]]:
    """One predicted tag per word, read at each word's first sub-token.

    predictions: per sentence, (seq_len,) label ids or (seq_len, num_labels) logits; rows may be longer than the
    sentence's tokens (batch padding). word_ids: from `align_labels`. num_words: words per sentence. Words with no
    token (cut by truncation) get "O", so they count as missed entities against the full gold tags."""
    if not len(predictions) == len(word_ids) == len(num_words):
        raise ValueError(f"{len(predictions)} prediction rows, {len(word_ids)} word_ids, {len(num_words)} sentences")
    all_tags: list[list[str]] = []
    for row, token_words, word_count in zip(predictions, word_ids, num_words, strict=True):
        label_ids = np.asarray(row)
        if label_ids.ndim == 2:
            label_ids = label_ids.argmax(axis=-1)
        tags = ["O"] * word_count
        previous_word = None
        for position, word_id in enumerate(token_words):
            if word_id is not None and word_id != previous_word:
                tags[word_id] = label_list[int(label_ids[position])]
            previous_word = word_id
        all_tags.append(tags)
    return all_tags
