"""Optional: read a task from a `datasets` hub dataset (`--data hf:NAME`) into the same example records as the
local readers, and open a split of your own dataset (`--dataset NAME` or a save_to_disk folder) as a table.
`datasets` is imported only here, only when asked for; local files never need it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distilkit.errors import DataError
from distilkit.tasks import glue, ner, squad
from distilkit.tasks.metrics import canonical_task
from distilkit.tasks.tables import DatasetTable

# GLUE configs on the hub (nyu-mll/glue) name their text columns differently from the GLUE TSV headers.
_GLUE_COLUMNS = {
    "cola": ("sentence",), "sst2": ("sentence",), "mrpc": ("sentence1", "sentence2"),
    "stsb": ("sentence1", "sentence2"), "qqp": ("question1", "question2"), "mnli": ("premise", "hypothesis"),
    "qnli": ("question", "sentence"), "rte": ("sentence1", "sentence2"), "wnli": ("sentence1", "sentence2"),
}  # fmt: skip
_HUB_SPLITS = {"dev": "validation", "valid": "validation", "dev_matched": "validation_matched",
               "dev_mismatched": "validation_mismatched"}  # fmt: skip


def _datasets(flag: str) -> Any:
    try:
        import datasets
    except ImportError:
        raise DataError(f'{flag} needs the `datasets` package — pip install "distilkit[datasets]"') from None
    return datasets


def _load(name: str, config: str | None, split: str) -> Any:
    datasets = _datasets(f"--data hf:{name}")
    try:
        return datasets.load_dataset(name, config, split=_HUB_SPLITS.get(split, split))
    except Exception as error:  # the hub raises many types (connection, missing config, ...)
        raise DataError(f"cannot load {name} ({config or 'default'}, {split}) from the hub: {error}") from None


def dataset_table(name: str, config: str | None, split: str) -> DatasetTable:
    """One split of --dataset: a `save_to_disk` folder (a DatasetDict with train/validation/test, or one Dataset
    as its train split) read offline with `load_from_disk`, else a hub dataset name."""
    datasets = _datasets(f"--dataset {name}")
    wanted = _HUB_SPLITS.get(split, split)
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


def read_hub(task: str, name: str, split: str) -> list:
    """Examples of `split` from hub dataset `name` ("NAME" or "NAME:CONFIG"; GLUE's config defaults to the task)."""
    key = canonical_task(task)
    name, _, config = name.partition(":")
    if key == "squad":
        rows = _load(name, config or None, split)
        return [
            squad.SquadExample(row["id"], row["title"], row["context"], row["question"],
                               tuple(row["answers"]["text"]), tuple(row["answers"]["answer_start"]))
            for row in rows
        ]  # fmt: skip
    if key == "conll2003":
        rows = _load(name, config or None, split)
        names = _label_names(rows, "ner_tags")
        if names is None:
            raise DataError(f"{name}: column ner_tags has no label names")
        return [
            ner.NerSentence(tuple(row["tokens"]), tuple(ner.to_iob2([names[tag] for tag in row["ner_tags"]])))
            for row in rows
            if row["tokens"]
        ]
    spec = glue.get_glue_task(task)
    split_key = glue.resolve_split(task, split) if split != "train" else split
    rows = _load(name, config or key, split_key)
    columns = _GLUE_COLUMNS[key]
    missing = [column for column in (*columns, "label") if column not in rows.column_names]
    if missing:
        raise DataError(f"{name}: no column {missing[0]!r} (found: {', '.join(rows.column_names)})")
    names = _label_names(rows, "label")
    examples = []
    for row in rows:
        label = row["label"]
        if spec.is_regression:
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
