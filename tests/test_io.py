"""Atomic writes: all-or-nothing, usual permissions, manifest verification."""

import os
import stat

import pytest

from distilkit.errors import DistilkitError
from distilkit.io import atomic_dir, atomic_write_text, read_jsonl, verify_manifest, write_manifest


def test_atomic_write_replaces_whole_file_with_umask_permissions(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_write_failure_keeps_old_content(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")

    def broken(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    from distilkit.io import atomic_write

    with pytest.raises(OSError):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_dir_is_all_or_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "part").write_text("x")
        raise RuntimeError("killed halfway")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(out) as tmp:
        (tmp / "done").write_text("x")
    assert (out / "done").read_text() == "x"
    with pytest.raises(DistilkitError, match="not empty"):
        atomic_dir(out).__enter__()
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "new").write_text("y")
    assert sorted(p.name for p in out.iterdir()) == ["new"]


def test_manifest_detects_missing_truncated_and_corrupted_files(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"abcdef")
    (tmp_path / "b.bin").write_bytes(b"123")
    write_manifest(tmp_path)
    assert verify_manifest(tmp_path) is None
    (tmp_path / "a.bin").write_bytes(b"abcdeX")
    assert "corrupted" in verify_manifest(tmp_path)
    (tmp_path / "a.bin").write_bytes(b"abc")
    assert "truncated" in verify_manifest(tmp_path)
    (tmp_path / "a.bin").unlink()
    assert "missing" in verify_manifest(tmp_path)


def test_read_jsonl_tolerates_a_torn_last_line(tmp_path):
    log = tmp_path / "m.jsonl"
    log.write_text('{"step": 1}\n{"step": 2}\n{"ste')
    assert read_jsonl(log) == [{"step": 1}, {"step": 2}]
