"""Distillation loss terms: pure functions, one per term, plus their weighted sum.

Every term returns ``sum over rows / normalizer``. ``normalizer`` defaults to the number of
rows (a plain mean). The training loop passes the row count of the whole global batch —
summed over gradient-accumulation micro-batches and processes — so that accumulation and
DDP give exactly the gradient of one large batch (the "gradient accumulation bug" fix).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from distilkit.errors import ConfigError


def _norm(rows: int, normalizer: float | None) -> float:
    return float(rows if normalizer is None else normalizer) or 1.0


def soft_target_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float, normalizer: float | None = None
) -> torch.Tensor:
    """KL(teacher_T ‖ student_T) · T², summed over rows and divided by ``normalizer`` (default: n rows).

    student_logits, teacher_logits: (n, classes) — for MLM, the vocabulary logits at the masked
    positions only. Softmax at temperature T on both; ×T² keeps gradient scale independent of T.
    Hinton et al. 2015; DistilBERT (Sanh et al. 2019) §2. Returns a scalar.
    """
    log_p_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    kl = F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="sum")
    return kl * temperature**2 / _norm(student_logits.shape[0], normalizer)


def masked_lm_ce(student_logits: torch.Tensor, labels: torch.Tensor, normalizer: float | None = None) -> torch.Tensor:
    """Cross-entropy of the hard masked-LM targets, summed over rows / ``normalizer`` (default: n rows).

    student_logits: (n, vocab) at the masked positions; labels: (n,) original token ids. Devlin et al. 2019.
    """
    ce = F.cross_entropy(student_logits.float(), labels, reduction="sum")
    return ce / _norm(labels.shape[0], normalizer)


def hidden_cosine(
    student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, normalizer: float | None = None
) -> torch.Tensor:
    """Cosine embedding loss with target 1: Σ (1 − cos(s_i, t_i)) / ``normalizer`` (default: n rows).

    student_hidden, teacher_hidden: (n_tokens, hidden), the non-pad tokens. DistilBERT §2 ("L_cos").
    """
    cos = F.cosine_similarity(student_hidden.float(), teacher_hidden.float(), dim=-1)
    return (1.0 - cos).sum() / _norm(student_hidden.shape[0], normalizer)


def hidden_mse(
    student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, normalizer: float | None = None
) -> torch.Tensor:
    """Squared error averaged over the hidden dimension, summed over rows / ``normalizer`` (default: n rows).

    student_hidden, teacher_hidden: (n_tokens, hidden) at matched layers. TinyBERT (Jiao et al. 2020) §3.1.
    """
    per_row = (student_hidden.float() - teacher_hidden.float()).pow(2).mean(dim=-1)
    return per_row.sum() / _norm(student_hidden.shape[0], normalizer)


def similarity_mse(
    student_embeddings: torch.Tensor, teacher_embeddings: torch.Tensor, normalizer: float | None = None
) -> torch.Tensor:
    """In-batch relational loss: how far the student's pairwise cosine similarities are from the teacher's,
    Σ_i mean_j (cos(s_i, s_j) − cos(t_i, t_j))² / ``normalizer`` (default: n rows).

    student_embeddings: (n, d_s), teacher_embeddings: (n, d_t), one row per sentence of the same batch (the
    widths may differ: only the n × n similarity matrices are compared). Distance-wise relational KD (Park et
    al. 2019) on cosine similarities — the quantity STS and retrieval rank by.
    """
    student = F.normalize(student_embeddings.float(), dim=-1)
    teacher = F.normalize(teacher_embeddings.float(), dim=-1)
    per_row = (student @ student.T - teacher @ teacher.T).pow(2).mean(dim=-1)
    return per_row.sum() / _norm(student_embeddings.shape[0], normalizer)


def attention_kl(
    student_attention: torch.Tensor, teacher_attention: torch.Tensor, normalizer: float | None = None
) -> torch.Tensor:
    """KL(teacher ‖ student) between attention distributions, averaged over heads, summed over rows.

    student_attention, teacher_attention: (n_queries, heads, keys) attention probabilities at the
    non-pad query positions (rows sum to 1 over keys). Keys where the teacher puts zero mass
    contribute nothing. Divided by ``normalizer`` (default: n_queries). MiniLM (Wang et al. 2020) §3.1.
    """
    teacher = teacher_attention.float()
    student_log = torch.log(student_attention.float().clamp_min(1e-12))
    kl = torch.where(teacher > 0, teacher * (torch.log(teacher.clamp_min(1e-12)) - student_log), 0.0)
    per_query = kl.sum(dim=-1).mean(dim=-1)
    return per_query.sum() / _norm(student_attention.shape[0], normalizer)


def projected_hidden_mse(
    student_hidden: torch.Tensor,
    teacher_hidden: torch.Tensor,
    projection_weight: torch.Tensor,
    normalizer: float | None = None,
) -> torch.Tensor:
    """``hidden_mse`` of the student's states mapped into the teacher's width: Σ_rows mean_d (s·Wᵀ − t)² / normalizer.

    student_hidden: (n_tokens, d_s), teacher_hidden: (n_tokens, d_t), the non-pad tokens of matched layers;
    projection_weight: (d_t, d_s), a learned ``nn.Linear(d_s, d_t, bias=False).weight`` trained with the
    student (the gradient reaches it). Default normalizer: n_tokens. TinyBERT (Jiao et al. 2020) §3.1, L_hidn with W_h.
    """
    return hidden_mse(F.linear(student_hidden.float(), projection_weight.float()), teacher_hidden, normalizer)


def _relation_log_probs(vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, R, L, d) → (B, R, L, L): log softmax_j(a_i·a_j / √d) over the non-pad columns j (pad columns: 0)."""
    vectors = vectors.float()
    scores = vectors @ vectors.transpose(-1, -2) / math.sqrt(vectors.shape[-1])
    columns = mask[:, None, None, :]
    # A finite fill, not −inf: a wholly padded row stays finite, so no NaN reaches the backward pass.
    log_probs = F.log_softmax(scores.masked_fill(~columns, torch.finfo(scores.dtype).min), dim=-1)
    return log_probs.masked_fill(~columns, 0.0)


def _relation_kl(
    student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor, normalizer: float | None
) -> torch.Tensor:
    """(B, R, L, d_s), (B, R, L, d_t), mask (B, L) → Σ_{non-pad rows} mean_R KL(teacher ‖ student) / normalizer."""
    mask = attention_mask.bool()
    log_student, log_teacher = _relation_log_probs(student, mask), _relation_log_probs(teacher, mask)
    kl = (log_teacher.exp() * (log_teacher - log_student)).sum(dim=-1)  # pad columns add exp(0)·(0 − 0) = 0
    per_row = kl.mean(dim=1)  # (B, L)
    return per_row[mask].sum() / _norm(int(mask.sum()), normalizer)


def value_relation_kl(
    student_values: torch.Tensor,
    teacher_values: torch.Tensor,
    attention_mask: torch.Tensor,
    normalizer: float | None = None,
) -> torch.Tensor:
    """MiniLM's value-relation loss: KL(teacher VR ‖ student VR), VR = softmax(V Vᵀ / √d_head) per head.

    student_values: (B, H, L, d_s_head), teacher_values: (B, H, L, d_t_head), one layer's values split into
    heads; attention_mask: (B, L), 1 at real tokens. The head counts must be equal (MiniLM v1 pairs head h
    with head h; the head widths may differ) — otherwise a ConfigError: use ``attention_relation_kl``. Pad
    columns are left out of every softmax; the KL is averaged over heads, summed over the non-pad rows and
    divided by ``normalizer`` (default: the number of non-pad rows). MiniLM (Wang et al. 2020), L_VR.
    """
    if student_values.shape[1] != teacher_values.shape[1]:
        raise ConfigError(
            f"value-relation distillation (MiniLM v1) needs equal head counts, but the student has "
            f"{student_values.shape[1]} heads and the teacher {teacher_values.shape[1]} — use MiniLMv2 relation "
            "heads instead"
        )
    return _relation_kl(student_values, teacher_values, attention_mask, normalizer)


def attention_relation_kl(
    student_states: torch.Tensor,
    teacher_states: torch.Tensor,
    attention_mask: torch.Tensor,
    relation_heads: int,
    normalizer: float | None = None,
) -> torch.Tensor:
    """MiniLMv2's self-attention relation loss for one kind of vector (queries, keys or values).

    student_states: (B, L, d_s), teacher_states: (B, L, d_t): all heads' queries (or keys, or values) of one
    layer concatenated, as the layer's query/key/value projection outputs them; attention_mask: (B, L).
    Both are split into ``relation_heads`` heads of width d_rel = d/relation_heads, whatever either model's
    attention head count; the relation of each is softmax(A Aᵀ / √d_rel) over the non-pad columns. Returns
    KL(teacher ‖ student) averaged over relation heads, summed over the non-pad rows and divided by
    ``normalizer`` (default: the number of non-pad rows). The full loss sums the query–query, key–key and
    value–value terms. MiniLMv2 (Wang et al. 2021), multi-head self-attention relations.
    """
    widths = (student_states.shape[-1], teacher_states.shape[-1])
    if relation_heads < 1 or any(width % relation_heads for width in widths):
        raise ConfigError(
            f"relation heads ({relation_heads}) must divide both hidden sizes (student {widths[0]}, teacher "
            f"{widths[1]}) — pick a divisor of {math.gcd(*widths)}"
        )

    def split(states: torch.Tensor) -> torch.Tensor:  # (B, L, d) → (B, R, L, d / R)
        return states.unflatten(-1, (relation_heads, -1)).transpose(1, 2)

    return _relation_kl(split(student_states), split(teacher_states), attention_mask, normalizer)


def weighted_sum(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """Σ weights[name] · terms[name] over the terms present (torchdistill's WeightedSumLoss)."""
    total = None
    for name, value in terms.items():
        contribution = weights[name] * value
        total = contribution if total is None else total + contribution
    if total is None:
        raise ValueError("no loss terms to sum")
    return total
