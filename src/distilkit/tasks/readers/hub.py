"""Optional: read a task from a `datasets` hub dataset (`--data hf:NAME`) into the same example records as the
local readers, and open a split of your own dataset (`--dataset NAME` or a save_to_disk folder) as a table.
`datasets` is imported only here, only when asked for; local files never need it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distilkit.errors import DataError
from distilkit.tasks.readers import glue, ner, squad
from distilkit.tasks.readers.schemes import resolve_scheme
from distilkit.tasks.readers.tables import DatasetTable
from distilkit.tasks.registry import TaskSpec, canonical_split


def hub_split(split: str) -> str:
    """The hub's name of a split: "dev" → "validation", "dev_matched" → "validation_matched"."""
    key = canonical_split(split)
    return "validation" + key[3:] if key == "dev" or key.startswith("dev_") else key


def _datasets(flag: str) -> Any:
    try:
        import datasets
    except ImportError:
        raise DataError(f'{flag} needs the `datasets` package — pip install "distilkit[datasets]"') from None
    return datasets


def _load(name: str, config: str | None, split: str) -> Any:
    datasets = _datasets(f"--data hf:{name}")
    try:
        return datasets.load_dataset(name, config, split=hub_split(split))
    except Exception as error:  # the hub raises many types (connection, missing config, ...)
        raise DataError(f"cannot load {name} ({config or 'default'}, {split}) from the hub: {error}") from None


def dataset_table(name: str, config: str | None, split: str) -> DatasetTable:
    """One split of --dataset: a `save_to_disk` folder (a DatasetDict with train/validation/test, or one Dataset
    as its train split) read offline with `load_from_disk`, else a hub dataset name."""
    datasets = _datasets(f"--dataset {name}")
    wanted = hub_split(split)
    if Path(name).is_dir():
        try:
            loaded = datasets.load_from_disk(name)
        except Exception as error:  # FileNotFoundError, ValueError, ... for a folder save_to_disk did not write
            raise DataError(f"{name} is not a datasets save_to_disk folder ({str(error).splitlines()[0]})") from None
        if isinstance(loaded, datasets.DatasetDict):
            names = ("validation", "valid", "dev") if wanted == "validation" else (wanted,)
            found = next((key for key in names if key in loaded), None)
            if found is None:
                raise DataError(f"{name} has no {wanted} split (found: {', '.join(loaded)})")
            return DatasetTable(loaded[found], f"{name} [{found}]")
        if split != "train":
            raise DataError(f"{name} holds one Dataset (used as train), not a DatasetDict with a {wanted} split")
        return DatasetTable(loaded, name)
    return DatasetTable(_load(name, config, split), f"{name} [{wanted}]")


def _label_names(dataset: Any, column: str) -> list[str] | None:
    feature = dataset.features.get(column)
    feature = getattr(feature, "feature", feature)  # a Sequence(ClassLabel) for per-token tags
    return list(getattr(feature, "names", None) or []) or None


def read_hub(spec: TaskSpec, name: str, split: str) -> list:
    """Examples of `split` from hub dataset `name` ("NAME" or "NAME:CONFIG"; GLUE's config defaults to the task).
    GLUE rows are read from the task's `hub_columns`; labels are mapped to the task's label order by name."""
    name, _, config = name.partition(":")
    if spec.benchmark == "squad":
        rows = _load(name, config or None, split)
        return [
            squad.SquadExample(row["id"], row["title"], row["context"], row["question"],
                               tuple(row["answers"]["text"]), tuple(row["answers"]["answer_start"]))
            for row in rows
        ]  # fmt: skip
    if spec.benchmark == "conll":
        rows = _load(name, config or None, split)
        column = spec.label_column or "ner_tags"
        names = _label_names(rows, column) if column in rows.column_names else None
        if names is None:
            raise DataError(f"{name}: no column {column} with label names (found: {', '.join(rows.column_names)})")
        sentences = [ner.NerSentence(tuple(row["tokens"]), tuple(names[tag] for tag in row[column]))
                     for row in rows if row["tokens"]]  # fmt: skip
        scheme = resolve_scheme(((s.tags, f"row {i + 1}") for i, s in enumerate(sentences)), spec.tag_scheme, name)
        return [ner.as_iob2(sentence, scheme) for sentence in sentences]
    split_key = spec.file_split(split) if split != "train" else split
    rows = _load(name, config or spec.name, split_key)
    columns = spec.hub_columns
    missing = [column for column in (*columns, "label") if column not in rows.column_names]
    if missing:
        raise DataError(f"{name}: no column {missing[0]!r} (found: {', '.join(rows.column_names)})")
    names = _label_names(rows, "label")
    examples = []
    for row in rows:
        label = row["label"]
        if spec.kind == "regression":
            label = float(label)
        elif label is None or label < 0:
            label = None  # GLUE test splits on the hub carry label -1
        elif names and len(names) == len(spec.labels) and names[label] in spec.labels:
            label = spec.labels.index(names[label])  # e.g. MNLI's hub order differs from the TSV order
        elif not 0 <= label < len(spec.labels):
            raise DataError(f"{name} {split}: label {label} is not one of 0..{len(spec.labels) - 1}")
        pair = row[columns[1]] if len(columns) > 1 else None
        examples.append(glue.Example(row[columns[0]], pair, label))
    if not examples:
        raise DataError(f"{name} {split} has no examples")
    return examples
