"""Atomic writes, checksums and JSON/JSONL helpers: the only place that writes files."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from distilkit.errors import DataError, DistilkitError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_tree(directory: Path) -> None:
    """fsync every file below ``directory`` (before the rename that publishes it)."""
    for file in directory.rglob("*"):
        if file.is_file():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
    fsync_dir(directory)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write a file through ``write(tmp_path)``, fsync it, then rename it onto ``path``.

    A reader never sees a half-written file: either the old content or the new.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; outputs get the mode a plain open() would give
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{what} {path} is not valid JSON ({exc.__class__.__name__}: {exc})") from None


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_dir(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Build a directory in a temporary sibling and rename it onto ``path`` on success.

    On any failure the temporary directory is removed and ``path`` is untouched.
    With ``overwrite``, an existing ``path`` is replaced only once the new one is complete.
    """
    path = Path(path)
    if path.exists() and not overwrite and any(path.iterdir()):
        raise DistilkitError(
            f"output directory {path} already exists and is not empty — choose another --out or pass --overwrite"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
    except OSError as exc:
        raise DistilkitError(f"cannot write to {path.parent}: {exc.strerror or exc}") from None
    try:
        yield tmp
        fsync_tree(tmp)
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_manifest(directory: Path, name: str = "manifest.json") -> dict[str, Any]:
    """Record size and sha256 of every file in ``directory`` (written last: its presence marks completeness)."""
    files = {
        str(p.relative_to(directory)): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != name
    }
    manifest = {"files": files}
    write_json(directory / name, manifest)
    return manifest


def verify_manifest(directory: Path, name: str = "manifest.json") -> str | None:
    """Return None if every file in the manifest is present and intact, else a reason."""
    manifest_path = directory / name
    if not manifest_path.is_file():
        return "no manifest (incomplete write)"
    try:
        files = json.loads(manifest_path.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return "manifest unreadable"
    for rel, info in files.items():
        file = directory / rel
        if not file.is_file():
            return f"{rel} missing"
        if file.stat().st_size != info["bytes"]:
            return f"{rel} truncated ({file.stat().st_size} of {info['bytes']} bytes)"
        if sha256_file(file) != info["sha256"]:
            return f"{rel} corrupted (checksum mismatch)"
    return None


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON line and flush it (a log, not an output: a torn last line is tolerated on read)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=float) + "\n")
        handle.flush()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL log, skipping a torn last line left by a kill."""
    records = []
    path = Path(path)
    if not path.is_file():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            records.append(json.loads(line))
    return records


def read_lines(path: Path) -> list[str]:
    """The non-blank, stripped lines of a UTF-8 text file (gzip when it ends in .gz): texts to embed."""
    if not path.is_file():
        raise DataError(f"text file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            return [line.strip() for line in handle if line.strip()]
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise DataError(f"cannot read {path} as UTF-8 text: {exc}") from None


def demo_corpus_path() -> Path:
    """The demo corpus shipped with distilkit (four public-domain novels, see assets/CORPUS.md)."""
    path = Path(__file__).resolve().parent / "assets" / "corpus.txt.gz"
    if not path.is_file():
        raise DataError(f"the demo corpus {path} is missing from this installation — reinstall distilkit")
    return path
