"""Corpus files → batches of text lines for ``prepare``: streamed, gzip detected, every way a file can be bad
turned into one DataError, and lines found by ``--exclude`` (data/decontam.py) dropped on the way."""

from __future__ import annotations

import codecs
import contextlib
import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from distilkit.data.decontam import Exclusion
from distilkit.errors import DataError

SNIFF_BYTES = 1 << 16  # how much of each file is checked for text before any work starts
GZIP_MAGIC = b"\x1f\x8b"


@contextlib.contextmanager
def _open_source(path: Path) -> Iterator[tuple[BinaryIO, BinaryIO]]:
    """Yield (raw file, decompressed stream); gzip is detected by its magic bytes or a .gz name."""
    try:
        with open(path, "rb") as raw:
            is_gzip = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            if path.suffix == ".gz" and not is_gzip:
                raise DataError(f"{path} has a .gz name but is not gzip data — decompress or rename it")
            yield raw, (gzip.GzipFile(fileobj=raw, mode="rb") if is_gzip else raw)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{path} is a corrupt or truncated gzip file ({exc})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}) — convert it to UTF-8") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None


def check_source(path: Path) -> None:
    """Fail before any work if a file is empty, binary or not gzip after all (its first 64 KiB)."""
    with _open_source(path) as (_, stream):
        head = stream.read(SNIFF_BYTES)
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=len(head) < SNIFF_BYTES)
    if b"\x00" in head:
        raise DataError(f"{path} is not UTF-8 text (it contains NUL bytes: binary data?)")
    if not text.strip() and len(head) < SNIFF_BYTES:
        raise DataError(f"{path} has no usable text — it is empty or blank")


def _text_lines(path: Path, stream: BinaryIO) -> Iterator[str]:
    """The stripped lines of one decompressed stream (blank lines as ''); strict UTF-8, no NUL bytes."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline=None)
    for line_number, line in enumerate(text, start=1):
        if "\x00" in line:
            raise DataError(f"{path} is not UTF-8 text (NUL byte on line {line_number}: binary data?)")
        yield line.strip()


@dataclass
class LineBatch:
    lines: list[str]  # non-blank lines to tokenize
    lines_read: int  # lines consumed from the corpus for this batch, blank ones included
    bytes_done: int  # corpus bytes consumed up to the end of this batch (all files)


def read_batches(
    sources: list[tuple[Path, int]], batch_lines: int, exclusion: Exclusion | None = None
) -> Iterator[LineBatch]:
    """Stream the corpus as batches of at most ``batch_lines`` non-blank lines (a batch never spans files),
    without the lines ``exclusion`` finds contaminated (they count as read and skipped)."""
    bytes_before = 0
    for path, size in sources:
        lines: list[str] = []
        lines_read = 0
        has_text = False
        with _open_source(path) as (raw, stream):
            for line in _text_lines(path, stream):
                lines_read += 1
                if line:
                    lines.append(line)
                    has_text = True
                    if len(lines) == batch_lines:
                        yield LineBatch(_clean(lines, path, exclusion), lines_read, bytes_before + raw.tell())
                        lines, lines_read = [], 0
        if not has_text:
            raise DataError(f"{path} has no usable text — every line is blank")
        bytes_before += size
        if lines_read:
            yield LineBatch(_clean(lines, path, exclusion), lines_read, bytes_before)


def _clean(lines: list[str], path: Path, exclusion: Exclusion | None) -> list[str]:
    if exclusion is None:
        return lines
    keep = exclusion.filter(str(path), lines)
    return [line for line, kept in zip(lines, keep, strict=True) if kept]
