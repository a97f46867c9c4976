"""Sentence embeddings from any encoder, and how faithfully a student reproduces a teacher's.

Pooling and normalisation follow the model's sentence-transformers config when it has one
(``distilkit.models.sentence``); a bare encoder gets all-MiniLM-L6-v2's recipe, mean pooling over
non-pad tokens followed by L2 normalisation.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from distilkit.errors import DataError
from distilkit.models.sentence import SentenceSpec, embed, pool, read_sentence_spec
from distilkit.models.teacher import encoder_of, load_model, load_tokenizer, resolve_model_path


@torch.inference_mode()
def encode(
    model: nn.Module,
    tokenizer,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    max_len: int | None = None,
    spec: SentenceSpec | None = None,
) -> np.ndarray:
    """Sentence embeddings as sentence-transformers computes them, (n_texts, dim) float32.

    ``spec`` (default: mean pooling + L2 normalisation) says how to pool; ``max_len`` (default: the
    spec's ``max_seq_length``, else the tokenizer's limit) is where inputs are truncated.
    """
    spec = spec or SentenceSpec()
    encoder = encoder_of(model).eval()
    device = next(encoder.parameters()).device
    max_len = max_len or spec.max_length(encoder.config, tokenizer)
    # Sort by length so each batch pads little; restore the caller's order at the end.
    order = np.argsort([-len(t) for t in texts], kind="stable")
    chunks = []
    for start in range(0, len(texts), batch_size):
        batch = [texts[i] for i in order[start : start + batch_size]]
        if spec.do_lower_case:
            batch = [text.lower() for text in batch]
        inputs = tokenizer(batch, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        inputs = {k: v.to(device) for k, v in inputs.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        hidden = encoder(**inputs).last_hidden_state
        chunks.append(embed(pool(hidden, inputs["attention_mask"], spec.pooling), spec).float().cpu().numpy())
    width = encoder.config.hidden_size * len(spec.pooling) if not chunks else chunks[0].shape[1]
    embeddings = np.concatenate(chunks) if chunks else np.zeros((0, width), np.float32)
    restored = np.empty_like(embeddings)
    restored[order] = embeddings
    return restored


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


@dataclass
class SentenceModel:
    """A model folder loaded for sentence embeddings: the model, its tokenizer and its pooling recipe."""

    path: str
    model: nn.Module
    tokenizer: object
    spec: SentenceSpec

    def encode(self, texts: Sequence[str], batch_size: int = 64, max_len: int | None = None) -> np.ndarray:
        return encode(self.model, self.tokenizer, texts, batch_size=batch_size, max_len=max_len, spec=self.spec)


def load_sentence_model(name_or_path: str | Path) -> SentenceModel:
    """Load a model folder (a sentence-transformers folder, a distilkit student or a bare encoder) for encoding."""
    path = resolve_model_path(name_or_path)
    return SentenceModel(path, load_model(path), load_tokenizer(path), read_sentence_spec(path))


def embedding_fidelity(teacher_emb: np.ndarray, student_emb: np.ndarray, k: int = 10) -> dict[str, float]:
    """How closely student embeddings follow the teacher's on the same texts.

    teacher_emb, student_emb: (n, d) L2-normalised rows (d may differ).
    - ``cosine``: mean cosine similarity of each student embedding to the teacher's (needs equal d);
    - ``nn_agreement@1``: fraction of texts whose nearest other text is the same for both models;
    - ``nn_recall@k``: fraction of texts whose teacher nearest neighbour is in the student's top k.
    """
    n = len(teacher_emb)
    teacher_sim = teacher_emb @ teacher_emb.T
    student_sim = student_emb @ student_emb.T
    np.fill_diagonal(teacher_sim, -np.inf)
    np.fill_diagonal(student_sim, -np.inf)
    teacher_nn = teacher_sim.argmax(1)
    student_rank = np.argsort(-student_sim, axis=1)[:, :k]
    result = {
        "nn_agreement@1": float((student_rank[:, 0] == teacher_nn).mean()),
        f"nn_recall@{k}": float((student_rank == teacher_nn[:, None]).any(1).mean()),
        "n": n,
    }
    if teacher_emb.shape[1] == student_emb.shape[1]:
        result["cosine"] = float((teacher_emb * student_emb).sum(1).mean())
    return result


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def encode_seconds(
    models: Sequence[SentenceModel], texts: Sequence[str], repeats: int = 5, batch_size: int = 64
) -> list[float]:
    """Median seconds per model to embed ``texts``. The models take turns batch by batch, so that on a
    shared machine every model sees the same load; one warm-up pass each is excluded."""
    chunks = [texts[start : start + batch_size] for start in range(0, len(texts), batch_size)]
    for model in models:
        model.encode(chunks[0], batch_size=batch_size)
    totals = np.zeros((repeats, len(models)))
    for repeat in range(repeats):
        for chunk in chunks:
            for index, model in enumerate(models):
                start = time.perf_counter()
                model.encode(chunk, batch_size=batch_size)
                totals[repeat, index] += time.perf_counter() - start
    return [float(seconds) for seconds in np.median(totals, axis=0)]
