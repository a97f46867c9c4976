"""What the student is trained to match: which outputs to compute and which loss terms to form.

Two objectives: "mlm", DistilBERT's triple loss on masked text, and "embedding", the teacher's pooled
sentence embeddings on unmasked text. Layer matches are data (lists of ``(student, teacher)`` index
pairs), not code branches (TextBrewer's intermediate matches). Hidden-state indices count as
transformers does: 0 is the embedding output, i is the output of layer i. Attention indices are
1-based layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from distilkit import losses
from distilkit.errors import ConfigError
from distilkit.models.sentence import SentenceSpec, pool
from distilkit.models.teacher import encoder_of, mlm_head_of

LayerPairs = list[tuple[int, int]]


def parse_layer_pairs(text: str | None, flag: str) -> LayerPairs | None:
    """'1:2,3:6' → [(1, 2), (3, 6)]; None stays None (use the default map)."""
    if text is None or text.strip().lower() in ("", "default", "auto"):
        return None
    pairs = []
    for part in text.split(","):
        try:
            student, teacher = (int(x) for x in part.split(":"))
        except ValueError:
            raise ConfigError(f"{flag} must look like '1:2,3:6' (student:teacher), got '{text}'") from None
        pairs.append((student, teacher))
    return pairs


@dataclass(frozen=True)
class Objective:
    """The resolved loss: term weights, temperature, layer matches and, for embeddings, the pooling recipe."""

    weights: dict[str, float]
    temperature: float
    hidden_pairs: LayerPairs = field(default_factory=list)
    attention_pairs: LayerPairs = field(default_factory=list)
    kind: str = "mlm"  # "mlm" or "embedding"
    sentence: SentenceSpec | None = None  # embedding objective: how the teacher pools (and the student will)

    def active(self, name: str) -> bool:
        return self.weights.get(name, 0.0) > 0

    @property
    def needs_masking(self) -> bool:
        return self.active("kl") or self.active("mlm")

    @property
    def needs_all_hidden(self) -> bool:
        return self.active("hidden")

    @property
    def needs_attentions(self) -> bool:
        return self.active("attention")

    @property
    def pooling(self) -> tuple[str, ...] | None:
        """Pooling modes when a sentence-embedding term is on, else None."""
        wanted = self.active("emb_mse") or self.active("emb_cos") or self.active("emb_sim")
        return self.sentence.pooling if wanted and self.sentence is not None else None

    def active_weights(self) -> dict[str, float]:
        return {name: w for name, w in self.weights.items() if w > 0}


class EncoderWithHead(nn.Module):
    """Runs an encoder and, optionally, its MLM head on the masked rows only, pooling into sentence vectors
    and, for a student narrower than its teacher, the loss projection into the teacher's width.

    Wrapping the forward in one module lets DDP see every parameter that gets a gradient (the
    projection's included).
    """

    def __init__(
        self, model: nn.Module, pooling: tuple[str, ...] | None = None, projection: nn.Linear | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.encoder = encoder_of(model)
        self.head = mlm_head_of(model)
        self.pooling = pooling
        self.projection = projection

    def _to_teacher_width(self, states: torch.Tensor) -> torch.Tensor:
        """(..., k·d_s) → (..., k·d_t): P applied to each of the k concatenated d_s-wide blocks."""
        if self.projection is None:
            return states
        blocks = states.unflatten(-1, (-1, self.projection.in_features))
        return self.projection(blocks).flatten(-2)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        masked_rows: torch.Tensor | None,
        all_hidden: bool,
        attentions: bool,
    ) -> dict[str, torch.Tensor | tuple | None]:
        """input_ids, attention_mask: (B, L). masked_rows: (n_masked,) indices into the flattened B·L."""
        out = self.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states=all_hidden,
            output_attentions=attentions,
            return_dict=True,
        )
        last = out.last_hidden_state
        logits = pooled = None
        if masked_rows is not None and self.head is not None:
            logits = self.head(last.flatten(0, 1)[masked_rows])
        if self.pooling is not None:
            pooled = self._to_teacher_width(pool(last, attention_mask, self.pooling))
        hidden = out.hidden_states
        if self.projection is not None:
            last = self._to_teacher_width(last)
            hidden = tuple(self._to_teacher_width(h) for h in hidden) if hidden is not None else None
        return {"last": last, "hidden": hidden, "attentions": out.attentions, "logits": logits, "pooled": pooled}


def _query_rows(attention: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, H, L, L) attention probabilities → (n_queries, H, L) at the non-pad query positions."""
    return attention.transpose(1, 2)[mask]


def compute_terms(
    objective: Objective,
    student_out: dict,
    teacher_out: dict,
    attention_mask: torch.Tensor,
    mlm_labels: torch.Tensor | None,
    normalizers: dict[str, float],
) -> dict[str, torch.Tensor]:
    """The unweighted loss terms of one micro-batch, each normalised by the *global* row count.

    attention_mask: (B, L); mlm_labels: (n_masked,) targets at the masked rows.
    normalizers: global counts — "masked" (masked tokens), "tokens" (non-pad tokens), "sequences".
    The sentence-embedding terms are the hidden-state losses applied to rows that are pooled
    sentence vectors (B, k·d_t): emb_mse = Σ_rows mean_d (s − t)² / n_sequences on the vectors
    before L2 normalisation (so it also pins their scale), emb_cos = Σ_rows (1 − cos(s, t)) /
    n_sequences (scale-free: the same on the normalised embeddings), emb_sim = Σ_rows mean_j of the
    squared gap between the student's and the teacher's cosine similarities to the other sentences of
    the micro-batch / n_sequences.
    """
    tokens = attention_mask.bool()
    terms: dict[str, torch.Tensor] = {}
    if objective.active("kl"):
        terms["kl"] = losses.soft_target_kl(
            student_out["logits"], teacher_out["logits"], objective.temperature, normalizers["masked"]
        )
    if objective.active("mlm"):
        terms["mlm"] = losses.masked_lm_ce(student_out["logits"], mlm_labels, normalizers["masked"])
    if objective.active("emb_mse"):
        terms["emb_mse"] = losses.hidden_mse(student_out["pooled"], teacher_out["pooled"], normalizers["sequences"])
    if objective.active("emb_cos"):
        terms["emb_cos"] = losses.hidden_cosine(student_out["pooled"], teacher_out["pooled"], normalizers["sequences"])
    if objective.active("emb_sim"):  # similarities within this micro-batch (with DDP: within each process's rows)
        terms["emb_sim"] = losses.similarity_mse(student_out["pooled"], teacher_out["pooled"], normalizers["sequences"])
    if objective.active("cos"):
        terms["cos"] = losses.hidden_cosine(
            student_out["last"][tokens], teacher_out["last"][tokens], normalizers["tokens"]
        )
    if objective.active("hidden"):
        n = normalizers["tokens"] * len(objective.hidden_pairs)
        terms["hidden"] = sum(
            losses.hidden_mse(student_out["hidden"][s][tokens], teacher_out["hidden"][t][tokens], n)
            for s, t in objective.hidden_pairs
        )
    if objective.active("attention"):
        n = normalizers["tokens"] * len(objective.attention_pairs)
        terms["attention"] = sum(
            losses.attention_kl(
                _query_rows(student_out["attentions"][s - 1], tokens),
                _query_rows(teacher_out["attentions"][t - 1], tokens),
                n,
            )
            for s, t in objective.attention_pairs
        )
    return terms
