"""Your own labelled data for finetune, task-distill and evaluate: --train/--dev/--test files (CSV, TSV, JSON Lines,
Parquet, CoNLL columns, SQuAD JSON) or a `datasets` dataset (--dataset NAME or a save_to_disk folder), read as the
problem type --task names. Finds the columns, takes the label set from the training split (sorted; integers
numerically) and checks every label, yielding a split's examples chunk by chunk (tasks/data.py's `encode_split`
turns them into flat feature arrays).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from distilkit.errors import ConfigError, DataError
from distilkit.tasks.readers import glue, ner, squad
from distilkit.tasks.readers.labels import LabelScan, class_label, label_list, score_label
from distilkit.tasks.readers.schemes import SchemeScan, check_forced
from distilkit.tasks.readers.tables import CHUNK_ROWS, Batch, ConllTable, Table, open_table
from distilkit.tasks.registry import TaskSpec, canonical_split

# Column names tried in order when no --*-column flag names one: those of HF datasets and the GLUE files.
TEXT_COLUMNS = ("text", "sentence", "sentence1")
PAIR_COLUMNS = ("text_pair", "sentence2")
LABEL_COLUMNS = ("label",)
TOKEN_COLUMNS = ("tokens", "words")
TAG_COLUMNS = ("tags", "ner_tags")
QA_COLUMNS = ("id", "question", "context", "answers")  # HF squad rows; "title" is read when present
SPLIT_FLAGS = {"train": "--train", "dev": "--dev", "test": "--test"}


@dataclass(frozen=True, kw_only=True)
class OwnDataFlags:
    """The own-data flags finetune, task-distill and evaluate share (their configs inherit them): files per split
    or a `datasets` dataset, and the columns to read (None: the defaults above). Training adds --train."""

    dev: str | None = None  # your own dev file: scored after training / by evaluate
    test: str | None = None  # your own test file; labels optional: without them, predictions only
    dataset: str | None = None  # hub name or save_to_disk folder with train / validation / test splits
    dataset_config: str | None = None  # configuration of a hub --dataset
    text_column: str | None = None  # text column; default text, else sentence (sentence1 beside sentence2); tokens
    text_pair_column: str | None = None  # second-text column; default text_pair, else sentence2; none: single text
    label_column: str | None = None  # label column; default: label; tags (or ner_tags) for token-classification
    # token-classification: the tags — a CoNLL file's column index (0 = the word, 1 = CoNLL-2003's POS; default -1,
    # the last) or the key/column of a JSONL, CSV, Parquet or dataset row (default tags, else ner_tags)
    tag_column: str | None = None


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


def source_problems(config: Any, spec: TaskSpec | None, splits: Sequence[str]) -> list[str]:
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
    columns = ("text_column", "text_pair_column", "label_column", "tag_column")
    flags = [f"--{name.replace('_', '-')}" for name in columns]
    if data and any(getattr(own, name) for name in columns):
        problems.append(f"{', '.join(flags)} apply to your own files or --dataset, not to --data")
    if own.tag_column is not None and spec is not None and spec.kind != "token-classification":
        problems.append(f"--tag-column names the tags of token classification, not of --task {config.task}")
    if own.tag_column is not None and own.label_column is not None:
        problems.append("--tag-column and --label-column both name the tag column: give one")
    if data and spec is not None and spec.own_data_only:
        problems.append(f"--task {config.task} reads your own data: give --train/--dev files or --dataset, not --data")
    if own.files:
        splits = [canonical_split(split) for split in splits]
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
    split = canonical_split(split)
    if own.dataset:
        from distilkit.tasks.readers.hub import dataset_table

        return dataset_table(own.dataset, own.dataset_config, split)
    path = own.files.get(split)
    if path is None:
        raise ConfigError(f"no {SPLIT_FLAGS.get(split, split)} FILE for the {split} split")
    if kind == "qa" and Path(path).suffix.lower() == ".json":
        return squad.read_squad(path)
    return open_table(path, conll=kind == "token-classification", tag_column=own.tag_column)


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
    if spec.kind == "token-classification":
        tokens = _pick(table, own.text_column, "--text-column", TOKEN_COLUMNS)
        conll = isinstance(table, ConllTable)  # its --tag-column is a column index, applied when it was opened
        flag = "--label-column" if own.label_column is not None else "--tag-column"
        tags = _pick(table, None if conll else own.tag_column or own.label_column, flag, TAG_COLUMNS)
        if tokens is None:
            raise _missing(table, "token", TOKEN_COLUMNS, "--text-column")
        if tags is None:
            raise _missing(table, "tag", TAG_COLUMNS, "--tag-column")
        return Columns(tokens, None, tags)
    text_names = spec.text_columns[:1] + TEXT_COLUMNS  # a GLUE task's own header names first
    pair_names = spec.text_columns[1:] + PAIR_COLUMNS
    label_names = ((spec.label_column,) if spec.label_column else ()) + LABEL_COLUMNS
    text = _pick(table, own.text_column, "--text-column", text_names)
    if text is None:
        raise _missing(table, "text", text_names, "--text-column")
    pair = _pick(table, own.text_pair_column, "--text-pair-column", pair_names)
    if len(spec.text_columns) > 1 and pair is None:
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
    if not isinstance(tags, list) or not all(isinstance(tag, str) and tag.strip() for tag in tags):
        raise DataError(f"{where}: tags should be a list of non-empty strings (B-PER, NNP, ...), got {tags!r:.60}")
    if len(tokens) != len(tags):
        raise DataError(f"{where}: {len(tokens)} words but {len(tags)} tags — give one tag per word")
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
            self.columns, self.name = None, own.files[canonical_split(split)]
        else:
            self.columns, self.name = resolve_columns(self.source, own, spec, split), self.source.name
        # token tags: the scheme is detected from every sentence read (or each tag checked against a forced one)
        self.schemes = SchemeScan(self.name) if spec.kind == "token-classification" and not spec.tag_scheme else None

    def scheme(self) -> str | None:
        """The tag scheme of what was read: the spec's (forced, or the training split's), else the one detected."""
        return self.spec.tag_scheme or (self.schemes.scheme() if self.schemes is not None else None)

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
            if kind == "token-classification":
                sentence = _sentence(values[columns.text][row], values[columns.label][row], where)
                if sentence is None:
                    continue
                if self.schemes is not None:
                    self.schemes.add(sentence.tags, place)
                else:
                    check_forced(sentence.tags, self.spec.tag_scheme, where)
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
    if spec.kind == "token-classification":
        if len(scan.ids) < 2:
            raise DataError(f"{name}: only one tag ({label_list(sorted(scan.ids))}) — nothing to learn")
        return ner.build_label_list([ner.NerSentence((), tuple(scan.ids))])
    return scan.labels()
