"""A static-embedding model (compression/static.py builds one): a table of token vectors, a text's embedding the
mean of its token rows then L2 normalisation — sentence-transformers' ``StaticEmbedding`` — loaded for encoding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from distilkit.models.sentence import SentenceModel, SentenceSpec, embed

STATIC_RECORD = "distilkit_static.json"  # how the folder was built; also marks it as a distilkit static model


class StaticModule(nn.Module):
    """The static model in PyTorch: the mean of a text's token rows, as sentence-transformers' StaticEmbedding."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag.from_pretrained(table, freeze=False, mode="mean")
        self.config = SimpleNamespace(hidden_size=table.shape[1])  # what the embedding evaluation reads

    def forward(self, input_ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.embedding(input_ids, offsets)


def token_bags(tokenizer, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, offsets) of ``texts`` for an EmbeddingBag: no special tokens, no truncation (StaticEmbedding)."""
    ids = [encoding.ids for encoding in tokenizer.encode_batch(list(texts), add_special_tokens=False)]
    offsets = torch.from_numpy(np.cumsum([0] + [len(row) for row in ids[:-1]]))
    return torch.tensor([i for row in ids for i in row], dtype=torch.long), offsets


@dataclass
class StaticSentenceModel(SentenceModel):
    """A static folder loaded for sentence embeddings; ``max_len`` is ignored (a static model reads every token)."""

    def encode(self, texts: Sequence[str], batch_size: int = 64, max_len: int | None = None) -> np.ndarray:
        chunks = [np.zeros((0, self.model.config.hidden_size), np.float32)]
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                pooled = self.model(*token_bags(self.tokenizer, texts[start : start + batch_size]))
                chunks.append(embed(pooled, self.spec).float().numpy())
        return np.concatenate(chunks)


def is_static(path: str | Path) -> bool:
    return (Path(path) / STATIC_RECORD).is_file()


def load_static(path: str | Path) -> StaticSentenceModel:
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    path = Path(path)
    table = load_file(str(path / "model.safetensors"))["embedding.weight"]
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.no_padding()
    return StaticSentenceModel(str(path), StaticModule(table).eval(), tokenizer, SentenceSpec(("mean",), True))
