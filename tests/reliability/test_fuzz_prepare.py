"""Fuzz `prepare` with arbitrary bytes, encodings and shapes: it either writes a valid dataset or
fails with one line naming the file — never a traceback, never a half-written output."""

import gzip
import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distilkit.data.prepare import PrepareConfig, load_meta, prepare
from distilkit.errors import DistilkitError
from fuzzcount import CASES

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400)
contents = st.one_of(
    st.binary(max_size=600),  # arbitrary bytes: garbage, NULs, broken UTF-8
    texts.map(lambda t: t.encode("utf-8")),  # valid UTF-8 of any script, control chars included
    texts.map(lambda t: t.encode("utf-16")),  # wrong encoding (BOM + NULs)
    st.lists(st.sampled_from(["the sea", "", " ", "whale ship", "\t", "cat. dog!"]), max_size=40).map(
        lambda lines: "\n".join(lines).encode()
    ),
)


def _check_outcome(tmp: Path, source: Path, out: Path, tokenizer_dir: Path, max_len: int = 16) -> str:
    try:
        stats = prepare(PrepareConfig(str(tokenizer_dir), (str(source),), str(out), max_len=max_len, min_len=1))
    except DistilkitError as exc:
        message = str(exc)
        assert "\n" not in message and source.name in message, message
        assert not out.exists()
        outcome = "rejected"
    else:
        meta = load_meta(out)
        offsets = np.load(out / "offsets.npy")
        tokens = np.fromfile(out / "tokens.bin", dtype=meta["dtype"])
        assert offsets[0] == 0 and offsets[-1] == len(tokens) == stats["n_tokens"]
        lengths = np.diff(offsets)
        assert (lengths >= 1).all() and (lengths <= max_len).all()
        cls, sep = meta["special_ids"]["cls"], meta["special_ids"]["sep"]
        assert all(tokens[a] == cls and tokens[b - 1] == sep for a, b in itertools.pairwise(offsets))
        outcome = "written"
    leftovers = [p.name for p in tmp.iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers
    return outcome


@FUZZ
@given(data=contents, gz=st.booleans())
def test_prepare_on_arbitrary_input(tmp_path_factory, tiny_tokenizer_dir, data, gz):
    tmp = tmp_path_factory.mktemp("fuzz")
    source = tmp / ("input.txt.gz" if gz else "input.txt")
    source.write_bytes(gzip.compress(data) if gz else data)
    _check_outcome(tmp, source, tmp / "out", tiny_tokenizer_dir)
    CASES["prepare"] += 1


@pytest.mark.parametrize(
    "case",
    ["enormous-line", "truncated-gzip", "directory", "missing", "latin-1", "only-blank-lines", "fake-gzip"],
)
def test_prepare_hand_made_cases(tmp_path, tiny_tokenizer_dir, case):
    source = tmp_path / "input.txt"
    if case == "enormous-line":
        source.write_text(("the sea whale " * 400_000).strip() + "\n")  # one 5.6 MB line
    elif case == "truncated-gzip":
        source = tmp_path / "input.txt.gz"
        source.write_bytes(gzip.compress(b"the sea\n" * 1000)[:-30])
    elif case == "directory":
        source.mkdir()
    elif case == "latin-1":
        source.write_bytes("caf\xe9 na\xefve \xfcber\n".encode("latin-1"))
    elif case == "only-blank-lines":
        source.write_text("\n  \n\t\n")
    elif case == "fake-gzip":
        source = tmp_path / "input.txt.gz"
        source.write_text("not gzip at all\n")
    outcome = _check_outcome(tmp_path, source, tmp_path / "out", tiny_tokenizer_dir, max_len=64)
    expected = "written" if case == "enormous-line" else "rejected"
    assert outcome == expected
    CASES["prepare"] += 1


def test_prepare_into_read_only_directory(tmp_path, tiny_tokenizer_dir):
    if os.geteuid() == 0:
        pytest.skip("running as root: permissions are not enforced, so a read-only directory cannot be simulated")
    source = tmp_path / "input.txt"
    source.write_text("the sea\n")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(DistilkitError):
            prepare(PrepareConfig(str(tiny_tokenizer_dir), (str(source),), str(locked / "out")))
    finally:
        locked.chmod(0o700)
    CASES["prepare"] += 1


def test_prepare_when_the_output_directory_refuses_writes(tmp_path, tiny_tokenizer_dir, monkeypatch):
    """What a read-only directory does to any user, root included: every create fails with EACCES."""
    import tempfile

    source = tmp_path / "input.txt"
    source.write_text("the sea\n")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    with pytest.raises(DistilkitError, match="Permission denied"):
        prepare(PrepareConfig(str(tiny_tokenizer_dir), (str(source),), str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()
    CASES["prepare"] += 1
