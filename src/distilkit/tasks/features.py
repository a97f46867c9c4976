"""Examples → model features: the tokenisation of each kind of example (text pairs, NER sentences, SQuAD
questions as sliding windows — the preprocessing of transformers' run_glue/run_ner/run_qa), and the flat numpy
arrays the features are kept in.

`Features`: every per-token column (input_ids, masks, NER labels) of all rows concatenated into one array cut by
shared offsets, every per-row column (class labels, scores, QA positions) one array — no Python list per row, so a
million-row training file costs a few bytes per token, as data/prepare.py's shards do: ids as uint16 when they fit
(int32 otherwise), and a mask or segment column that holds one value everywhere (attention_mask of unpadded rows,
token_type_ids of single texts) as that value alone. `Features.concat` joins encoded chunks; `Features.batch` pads
a batch of rows into tensors.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from distilkit.errors import ConfigError, DataError
from distilkit.tasks.readers.glue import Example
from distilkit.tasks.readers.ner import NerSentence
from distilkit.tasks.readers.squad import SquadExample

if TYPE_CHECKING:
    from transformers import BatchEncoding, PreTrainedTokenizerBase

IGNORE_INDEX = -100  # the label torch.nn.CrossEntropyLoss (and transformers' token heads) skip
Offsets = tuple[int, int] | None

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


# ---------------------------------------------------------------------------------------------
# Tokenisation of each kind of example
# ---------------------------------------------------------------------------------------------


def encode_glue(examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase, max_len: int) -> dict[str, list]:
    """Tokenise examples (pairs as `tokenizer(text, text_pair, truncation=True, max_length=max_len)`), unpadded.

    Returns columns of equal length: input_ids, attention_mask, token_type_ids (when the tokenizer makes them),
    and labels (int ids, or float scores for STS-B) unless every example is unlabelled. Pad per batch with
    `transformers.DataCollatorWithPadding`."""
    if not examples:
        raise ValueError("no examples to encode")
    has_pair = [example.text_pair is not None for example in examples]
    if any(has_pair) and not all(has_pair):
        raise ValueError("examples mix single sentences and sentence pairs")
    pairs = [example.text_pair for example in examples] if has_pair[0] else None
    encoded = tokenizer([example.text for example in examples], pairs, truncation=True, max_length=max_len)
    features = {key: list(encoded[key]) for key in ("input_ids", "attention_mask", "token_type_ids") if key in encoded}
    labels = [example.label for example in examples]
    labelled = [label is not None for label in labels]
    if any(labelled) and not all(labelled):
        raise ValueError("examples mix labelled and unlabelled examples")
    if labelled[0]:
        features["labels"] = labels
    return features


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


def _tokenize_windows(
    examples: Sequence[SquadExample], tokenizer: PreTrainedTokenizerBase, max_len: int, stride: int
) -> BatchEncoding:
    """question + context windows of at most max_len tokens, consecutive windows sharing `stride` tokens."""
    if not examples:
        raise ValueError("no examples to encode")
    if not 0 <= stride < max_len:
        raise ConfigError(f"stride must be in [0, max_len), got stride={stride}, max_len={max_len}")
    # Leading whitespace in some questions only wastes window space (run_qa.py strips it too).
    questions = [example.question.lstrip() for example in examples]
    # The tokenizers library panics (not an exception) when no window longer than the stride fits next to a
    # question, so check first.
    room = max_len - tokenizer.num_special_tokens_to_add(pair=True) - stride
    for example, ids in zip(examples, tokenizer(questions, add_special_tokens=False)["input_ids"], strict=True):
        if len(ids) >= room:
            raise ConfigError(
                f"question {example.id} has {len(ids)} tokens, too long for max_len={max_len} with stride={stride} "
                f"— raise max_len or lower stride"
            )
    return tokenizer(
        questions,
        [example.context for example in examples],
        truncation="only_second",
        max_length=max_len,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )


def _model_inputs(encoded: BatchEncoding) -> dict[str, list]:
    return {key: list(encoded[key]) for key in ("input_ids", "attention_mask", "token_type_ids") if key in encoded}


def prepare_train_features(
    examples: Sequence[SquadExample], tokenizer: PreTrainedTokenizerBase, max_len: int = 384, stride: int = 128
) -> dict[str, list]:
    """Training features as in run_qa.py: one feature per window (a long context gives several), unpadded.

    Returns input_ids, attention_mask, token_type_ids (if the tokenizer makes them), start_positions and
    end_positions: the token indices of the first answer's first and last token, or both the CLS index when the
    answer is not wholly inside the window. Needs a fast tokenizer (offsets); question first, context second."""
    encoded = _tokenize_windows(examples, tokenizer, max_len, stride)
    start_positions: list[int] = []
    end_positions: list[int] = []
    for window, offsets in enumerate(encoded["offset_mapping"]):
        example = examples[encoded["overflow_to_sample_mapping"][window]]
        input_ids = encoded["input_ids"][window]
        cls_index = input_ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in input_ids else 0
        context_tokens = [index for index, sequence in enumerate(encoded.sequence_ids(window)) if sequence == 1]
        first, last = context_tokens[0], context_tokens[-1]
        start_char = example.answer_starts[0]
        end_char = start_char + len(example.answers[0])
        if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
            start_positions.append(cls_index)
            end_positions.append(cls_index)
            continue
        start = first
        while start <= last and offsets[start][0] <= start_char:
            start += 1
        end = last
        while end >= first and offsets[end][1] >= end_char:
            end -= 1
        start_positions.append(start - 1)
        end_positions.append(end + 1)
    return {**_model_inputs(encoded), "start_positions": start_positions, "end_positions": end_positions}


def prepare_eval_features(
    examples: Sequence[SquadExample], tokenizer: PreTrainedTokenizerBase, max_len: int = 384, stride: int = 128
) -> dict[str, list]:
    """Evaluation features as in run_qa.py: the model inputs of every window plus, for post-processing,
    example_id (the question id of each window) and offset_mapping (per token the (start, end) character span
    in the context, None for question and special tokens). Drop those two columns before calling the model."""
    encoded = _tokenize_windows(examples, tokenizer, max_len, stride)
    example_ids: list[str] = []
    context_offsets: list[list[Offsets]] = []
    for window, offsets in enumerate(encoded["offset_mapping"]):
        example_ids.append(examples[encoded["overflow_to_sample_mapping"][window]].id)
        sequence_ids = encoded.sequence_ids(window)
        context_offsets.append(
            [tuple(span) if sequence_ids[index] == 1 else None for index, span in enumerate(offsets)]
        )
    return {**_model_inputs(encoded), "example_id": example_ids, "offset_mapping": context_offsets}
