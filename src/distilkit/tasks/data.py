"""Task examples → features → batches, shared by finetune, task-distill and evaluate: encode a split (a list of
examples, or your own file streamed chunk by chunk) into a TaskData, add unlabeled inputs to a training set, and
cut length-grouped batches padded into tensors.

The examples come from tasks/readers/; how each kind of example is tokenised is in tasks/features.py.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from distilkit.errors import DataError
from distilkit.models.teacher import ARCHS, tokenizer_inputs
from distilkit.tasks.features import (
    IGNORE_INDEX,
    Features,
    align_labels,
    encode_glue,
    prepare_eval_features,
    prepare_train_features,
)
from distilkit.tasks.readers.glue import Example
from distilkit.tasks.readers.labels import LabelScan
from distilkit.tasks.readers.own_data import OwnData, Reader, final_labels
from distilkit.tasks.readers.splits import sample_indices
from distilkit.tasks.readers.tables import CHUNK_ROWS
from distilkit.tasks.registry import TaskSpec

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


# ---------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------


@dataclass
class TaskData:
    """Encoded examples of one split. features: model inputs and training targets, one row per feature (a long
    SQuAD context gives several), in flat arrays (features.Features; a dict of lists is converted); post: what
    maps predictions back to examples (word_ids, example_id, offsets). examples is None for a streamed training
    file, whose text is not kept: num_examples still counts them. has_pair: the examples are text pairs."""

    spec: TaskSpec
    examples: list | None
    features: Features
    post: dict[str, list] = field(default_factory=dict)
    num_examples: int = -1
    has_pair: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.features, Features):
            self.features = Features.from_columns(self.features)
        if self.num_examples < 0:
            self.num_examples = len(self.examples) if self.examples is not None else self.features.num_rows

    def __len__(self) -> int:
        return self.features.num_rows

    @property
    def lengths(self) -> np.ndarray:
        return self.features.lengths

    def fingerprint(self) -> str:
        """sha256 of every feature (inputs and targets): changes with the data, the tokenizer, max_len, stride."""
        digest = hashlib.sha256(self.spec.name.encode())
        self.features.update_digest(digest)
        return digest.hexdigest()


def encode(
    spec: TaskSpec,
    examples: list,
    tokenizer: PreTrainedTokenizerBase,
    max_len: int,
    stride: int = 128,
    train: bool = True,
) -> TaskData:
    """Model features of `examples`. train=True builds training targets (SQuAD: start/end positions);
    train=False keeps what evaluation needs (SQuAD: example_id and offsets of every window)."""
    if not examples:
        raise DataError(f"no {spec.name} examples to encode")
    if spec.kind == "qa":
        if train:
            return TaskData(spec, examples, prepare_train_features(examples, tokenizer, max_len, stride))
        encoded = prepare_eval_features(examples, tokenizer, max_len, stride)
        post = {"example_id": encoded.pop("example_id"), "offset_mapping": encoded.pop("offset_mapping")}
        return TaskData(spec, examples, encoded, post)
    if spec.kind == "token-classification":
        encoded = align_labels(examples, tokenizer, {tag: i for i, tag in enumerate(spec.labels)}, max_len)
        return TaskData(spec, examples, encoded, {"word_ids": encoded.pop("word_ids")})
    pair = examples[0].text_pair is not None
    return TaskData(spec, examples, encode_glue(examples, tokenizer, max_len), has_pair=pair)


def encode_split(
    spec: TaskSpec,
    own: OwnData,
    split: str,
    tokenizer: Any,
    max_len: int,
    stride: int = 128,
    train: bool = True,
    sample: int | None = None,
    seed: int = 42,
    label_source: str = "training",
    chunk_rows: int = CHUNK_ROWS,
    keep: bool = False,
) -> TaskData:
    """Read and encode one split chunk by chunk into flat feature arrays (features.Features). Training splits
    keep no example text (TaskData.examples is None) unless `keep`; evaluation splits keep their examples for
    predictions. A classification or token spec without labels takes the split's own label set (the returned
    TaskData.spec holds it), found in the same pass: rows are encoded with provisional ids, remapped at the end.
    sample: a seeded sample of this many examples (the indices `data.subsample` would keep, in file order); a
    first pass counts the examples (and finds the label set). label_source names where spec.labels came from in
    the error for a label outside them ("training", "model's"). chunk_rows: rows read and tokenised at a time.
    Token tags: the spec's scheme checks every tag, or (None) the scheme is detected, and the TaskData.spec holds
    it (readers/schemes.py)."""
    reader = Reader(own, spec, split, label_source)
    scan = None
    if spec.kind in ("classification", "token-classification") and not spec.labels:
        scan = LabelScan(reader.name, reader.columns.label if reader.columns else "")
    label_ids = {name: index for index, name in enumerate(spec.labels)} if spec.labels else None
    keep_array = None
    if sample is not None:
        total = sum(len(chunk) for chunk in reader.chunks(label_ids, scan, size=chunk_rows))
        keep_array = np.asarray(sample_indices(total, sample, seed), dtype=np.int64)
        if scan is not None:  # the label set is known now: the encoding pass maps labels to their final ids
            spec, scan = replace(spec, labels=tuple(final_labels(spec, scan, reader.name))), None
            label_ids = {name: index for index, name in enumerate(spec.labels)}
    parts, kept, post, first, count, pair = [], [], {}, 0, 0, False
    for chunk in reader.chunks(label_ids if scan is None else scan.ids, scan, size=chunk_rows):
        if keep_array is not None:
            low, high = np.searchsorted(keep_array, [first, first + len(chunk)])
            chunk, first = [chunk[index - first] for index in keep_array[low:high]], first + len(chunk)
        if not chunk:
            continue
        encoded = encode(spec if scan is None else replace(spec, labels=tuple(scan.ids)), chunk, tokenizer, max_len,
                         stride, train=train)  # fmt: skip
        parts.append(encoded.features)
        count, pair = count + len(chunk), encoded.has_pair
        if keep or not train:
            kept.extend(chunk)
        if not train:
            for name, values in encoded.post.items():
                post.setdefault(name, []).extend(values)
    if count == 0:
        raise DataError(f"{reader.name or split} holds no examples")
    spec = spec.with_scheme(reader.scheme())  # token tags: the scheme read, hence the metrics
    features = Features.concat(parts, consume=True)
    if scan is not None:
        spec = replace(spec, labels=tuple(final_labels(spec, scan, reader.name)))
        _remap_labels(features, scan.remap(spec.labels), kept)
    examples = kept if keep or not train else None
    return TaskData(spec, examples, features, post, num_examples=count, has_pair=pair)


def _remap_labels(features: Features, lut: np.ndarray, examples: list) -> None:
    """Provisional label ids → final ones, in the features (per row, or per token outside IGNORE_INDEX) and in
    kept classification examples."""
    values = features.rows["labels"] if "labels" in features.rows else features.tokens["labels"]
    known = values != IGNORE_INDEX
    values[known] = lut[values[known]]
    for index, example in enumerate(examples):
        if isinstance(example, Example) and example.label is not None:
            examples[index] = Example(example.text, example.text_pair, int(lut[example.label]))


# ---------------------------------------------------------------------------------------------
# Unlabeled inputs (task-distill --unlabeled, --augment)
# ---------------------------------------------------------------------------------------------


def unlabeled_label(kind: str) -> int | float:
    """The label of an unlabeled example: IGNORE_INDEX for a class, NaN for a regression score."""
    return math.nan if kind == "regression" else IGNORE_INDEX


def is_unlabeled(labels: Any, kind: str) -> Any:
    """Per-row mask of the unlabeled rows of a batch's `labels` tensor."""
    return labels.isnan() if kind == "regression" else labels == IGNORE_INDEX


def with_unlabeled(
    train: TaskData, unlabeled: list[Example], tokenizer: Any, max_len: int
) -> tuple[TaskData, TaskData]:
    """(the training set: labelled features then unlabeled ones labelled `unlabeled_label`, the unlabeled
    features alone — their fingerprint keys their own teacher-logit store). The labelled features are reused as
    encoded: a streamed training file keeps no text to encode again."""
    spec = train.spec
    alone = encode(spec, unlabeled, tokenizer, max_len)
    labels = np.full(len(alone), unlabeled_label(spec.kind), dtype=train.features.rows["labels"].dtype)
    marked = Features(alone.features.offsets, alone.features.tokens, {"labels": labels}, alone.features.constants)
    features = Features.concat([train.features, marked])
    union = TaskData(spec, None, features, num_examples=train.num_examples + len(unlabeled), has_pair=train.has_pair)
    return union, alone


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------


def train_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """One epoch of index batches, length-grouped: shuffle, sort by length within windows of 50 batches, cut,
    shuffle the batches. Little padding, still random; a pure function of (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    window = 50 * batch_size
    batches = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def eval_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Index batches sorted by length (longest first), so evaluation pads little; callers restore the order."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def collate(features: Features | dict[str, list], indices: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad the rows `indices` of `features` into tensors: input_ids with pad_id, masks and segments with 0,
    per-token labels with -100; scalar targets as long (float for regression scores). Adds "index"."""
    if not isinstance(features, Features):
        features = Features.from_columns(features)
    return features.batch(indices, pad_id)


def model_inputs(batch: dict[str, Any], config: Any = None) -> dict[str, torch.Tensor]:
    """The batch's tensors a model is fed. With the model's config, only those its architecture takes
    (`models.teacher.tokenizer_inputs`: XLM and FlauBERT must not get token_type_ids)."""
    names = MODEL_INPUTS
    if config is not None and getattr(config, "model_type", None) in ARCHS:
        names = tokenizer_inputs(config)
    return {name: batch[name] for name in names if name in batch}
