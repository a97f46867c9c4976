"""Tiny random models, a tiny WordPiece tokenizer, and tiny token datasets, built in milliseconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from distilkit.data.dataset import write_token_dataset

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "the a an of to and in is was it that he she they we you i his her on with as for at by from this be "
    "had not but have are were which one all said so were there their what up out when would them more "
    "no if time man could like into very then some my about over little only upon great good old any "
    "know see now sea ship whale day night long way well house love heart mother sister "
).split()
VOCAB = (
    SPECIALS
    + sorted(set(WORDS))
    + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    + list("abcdefghijklmnopqrstuvwxyz.,!?")
)


def make_tokenizer(directory: Path):
    """A fast BERT-style WordPiece tokenizer over ~150 tokens, saved with save_pretrained."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    vocab = {token: i for i, token in enumerate(VOCAB)}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )  # fmt: skip
    backend.decoder = decoders.WordPiece()
    tokenizer = BertTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
        cls_token="[CLS]", mask_token="[MASK]",
    )  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(directory)
    return tokenizer


def tiny_config(kind: str = "bert", layers: int = 4, hidden: int = 32, heads: int = 2, dropout: float = 0.0):
    from transformers import BertConfig, DistilBertConfig, RobertaConfig

    common = {"vocab_size": len(VOCAB), "max_position_embeddings": 64, "pad_token_id": 0}
    if kind == "distilbert":
        return DistilBertConfig(
            dim=hidden, n_layers=layers, n_heads=heads, hidden_dim=2 * hidden, dropout=dropout,
            attention_dropout=dropout, **common,
        )  # fmt: skip
    cls = RobertaConfig if kind == "roberta" else BertConfig
    extra = {"max_position_embeddings": 66, "pad_token_id": 1} if kind == "roberta" else {}
    return cls(
        **{**common, **extra}, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=2 * hidden, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
    )  # fmt: skip


def make_model(directory: Path, kind: str = "bert", mlm: bool = True, seed: int = 0, **kwargs):
    """Save a tiny random model (+ tokenizer) to ``directory`` and return it."""
    from transformers import AutoModel, AutoModelForMaskedLM

    torch.manual_seed(seed)
    config = tiny_config(kind, **kwargs)
    model = (AutoModelForMaskedLM if mlm else AutoModel).from_config(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    make_tokenizer(directory)
    return model


def write_token_data(
    directory: Path,
    n_sequences: int = 64,
    seed: int = 0,
    min_len: int = 6,
    max_len: int = 24,
    n_words: int | None = None,
):
    """A token dataset in ``prepare``'s format with random words between [CLS] and [SEP]."""
    rng = np.random.default_rng(seed)
    word_ids = np.arange(len(SPECIALS), len(SPECIALS) + (n_words or len(set(WORDS))))
    sequences = []
    for _ in range(n_sequences):
        body = rng.choice(word_ids, size=int(rng.integers(min_len, max_len - 1)))
        sequences.append(np.concatenate([[2], body, [3]]).astype(np.uint16))
    special_ids = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    return write_token_dataset(
        directory, sequences, vocab_size=len(VOCAB), special_ids=special_ids, max_len=max_len, overwrite=True
    )


def torchrun(processes: int = 2) -> list[str]:
    """The command line that starts `processes` CPU processes of a Python module under torch.distributed (gloo)."""
    import socket
    import sys

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port",
            str(port)]  # fmt: skip
