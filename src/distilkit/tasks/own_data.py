"""Your own labelled data for finetune, task-distill and evaluate: --train/--dev/--test files (CSV, TSV, JSON Lines,
Parquet, CoNLL columns, SQuAD JSON) or a `datasets` dataset (--dataset NAME or a save_to_disk folder), read as the
problem type --task names. Finds the columns, takes the label set from the training split (sorted; integers
numerically), checks every label, and encodes a split chunk by chunk into flat feature arrays.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from distilkit.errors import ConfigError, DataError
from distilkit.tasks import glue, ner, squad
from distilkit.tasks.data import TaskData, TaskSpec, encode, own_data_only, sample_indices
from distilkit.tasks.features import Features
from distilkit.tasks.labels import LabelScan, class_label, label_list, score_label
from distilkit.tasks.tables import CHUNK_ROWS, Batch, Table, open_table

# Column names tried in order when no --*-column flag names one: those of HF datasets and the GLUE files.
TEXT_COLUMNS = ("text", "sentence", "sentence1")
PAIR_COLUMNS = ("text_pair", "sentence2")
LABEL_COLUMNS = ("label",)
TOKEN_COLUMNS = ("tokens", "words")
TAG_COLUMNS = ("tags", "ner_tags")
QA_COLUMNS = ("id", "question", "context", "answers")  # HF squad rows; "title" is read when present
SPLIT_FLAGS = {"train": "--train", "dev": "--dev", "test": "--test"}
SPLIT_ALIASES = {"validation": "dev", "valid": "dev", "val": "dev"}


@dataclass(frozen=True, kw_only=True)
class OwnDataFlags:
    """The own-data flags finetune, task-distill and evaluate share (their configs inherit them): files per split
    or a `datasets` dataset, and the columns to read (None: the defaults above). Training adds --train."""

    dev: str | None = None  # scored after training / by evaluate
    test: str | None = None  # labels optional: without them, predictions only
    dataset: str | None = None  # hub name or save_to_disk folder with train / validation / test splits
    dataset_config: str | None = None  # configuration of a hub --dataset
    text_column: str | None = None  # default: text, else sentence (sentence1 with a sentence2 pair); tokens
    text_pair_column: str | None = None  # default: text_pair, else sentence2; none found → single text
    label_column: str | None = None  # default: label; tags (or ner_tags) for token-classification


@dataclass(frozen=True, kw_only=True)
class OwnData(OwnDataFlags):
    """Where the user's splits are (files per split, or a `datasets` dataset) and which columns to read."""

    train: str | None = None

    @classmethod
    def of(cls, config: Any) -> OwnData | None:
        """The own-data flags of a command config; None when it reads a benchmark (--data)."""
        own = cls(**{field.name: getattr(config, field.name, None) for field in fields(cls)})
        return own if own.files or own.dataset else None

    @property
    def files(self) -> dict[str, str]:
        return {split: path for split, path in (("train", self.train), ("dev", self.dev), ("test", self.test)) if path}


def source_problems(config: Any, task: str | None, splits: Sequence[str]) -> list[str]:
    """What is wrong with a config's data flags: --data xor own files xor --dataset; the files `splits` needs."""
    own = OwnData(**{field.name: getattr(config, field.name, None) for field in fields(OwnData)})
    data = config.data
    problems = []
    if own.files and own.dataset:
        problems.append("give --train/--dev/--test files or --dataset, not both")
    if data and (own.files or own.dataset):
        problems.append("--data reads a benchmark folder: give it or your own --train/--dev/--test or --dataset")
    if not (data or own.files or own.dataset):
        problems.append("no data: give --train and --dev files, --dataset NAME or folder, or --data (a benchmark)")
    if own.dataset_config and not own.dataset:
        problems.append("--dataset-config needs --dataset")
    flags = [f"--{name.replace('_', '-')}" for name in ("text_column", "text_pair_column", "label_column")]
    if data and any(getattr(own, name) for name in ("text_column", "text_pair_column", "label_column")):
        problems.append(f"{', '.join(flags)} apply to your own files or --dataset, not to --data")
    if data and task is not None and own_data_only(task):
        problems.append(f"--task {task} reads your own data: give --train/--dev files or --dataset, not --data")
    if own.files:
        splits = [SPLIT_ALIASES.get(split, split) for split in splits]
        unknown = [split for split in splits if split not in SPLIT_FLAGS]
        missing = [split for split in splits if split in SPLIT_FLAGS and split not in own.files]
        if unknown:
            problems.append(f"with your own files the splits are train, dev and test, not {unknown[0]!r}")
        for split in missing:
            hint = " (or --eval-split none)" if split != "train" and hasattr(config, "eval_split") else ""
            problems.append(f"{SPLIT_FLAGS[split]} FILE needed for the {split} split{hint}")
    return problems


# ---------------------------------------------------------------------------------------------
# Splits and columns
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Columns:
    """The columns a split is read from. label None: the split is unlabelled (a test file without labels)."""

    text: str
    pair: str | None
    label: str | None


def open_split(own: OwnData, split: str, kind: str) -> Table | list:
    """The table of one split — or, for a SQuAD-format .json file, its questions read whole."""
    split = SPLIT_ALIASES.get(split, split)
    if own.dataset:
        from distilkit.tasks.hub import dataset_table

        return dataset_table(own.dataset, own.dataset_config, split)
    path = own.files.get(split)
    if path is None:
        raise ConfigError(f"no {SPLIT_FLAGS.get(split, split)} FILE for the {split} split")
    if kind == "qa" and Path(path).suffix.lower() == ".json":
        return squad.read_squad(path)
    return open_table(path, conll=kind == "token")


def _pick(table: Table, flag_value: str | None, flag: str, candidates: Sequence[str]) -> str | None:
    if flag_value is not None:
        if flag_value not in table.columns:
            raise DataError(f"{table.name}: no column {flag_value!r} ({flag}) — found: {', '.join(table.columns)}")
        return flag_value
    return next((name for name in candidates if name in table.columns), None)


def _missing(table: Table, what: str, candidates: Sequence[str], flag: str) -> DataError:
    return DataError(
        f"{table.name}: no {what} column (looked for {', '.join(map(repr, candidates))}; found: "
        f"{', '.join(table.columns)}) — name it with {flag}"
    )


def resolve_columns(table: Table, own: OwnData, spec: TaskSpec, split: str) -> Columns:
    """The text, pair and label columns of a table for a problem type; DataError listing the columns found."""
    if spec.kind == "qa":
        absent = [name for name in QA_COLUMNS if name not in table.columns]
        if absent:
            raise DataError(f"{table.name}: no column {absent[0]!r} (found: {', '.join(table.columns)}) — question "
                            f"answering reads SQuAD-format JSON, or rows with {', '.join(QA_COLUMNS)}")  # fmt: skip
        return Columns("question", None, None)
    if spec.kind == "token":
        tokens = _pick(table, own.text_column, "--text-column", TOKEN_COLUMNS)
        tags = _pick(table, own.label_column, "--label-column", TAG_COLUMNS)
        if tokens is None:
            raise _missing(table, "token", TOKEN_COLUMNS, "--text-column")
        if tags is None:
            raise _missing(table, "tag", TAG_COLUMNS, "--label-column")
        return Columns(tokens, None, tags)
    glue_task = glue.GLUE_TASKS.get(spec.name)
    text_names = (glue_task.text_columns[:1] if glue_task else ()) + TEXT_COLUMNS
    pair_names = (glue_task.text_columns[1:] if glue_task else ()) + PAIR_COLUMNS
    label_names = ((glue_task.label_column,) if glue_task else ()) + LABEL_COLUMNS
    text = _pick(table, own.text_column, "--text-column", text_names)
    if text is None:
        raise _missing(table, "text", text_names, "--text-column")
    pair = _pick(table, own.text_pair_column, "--text-pair-column", pair_names)
    if glue_task is not None and len(glue_task.text_columns) > 1 and pair is None:
        raise _missing(table, "text pair", pair_names, "--text-pair-column")
    label = _pick(table, own.label_column, "--label-column", label_names)
    if label is None and split != "test":
        raise _missing(table, "label", label_names, "--label-column")
    return Columns(text, pair if pair != text else None, label)


# ---------------------------------------------------------------------------------------------
# Rows → examples
# ---------------------------------------------------------------------------------------------


def _text(value: Any, where: str) -> str:
    if value is None:
        raise DataError(f"{where}: no text (empty cell)")
    return value if isinstance(value, str) else str(value)


def _sentence(tokens: Any, tags: Any, where: str) -> ner.NerSentence | None:
    if not isinstance(tokens, list) or not all(isinstance(token, str) for token in tokens):
        raise DataError(f"{where}: tokens should be a list of strings, got {type(tokens).__name__}")
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise DataError(f"{where}: tags should be a list of strings (O, B-PER, ...), got {type(tags).__name__}")
    if len(tokens) != len(tags):
        raise DataError(f"{where}: {len(tokens)} tokens but {len(tags)} tags")
    bad = next((tag for tag in tags if not ner.is_tag(tag)), None)
    if bad is not None:
        raise DataError(f"{where}: {bad!r} is not an NER tag (O, or B-/I-/E-/S- and a type, e.g. B-PER)")
    return ner.NerSentence(tuple(tokens), tuple(tags)) if tokens else None


def _qa_example(values: dict[str, Any], where: str, name: str) -> squad.SquadExample:
    answers = values["answers"]
    if isinstance(answers, dict):  # HF rows: {"text": [...], "answer_start": [...]}
        texts, starts = answers.get("text") or [], answers.get("answer_start") or []
        answers = [{"text": text, "answer_start": start} for text, start in zip(texts, starts, strict=False)]
    context, title = values["context"], values.get("title") or ""
    if not isinstance(context, str):
        raise DataError(f"{name}: {where}.context should be a string, got {type(context).__name__}")
    record = {"id": str(values["id"]), "question": values["question"], "answers": answers}
    return squad.read_question(record, str(title), context, where, name)


class Reader:
    """Examples of one split in chunks. label_ids: class name → id (classification), tag → id (token); a label
    outside it is a DataError naming file, row and column. scan: a LabelScan filled instead of mapping labels."""

    def __init__(self, own: OwnData, spec: TaskSpec, split: str, label_source: str = "training") -> None:
        self.source = open_split(own, split, spec.kind)
        self.spec, self.split, self.label_source = spec, split, label_source
        if isinstance(self.source, list):
            self.columns, self.name = None, own.files[SPLIT_ALIASES.get(split, split)]
        else:
            self.columns, self.name = resolve_columns(self.source, own, spec, split), self.source.name

    def wanted(self) -> list[str]:
        if self.spec.kind == "qa":
            return [*QA_COLUMNS, *(["title"] if "title" in self.source.columns else [])]
        return [name for name in (self.columns.text, self.columns.pair, self.columns.label) if name]

    def chunks(
        self, label_ids: Mapping[str, int] | None, scan: LabelScan | None = None, size: int = CHUNK_ROWS
    ) -> Iterator[list]:
        if isinstance(self.source, list):  # SQuAD JSON, read whole
            for start in range(0, len(self.source), size):
                yield self.source[start : start + size]
            return
        for batch in self.source.batches(self.wanted(), size):
            yield self._convert(batch, label_ids, scan)

    def _convert(self, batch: Batch, label_ids: Mapping[str, int] | None, scan: LabelScan | None) -> list:
        kind, columns, values = self.spec.kind, self.columns, batch.values
        examples: list = []
        for row, place in enumerate(batch.where):
            where = f"{self.name}, {place}"
            if kind == "qa":
                examples.append(_qa_example({name: column[row] for name, column in values.items()}, place, self.name))
                continue
            if kind == "token":
                sentence = _sentence(values[columns.text][row], values[columns.label][row], where)
                if sentence is None:
                    continue
                if scan is not None:
                    scan.add_tags(sentence.tags)
                elif label_ids is not None:
                    self._check_tags(sentence, where, label_ids)
                examples.append(sentence)
                continue
            text = _text(values[columns.text][row], f"{where}, column {columns.text!r}")
            pair = _text(values[columns.pair][row], f"{where}, column {columns.pair!r}") if columns.pair else None
            label = None
            if columns.label is not None:
                cell, cell_where = values[columns.label][row], f"{where}, column {columns.label!r}"
                if kind == "regression":
                    label = score_label(cell, cell_where)
                elif scan is not None:
                    label = scan.add(cell, cell_where, place)  # provisional id (LabelScan.remap)
                else:
                    label = self._class_id(cell, cell_where, label_ids or {})
            examples.append(glue.Example(text, pair, label))
        return examples

    def _class_id(self, value: Any, where: str, label_ids: Mapping[str, int]) -> int:
        name = value.strip() if isinstance(value, str) else value
        if name not in label_ids:
            name = class_label(value, where)[0]
        if name not in label_ids:
            raise DataError(
                f"{where}: label {name!r} is not one of the {self.label_source} labels ({label_list(list(label_ids))})"
            )
        return label_ids[name]

    def _check_tags(self, sentence: ner.NerSentence, where: str, label_ids: Mapping[str, int]) -> None:
        unseen = next((tag for tag in sentence.tags if tag not in label_ids), None)
        if unseen is not None:
            raise DataError(
                f"{where}, column {self.columns.label!r}: tag {unseen!r} is not one of the {self.label_source} tags "
                f"({label_list(list(label_ids))})"
            )


# ---------------------------------------------------------------------------------------------
# Label discovery and encoding
# ---------------------------------------------------------------------------------------------


def discover_labels(own: OwnData, spec: TaskSpec) -> list[str]:
    """The label set of the training split (a reading pass of its own; encode_split finds it while encoding)."""
    reader = Reader(own, spec, "train")
    scan = LabelScan(reader.name, reader.columns.label if reader.columns else "")
    for _ in reader.chunks(None, scan):
        pass
    return final_labels(spec, scan, reader.name)


def final_labels(spec: TaskSpec, scan: LabelScan, name: str) -> list[str]:
    """Classes sorted (integers numerically), each checked (one kind per column, two classes at least); NER tags
    with "O" first, then sorted (as the CoNLL reader orders them)."""
    if spec.kind == "token":
        if len(scan.ids) < 2:
            raise DataError(f"{name}: only one tag ({label_list(sorted(scan.ids))}) — nothing to learn")
        return ner.build_label_list([ner.NerSentence((), tuple(scan.ids))])
    return scan.labels()


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
    the error for a label outside them ("training", "model's"). chunk_rows: rows read and tokenised at a time."""
    reader = Reader(own, spec, split, label_source)
    scan = None
    if spec.kind in ("classification", "token") and not spec.labels:
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
    known = values != ner.IGNORE_INDEX
    values[known] = lut[values[known]]
    for index, example in enumerate(examples):
        if isinstance(example, glue.Example) and example.label is not None:
            examples[index] = glue.Example(example.text, example.text_pair, int(lut[example.label]))
