"""Dynamic masking for the MLM and soft-target terms: 15% of tokens, 80/10/10, frequency-smoothed.

Masking is drawn over the *flat* token stream of one global batch from a generator seeded
by ``(seed, step)``. It therefore does not depend on padding, on how the batch is split
into micro-batches or processes, or on anything that happened before the step: a resumed
run and a multi-process run mask exactly as the single uninterrupted run does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from distilkit.errors import DataError


@dataclass(frozen=True)
class MaskingSpec:
    mlm_prob: float = 0.15  # BERT / DistilBERT
    mask_frac: float = 0.8  # replaced by [MASK]
    random_frac: float = 0.1  # replaced by a random token; the remaining 10% are kept as they are
    smoothing: float = 0.7  # DistilBERT: selection probability ∝ count^-0.7 (XLM, Lample & Conneau 2019)


def selection_weights(token_counts: np.ndarray, special_ids: list[int], smoothing: float) -> torch.Tensor:
    """Unnormalised probability of picking each vocabulary id for prediction: max(count, 1)^-smoothing.

    Special tokens get weight 0 (they are never predicted). Returns a float64 tensor (vocab,).
    """
    weights = np.maximum(np.asarray(token_counts, dtype=np.float64), 1.0) ** -smoothing
    weights[np.asarray(special_ids, dtype=np.int64)] = 0.0
    return torch.from_numpy(weights)


def mask_token_id(meta: dict) -> int:
    """The mask id of prepared data (``meta.json``), or a one-line error when its tokenizer has none."""
    mask_id = meta["special_ids"].get("mask")
    if mask_id is None:
        raise DataError(
            f"the tokenizer of {meta.get('tokenizer') or 'this data'} has no mask token, which masked-LM distillation"
            " needs — use a tokenizer with one, or distil without MLM: --alpha-kl 0 --alpha-mlm 0"
        )
    return int(mask_id)


def step_generator(seed: int, step: int) -> torch.Generator:
    """A generator that depends only on (seed, step): stateless masking, exact under resume and DDP."""
    state = np.random.SeedSequence([seed, step]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & ((1 << 63) - 1))


def mask_flat_tokens(
    flat_ids: torch.Tensor,
    weights: torch.Tensor,
    *,
    mask_id: int,
    vocab_size: int,
    spec: MaskingSpec,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose and corrupt prediction targets in a flat token stream.

    flat_ids: (n,) int64 token ids of every sequence of the global batch, concatenated.
    weights: (vocab,) selection weights from :func:`selection_weights`.
    vocab_size: random replacements are drawn from the ids below it that are not special (weight > 0).
    Returns ``(input_ids, labels)``, both (n,): the corrupted ids, and the original id at the
    ``ceil(mlm_prob · n_maskable)`` chosen positions with -100 elsewhere.
    """
    labels = torch.full_like(flat_ids, -100)
    token_weights = weights[flat_ids]
    n_maskable = int((token_weights > 0).sum())
    n_targets = min(n_maskable, math.ceil(spec.mlm_prob * n_maskable))
    if n_targets == 0:
        return flat_ids.clone(), labels
    # Sampling without replacement, weighted by smoothed inverse frequency (DistilBERT's distiller).
    chosen = torch.multinomial(token_weights, n_targets, replacement=False, generator=generator)
    labels[chosen] = flat_ids[chosen]
    action = torch.rand(n_targets, generator=generator, dtype=torch.float64)
    # Random replacements are ordinary tokens, never specials: a <pad> inside a RoBERTa sequence would shift the
    # position ids of every later token, a <s> or [SEP] would fake a sequence boundary.
    ordinary = (weights[:vocab_size] > 0).nonzero(as_tuple=True)[0]
    random_ids = ordinary[torch.randint(0, len(ordinary), (n_targets,), generator=generator)]
    replaced = flat_ids[chosen].clone()
    use_mask = action < spec.mask_frac
    use_random = (action >= spec.mask_frac) & (action < spec.mask_frac + spec.random_frac)
    replaced[use_mask] = mask_id
    replaced[use_random] = random_ids[use_random]
    input_ids = flat_ids.clone()
    input_ids[chosen] = replaced
    return input_ids, labels


def mask_sequences(
    sequences: list[torch.Tensor],
    weights: torch.Tensor,
    *,
    mask_id: int,
    vocab_size: int,
    spec: MaskingSpec,
    generator: torch.Generator,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Mask a global batch of variable-length sequences as one flat stream; returns per-sequence (ids, labels)."""
    lengths = [len(s) for s in sequences]
    input_ids, labels = mask_flat_tokens(
        torch.cat(sequences), weights, mask_id=mask_id, vocab_size=vocab_size, spec=spec, generator=generator
    )
    return list(input_ids.split(lengths)), list(labels.split(lengths))
