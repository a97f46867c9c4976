"""GLUE: read a task's TSV files (official GLUE layout) into examples, and tokenise them into model features.

Every task is one `GlueTask` record in `GLUE_TASKS` — file names, header columns, label set — so the
reader is a single function with no per-task branches. Metrics live in `distilkit.tasks.metrics`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from distilkit.errors import ConfigError, DataError
from distilkit.tasks.metrics import canonical_task, squash_task_name

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class Example:
    """One GLUE example. label: index into `GlueTask.labels`, a float score for STS-B, None when the split
    is unlabelled (GLUE test files)."""

    text: str
    text_pair: str | None
    label: int | float | None


@dataclass(frozen=True)
class GlueTask:
    """Where a GLUE task's data lives and how to read it.

    files: split → file name inside the task folder `dir_name`.
    text_columns: header names of the one or two text columns. label_column: header name of the label.
    labels: label strings in id order (id = position); empty for regression (STS-B).
    headerless_columns / headerless_splits: column names to use for splits whose files have no header
    (CoLA train/dev). unlabelled_splits: splits allowed to lack the label column (GLUE test files)."""

    name: str
    dir_name: str
    files: Mapping[str, str]
    text_columns: tuple[str, ...]
    label_column: str
    labels: tuple[str, ...]
    headerless_columns: tuple[str, ...] = ()
    headerless_splits: frozenset[str] = frozenset()
    unlabelled_splits: frozenset[str] = frozenset({"test"})

    @property
    def is_regression(self) -> bool:
        return not self.labels

    @property
    def num_labels(self) -> int:
        """Size of the classifier head: 1 for regression, else the number of classes."""
        return 1 if self.is_regression else len(self.labels)


def _splits(**extra: str) -> Mapping[str, str]:
    return MappingProxyType({"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv", **extra})


_NLI = ("entailment", "not_entailment")

# Columns and label orders are those of the GLUE release and of the transformers GLUE processors
# (e.g. MNLI ids 0/1/2 = contradiction/entailment/neutral), so checkpoints fine-tuned elsewhere line up.
GLUE_TASKS: Mapping[str, GlueTask] = MappingProxyType(
    {
        "cola": GlueTask(
            "cola",
            "CoLA",
            _splits(),
            ("sentence",),
            "label",
            ("0", "1"),
            headerless_columns=("source", "label", "original_label", "sentence"),
            headerless_splits=frozenset({"train", "dev"}),
        ),
        "sst2": GlueTask("sst2", "SST-2", _splits(), ("sentence",), "label", ("0", "1")),
        "mrpc": GlueTask(
            "mrpc",
            "MRPC",
            # The labelled original MSR test file has the train header, so it reads like train.tsv.
            _splits(test_with_labels="msr_paraphrase_test.txt"),
            ("#1 String", "#2 String"),
            "Quality",
            ("0", "1"),
        ),
        "stsb": GlueTask(
            "stsb",
            "STS-B",
            _splits(test_with_scores="test_with_scores.tsv"),
            ("sentence1", "sentence2"),
            "score",
            (),
        ),
        "qqp": GlueTask("qqp", "QQP", _splits(), ("question1", "question2"), "is_duplicate", ("0", "1")),
        "mnli": GlueTask(
            "mnli",
            "MNLI",
            MappingProxyType(
                {
                    "train": "train.tsv",
                    "dev_matched": "dev_matched.tsv",
                    "dev_mismatched": "dev_mismatched.tsv",
                    "test_matched": "test_matched.tsv",
                    "test_mismatched": "test_mismatched.tsv",
                }
            ),
            ("sentence1", "sentence2"),
            "gold_label",
            ("contradiction", "entailment", "neutral"),
            unlabelled_splits=frozenset({"test_matched", "test_mismatched"}),
        ),
        "qnli": GlueTask("qnli", "QNLI", _splits(), ("question", "sentence"), "label", _NLI),
        "rte": GlueTask("rte", "RTE", _splits(), ("sentence1", "sentence2"), "label", _NLI),
        "wnli": GlueTask("wnli", "WNLI", _splits(), ("sentence1", "sentence2"), "label", ("0", "1")),
    }
)

_SPLIT_ALIASES = MappingProxyType({"validation": "dev", "valid": "dev", "val": "dev"})


def get_glue_task(name: str) -> GlueTask:
    """The `GlueTask` for any spelling of a GLUE task name ("SST-2", "sst2", "sts-b", "MNLI-mm", ...)."""
    try:
        key = canonical_task(name)
    except ConfigError:
        key = ""
    if key not in GLUE_TASKS:
        raise ConfigError(f"unknown GLUE task {name!r} — choose one of: {', '.join(GLUE_TASKS)}")
    return GLUE_TASKS[key]


def resolve_split(task: str, split: str) -> str:
    """The `GlueTask.files` key for `split` of `task`: "validation"/"valid" → "dev"; for MNLI, "dev"/"test"
    → "dev_matched"/"test_matched", or "_mismatched" when the task is spelled "mnli-mm"."""
    spec = get_glue_task(task)
    key = split.strip().lower().replace("-", "_")
    head, _, tail = key.partition("_")
    key = "_".join(filter(None, [_SPLIT_ALIASES.get(head, head), tail]))
    if spec.name == "mnli" and key in ("dev", "test"):
        mismatched = squash_task_name(task) in ("mnlimm", "mnlimismatched")
        key += "_mismatched" if mismatched else "_matched"
    if key not in spec.files:
        raise ConfigError(f"GLUE task {spec.name} has no split {split!r} — choose one of: {', '.join(spec.files)}")
    return key


def glue_file(task: str, data_dir: str | Path, split: str) -> Path:
    """Path of a split's TSV. data_dir is the task folder (glue/SST-2) or the GLUE root holding it (glue/)."""
    spec = get_glue_task(task)
    file_name = spec.files[resolve_split(task, split)]
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"GLUE data dir {root} does not exist — pass the task folder (e.g. glue/{spec.dir_name})")
    candidates = [root / spec.dir_name / file_name, root / file_name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DataError(f"no {file_name} for {spec.dir_name} in {root} (looked for {' and '.join(map(str, candidates))})")


def read_glue(task: str, data_dir: str | Path, split: str = "train") -> list[Example]:
    """Read one split of a GLUE task into `Example`s, in file order, texts stripped of surrounding whitespace.

    task: any spelling `get_glue_task` accepts; data_dir: see `glue_file`; split: train/dev/test (or a task's
    extra split such as "test_with_scores"). Files are read as GLUE ships them: UTF-8 (BOM allowed), tab-separated,
    no quoting. A split without the label column (GLUE test) gives label None.
    Raises ConfigError for an unknown task/split and DataError naming the file and line for a missing or empty
    file, a wrong column count, a missing column (the label column may only be missing from test splits), or a
    label outside the task's label set."""
    spec = get_glue_task(task)
    split_key = resolve_split(task, split)
    path = glue_file(task, data_dir, split)
    header: tuple[str, ...] | None = spec.headerless_columns if split_key in spec.headerless_splits else None
    needs_label = split_key not in spec.unlabelled_splits
    columns = _column_indices(spec, header, path, needs_label) if header else None
    examples: list[Example] = []
    row_count = 0
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            for row in reader:
                if not row:
                    continue
                row_count += 1
                if header is None:
                    header = tuple(name.strip() for name in row)
                    columns = _column_indices(spec, header, path, needs_label)
                    continue
                if len(row) != len(header):
                    raise DataError(
                        f"{path}, line {reader.line_num}: expected {len(header)} tab-separated columns, got {len(row)}"
                    )
                text_indices, label_index = columns
                texts = [row[index].strip() for index in text_indices]
                label = None if label_index is None else _parse_label(spec, row[label_index], path, reader.line_num)
                examples.append(Example(texts[0], texts[1] if len(texts) > 1 else None, label))
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    if row_count == 0:
        raise DataError(f"{path} is empty — expected a GLUE {spec.dir_name} TSV")
    if not examples:
        raise DataError(f"{path} has no examples, only a header")
    return examples


def _column_indices(
    spec: GlueTask, header: tuple[str, ...], path: Path, needs_label: bool
) -> tuple[list[int], int | None]:
    required = spec.text_columns + ((spec.label_column,) if needs_label else ())
    missing = [name for name in required if name not in header]
    if missing:
        raise DataError(f"{path}: header has no column {missing[0]!r} (found: {', '.join(header)})")
    label_index = header.index(spec.label_column) if spec.label_column in header else None
    return [header.index(name) for name in spec.text_columns], label_index


def _parse_label(spec: GlueTask, value: str, path: Path, line: int) -> int | float:
    value = value.strip()
    if spec.is_regression:
        try:
            score = float(value)
        except ValueError:
            score = math.nan
        if not math.isfinite(score):
            raise DataError(f"{path}, line {line}: {spec.label_column} {value!r} is not a number")
        return score
    if value not in spec.labels:
        raise DataError(
            f"{path}, line {line}: {spec.label_column} {value!r} is not one of {', '.join(spec.labels)} "
            f"— is this a {spec.dir_name} file?"
        )
    return spec.labels.index(value)


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
