"""Your own data files as tables read in chunks: CSV, TSV, JSON Lines, Parquet (with pyarrow), CoNLL column files
and `datasets` splits all yield batches of {column: values} with each row's place in the file (its line, or its
row for Parquet and datasets), so a million-row file is never held as one list and every error names file and line.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distilkit.errors import DataError
from distilkit.tasks.readers import ner

CHUNK_ROWS = 8192  # rows per batch: big enough for the fast tokenizer's batching, small next to 1M rows
FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
           ".parquet": "parquet", ".pq": "parquet"}  # fmt: skip
CONLL_SUFFIXES = (".conll", ".conllu", ".txt", ".iob", ".iob2", ".bio")


@dataclass
class Batch:
    """Consecutive rows: where[i] is row i's place ("line 12" or "row 12"), values[column][i] its cell."""

    where: list[str]
    values: dict[str, list]

    def __len__(self) -> int:
        return len(self.where)


class Table:
    """One split of the user's data. name: the file (or dataset split) for messages; columns: what it holds."""

    name: str
    columns: tuple[str, ...]

    def batches(self, columns: Sequence[str], size: int = CHUNK_ROWS) -> Iterator[Batch]:
        raise NotImplementedError


def file_format(path: Path, conll: bool = False) -> str:
    """csv, tsv, jsonl or parquet from the extension; with conll, other files (.txt, .conll, ...) are CoNLL columns."""
    name = path.name.lower()
    fmt = next((fmt for suffix, fmt in FORMATS.items() if name.endswith(suffix)), None)
    if fmt is None and conll:
        return "conll"
    if fmt is None:
        extra = ", or CoNLL columns (.txt/.conll) for token classification" if not conll else ""
        raise DataError(f"cannot tell the format of {path} from its name — use .csv, .tsv, .jsonl or .parquet{extra}")
    return fmt


def open_table(path: str | Path, conll: bool = False, tag_column: str | None = None) -> Table:
    """The table of a file; DataError when it is missing, empty or has no header/first record. tag_column: a CoNLL
    file's tag column index (default -1, the last); other formats name their columns when they are read."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    fmt = file_format(path, conll)
    if fmt in ("csv", "tsv"):
        return CsvTable(path, "\t" if fmt == "tsv" else ",")
    if fmt == "jsonl":
        return JsonLinesTable(path)
    if fmt == "parquet":
        return ParquetTable(path)
    return ConllTable(path, conll_column(path, tag_column))


def conll_column(path: Path, tag_column: str | None) -> int:
    """--tag-column of a CoNLL file as a column index; DataError for a name (CoNLL columns have none)."""
    if tag_column is None:
        return -1
    try:
        return int(tag_column)
    except ValueError:
        raise DataError(
            f"{path}: --tag-column {tag_column!r} — a CoNLL file's columns have no names: give the index of the "
            "tag column (0 = the word, 1 = CoNLL-2003's POS, 2 chunk, 3 NER; -1 = the last)"
        ) from None


def _utf8_error(path: Path, error: UnicodeDecodeError) -> DataError:
    return DataError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start})")


class CsvTable(Table):
    """Comma- or tab-separated, a header row first, quoting as the csv module and pandas write it."""

    def __init__(self, path: Path, delimiter: str) -> None:
        self.name, self.path, self.delimiter = str(path), path, delimiter
        self.kind = "tab" if delimiter == "\t" else "comma"
        try:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                header = next((row for row in self._reader(handle) if row), None)
        except UnicodeDecodeError as error:
            raise _utf8_error(path, error) from None
        if header is None:
            raise DataError(f"{path} is empty — expected a header row, then one row per example")
        self.columns = tuple(name.strip() for name in header)
        repeated = sorted({name for name in self.columns if self.columns.count(name) > 1})
        if repeated:
            raise DataError(f"{path}: the header names column {repeated[0]!r} twice")

    def _reader(self, handle: Any) -> Any:
        return csv.reader(handle, delimiter=self.delimiter, strict=self.delimiter == ",")

    def batches(self, columns: Sequence[str], size: int = CHUNK_ROWS) -> Iterator[Batch]:
        indices = [self.columns.index(name) for name in columns]
        where: list[str] = []
        values: list[list] = [[] for _ in columns]
        rows = 0
        try:
            with self.path.open(encoding="utf-8-sig", newline="") as handle:
                reader = self._reader(handle)
                header_seen = False
                for row in reader:
                    if not row or (len(row) == 1 and not row[0].strip()):
                        continue
                    if not header_seen:
                        header_seen = True
                        continue
                    if len(row) != len(self.columns):
                        raise DataError(
                            f"{self.path}, line {reader.line_num}: expected {len(self.columns)} {self.kind}-separated "
                            f"fields (the header's), got {len(row)}"
                        )
                    where.append(f"line {reader.line_num}")
                    for column, index in zip(values, indices, strict=True):
                        column.append(row[index])
                    rows += 1
                    if len(where) == size:
                        yield Batch(where, dict(zip(columns, values, strict=True)))
                        where, values = [], [[] for _ in columns]
        except csv.Error as error:
            raise DataError(
                f"{self.path}, line {reader.line_num}: malformed {self.kind}-separated row ({error})"
            ) from None
        except UnicodeDecodeError as error:
            raise _utf8_error(self.path, error) from None
        if rows == 0:
            raise DataError(f"{self.path} has a header but no rows")
        if where:
            yield Batch(where, dict(zip(columns, values, strict=True)))


class JsonLinesTable(Table):
    """One JSON object per line (blank lines skipped); the columns are the first object's keys."""

    def __init__(self, path: Path) -> None:
        self.name, self.path = str(path), path
        first = next(self._objects(), None)
        if first is None:
            raise DataError(f"{path} is empty — expected one JSON object per line")
        self.columns = tuple(first[1])

    def _objects(self) -> Iterator[tuple[int, dict]]:
        try:
            with self.path.open(encoding="utf-8-sig") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as error:
                        raise DataError(
                            f"{self.path}, line {number}: not valid JSON ({error.msg}, column {error.colno}) "
                            "— expected JSON Lines, one object per line"
                        ) from None
                    if not isinstance(record, dict):
                        raise DataError(
                            f"{self.path}, line {number}: expected a JSON object, got {type(record).__name__} "
                            "— JSON Lines holds one object per line"
                        )
                    yield number, record
        except UnicodeDecodeError as error:
            raise _utf8_error(self.path, error) from None

    def batches(self, columns: Sequence[str], size: int = CHUNK_ROWS) -> Iterator[Batch]:
        where: list[str] = []
        values: dict[str, list] = {name: [] for name in columns}
        for number, record in self._objects():
            for name in columns:
                if name not in record:
                    raise DataError(
                        f"{self.path}, line {number}: no {name!r} key (found: {', '.join(record) or 'none'})"
                    )
                values[name].append(record[name])
            where.append(f"line {number}")
            if len(where) == size:
                yield Batch(where, values)
                where, values = [], {name: [] for name in columns}
        if where:
            yield Batch(where, values)


def _pyarrow_parquet(path: Path) -> Any:
    if importlib.util.find_spec("pyarrow") is None:
        raise DataError(f"reading {path} (Parquet) needs pyarrow — pip install pyarrow")
    import pyarrow.parquet as pq

    return pq


class ParquetTable(Table):
    """A Parquet file read in record batches of the wanted columns only (pyarrow)."""

    def __init__(self, path: Path) -> None:
        self.name, self.path = str(path), path
        try:
            self.file = _pyarrow_parquet(path).ParquetFile(path)
        except DataError:
            raise
        except Exception as error:  # pyarrow raises ArrowInvalid, OSError, ... for a file that is not Parquet
            raise DataError(f"{path} is not a readable Parquet file ({str(error).splitlines()[0]})") from None
        self.columns = tuple(self.file.schema_arrow.names)
        if self.file.metadata.num_rows == 0:
            raise DataError(f"{path} holds no rows")

    def batches(self, columns: Sequence[str], size: int = CHUNK_ROWS) -> Iterator[Batch]:
        row = 0
        for record_batch in self.file.iter_batches(batch_size=size, columns=list(columns)):
            values = {name: record_batch.column(name).to_pylist() for name in columns}
            yield Batch([f"row {row + i + 1}" for i in range(record_batch.num_rows)], values)
            row += record_batch.num_rows


class ConllTable(Table):
    """A CoNLL column file (word ... tag per line, blank line between sentences) as rows (tokens, tags): the tags
    of column `tag_column` (the last by default); each sentence is placed at its first line."""

    columns = ("tokens", "tags")

    def __init__(self, path: Path, tag_column: int = -1) -> None:
        self.name, self.path, self.tag_column = str(path), path, tag_column
        if next(ner.iter_conll(path, tag_column), None) is None:  # a wrong first line fails here too, before any work
            raise DataError(f"{path} holds no sentences — expected CoNLL columns (word ... tag)")

    def batches(self, columns: Sequence[str], size: int = CHUNK_ROWS) -> Iterator[Batch]:
        where: list[str] = []
        values: dict[str, list] = {name: [] for name in columns}
        for line, sentence in ner.iter_conll(self.path, self.tag_column):
            where.append(f"line {line}")
            for name in columns:
                values[name].append(list(sentence.words if name == "tokens" else sentence.tags))
            if len(where) == size:
                yield Batch(where, values)
                where, values = [], {name: [] for name in columns}
        if where:
            yield Batch(where, values)


class DatasetTable(Table):
    """A split of a `datasets` dataset (hub or save_to_disk); ClassLabel ids are given as their names."""

    def __init__(self, dataset: Any, name: str) -> None:
        self.dataset, self.name = dataset, name
        self.columns = tuple(dataset.column_names)
        if len(dataset) == 0:
            raise DataError(f"{name} holds no rows")

    def class_names(self, column: str) -> list[str] | None:
        feature = self.dataset.features.get(column)
        feature = getattr(feature, "feature", feature)  # a Sequence(ClassLabel) for per-token tags
        return list(getattr(feature, "names", None) or []) or None

    def batches(self, columns: Sequence[str], size: int = CHUNK_ROWS) -> Iterator[Batch]:
        names = {column: self.class_names(column) for column in columns}
        row = 0
        for chunk in self.dataset.select_columns(list(columns)).iter(batch_size=size):
            count = len(chunk[columns[0]])
            values = {}
            for column in columns:
                values[column] = chunk[column]
                if names[column]:
                    values[column] = [_class_name(value, names[column]) for value in chunk[column]]
            yield Batch([f"row {row + i + 1}" for i in range(count)], values)
            row += count


def _class_name(value: Any, names: list[str]) -> Any:
    if isinstance(value, list):
        return [_class_name(item, names) for item in value]
    return names[value] if isinstance(value, int) and 0 <= value < len(names) else value
