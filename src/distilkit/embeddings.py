"""Sentence embeddings from any encoder, and how faithfully a student reproduces a teacher's.

Mean pooling over non-pad tokens followed by L2 normalisation is what all-MiniLM-L6-v2
(the embedded default teacher) does in sentence-transformers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from distilkit.models.teacher import encoder_of


@torch.inference_mode()
def encode(
    model: nn.Module,
    tokenizer,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    max_len: int = 128,
    normalize: bool = True,
) -> np.ndarray:
    """Mean-pooled (and by default L2-normalised) sentence embeddings, (n_texts, hidden) float32."""
    encoder = encoder_of(model).eval()
    device = next(encoder.parameters()).device
    # Sort by length so each batch pads little; restore the caller's order at the end.
    order = np.argsort([-len(t) for t in texts], kind="stable")
    chunks = []
    for start in range(0, len(texts), batch_size):
        batch = [texts[i] for i in order[start : start + batch_size]]
        inputs = tokenizer(batch, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        inputs = {k: v.to(device) for k, v in inputs.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        hidden = encoder(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        if normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        chunks.append(pooled.float().cpu().numpy())
    embeddings = np.concatenate(chunks) if chunks else np.zeros((0, encoder.config.hidden_size), np.float32)
    restored = np.empty_like(embeddings)
    restored[order] = embeddings
    return restored


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


def time_encode(model: nn.Module, tokenizer, texts: Sequence[str], repeats: int = 3, **kwargs) -> float:
    """Median seconds to embed ``texts`` (one warm-up pass excluded)."""
    encode(model, tokenizer, texts[: min(len(texts), 8)], **kwargs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        encode(model, tokenizer, texts, **kwargs)
        times.append(time.perf_counter() - start)
    return float(np.median(times))
