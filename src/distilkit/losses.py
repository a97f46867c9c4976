"""Distillation loss terms: pure functions, one per term, plus their weighted sum.

Every term returns ``sum over rows / normalizer``. ``normalizer`` defaults to the number of
rows (a plain mean). The training loop passes the row count of the whole global batch —
summed over gradient-accumulation micro-batches and processes — so that accumulation and
DDP give exactly the gradient of one large batch (the "gradient accumulation bug" fix).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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


def weighted_sum(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """Σ weights[name] · terms[name] over the terms present (torchdistill's WeightedSumLoss)."""
    total = None
    for name, value in terms.items():
        contribution = weights[name] * value
        total = contribution if total is None else total + contribution
    if total is None:
        raise ValueError("no loss terms to sum")
    return total
