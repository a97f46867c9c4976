"""What the student is trained to match: which outputs to compute and which loss terms to form.

Layer matches are data (lists of ``(student, teacher)`` index pairs), not code branches
(TextBrewer's intermediate matches). Hidden-state indices count as transformers does:
0 is the embedding output, i is the output of layer i. Attention indices are 1-based layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from distilkit import losses
from distilkit.errors import ConfigError
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
    """The resolved loss: term weights, temperature and layer matches."""

    weights: dict[str, float]
    temperature: float
    hidden_pairs: LayerPairs = field(default_factory=list)
    attention_pairs: LayerPairs = field(default_factory=list)

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

    def active_weights(self) -> dict[str, float]:
        return {name: w for name, w in self.weights.items() if w > 0}


class EncoderWithHead(nn.Module):
    """Runs an encoder and, optionally, its MLM head on the masked rows only.

    Wrapping the forward in one module lets DDP see every parameter that gets a gradient.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.encoder = encoder_of(model)
        self.head = mlm_head_of(model)

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
        logits = None
        if masked_rows is not None and self.head is not None:
            logits = self.head(last.flatten(0, 1)[masked_rows])
        return {"last": last, "hidden": out.hidden_states, "attentions": out.attentions, "logits": logits}


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
    normalizers: global counts — "masked" (masked tokens), "tokens" (non-pad tokens).
    """
    tokens = attention_mask.bool()
    terms: dict[str, torch.Tensor] = {}
    if objective.active("kl"):
        terms["kl"] = losses.soft_target_kl(
            student_out["logits"], teacher_out["logits"], objective.temperature, normalizers["masked"]
        )
    if objective.active("mlm"):
        terms["mlm"] = losses.masked_lm_ce(student_out["logits"], mlm_labels, normalizers["masked"])
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
