"""Shared fixtures: tiny artefacts built in milliseconds, so that unit tests never download."""

from __future__ import annotations

import os
import string
from pathlib import Path

import pytest

TINY_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # BERT's order: [PAD] = 0
TINY_WORDS = (
    "the a an of and to in on at by with from for is was were be been it he she they we you i his her "
    "their our my this that these those not no yes but or so if then when where who what which there here "
    "cat dog bird fish horse ship sea whale captain sailor house garden door window letter book day night "
    "morning evening sun moon star wind rain snow old young little great good bad long short walk talk look "
    "jump play sail run sat saw said came went"
).split()
TINY_PIECES = ["##s", "##ed", "##ing", "##ly", ".", ",", "!", "?", "'", '"', ";", ":", "-"]


def make_wordpiece_tokenizer(tokens: list[str]):
    """A lower-casing BERT-style fast WordPiece tokenizer ([CLS] $A [SEP]) whose ids are ``tokens``, in
    order; the five BERT specials must be among them."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    backend.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def build_tiny_tokenizer(directory: Path) -> Path:
    """Save the tiny word-level tokenizer (~130 ids) with the minimal config.json that
    ``distilkit.models.teacher.load_tokenizer`` requires of a local model directory."""
    from transformers import BertConfig

    tokenizer = make_wordpiece_tokenizer(TINY_SPECIALS + TINY_WORDS + TINY_PIECES)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(directory))
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    config.save_pretrained(str(directory))
    return directory


@pytest.fixture(autouse=True, scope="session")
def private_teacher_logit_cache(tmp_path_factory: pytest.TempPathFactory):
    """task-distill caches teacher logits in ~/.cache/distilkit by default: tests use a temporary folder instead."""
    previous = os.environ.get("DISTILKIT_CACHE_DIR")
    os.environ["DISTILKIT_CACHE_DIR"] = str(tmp_path_factory.mktemp("teacher-logits"))
    yield
    if previous is None:
        os.environ.pop("DISTILKIT_CACHE_DIR", None)
    else:
        os.environ["DISTILKIT_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def wordpiece_tokenizer_factory():
    """``make_wordpiece_tokenizer``: build a tiny BERT-style tokenizer over your own token list."""
    return make_wordpiece_tokenizer


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding a tiny BERT WordPiece tokenizer (tokenizer.json + config.json); read-only use."""
    return build_tiny_tokenizer(tmp_path_factory.mktemp("tiny-tokenizer"))


@pytest.fixture(scope="session")
def tiny_words() -> list[str]:
    """Whole words of the tiny tokenizer's vocabulary: text made of them round-trips without [UNK]."""
    return list(TINY_WORDS)


def pytest_terminal_summary(terminalreporter) -> None:
    """Report how many fuzz cases each entry point survived (issue: count them in the test summary)."""
    from fuzzcount import CASES

    if CASES:
        parts = ", ".join(f"{name}: {count}" for name, count in sorted(CASES.items()))
        terminalreporter.write_line(f"fuzz cases tried: {sum(CASES.values())} ({parts})")


# Whole words get one token; every other lower-case word falls apart into single-character pieces,
# which gives the tests multi-token words and long contexts without a big vocabulary.
TASK_WORDS = "the a of in is was which team won super bowl denver broncos what who where when did eu peter".split()


@pytest.fixture(scope="session")
def task_tokenizer(wordpiece_tokenizer_factory):
    """Fast BERT-style WordPiece over ~160 ids. Unlike the word-level tiny tokenizer above it has
    digits and single-character pieces, so any ASCII word tokenises without [UNK] and unknown words split into
    many sub-tokens — what the alignment and sliding-window tests need."""
    characters = list(string.ascii_lowercase + string.digits + string.punctuation)
    return wordpiece_tokenizer_factory(TINY_SPECIALS + TASK_WORDS + characters + ["##" + ch for ch in characters])
