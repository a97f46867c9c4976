"""What the student is trained to match: which outputs to compute and which loss terms to form.

Two objectives: "mlm", DistilBERT's triple loss on masked text, and "embedding", the teacher's pooled
sentence embeddings on unmasked text. Layer matches are data (lists of ``(student, teacher)`` index
pairs), not code branches (TextBrewer's intermediate matches). Hidden-state indices count as
transformers does: 0 is the embedding output, i is the output of layer i. Attention and relation
indices are 1-based layers. Every weight and the temperature is a Schedule over the run; a step's
values come from ``Objective.at``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from distilkit import losses
from distilkit.errors import ConfigError, ModelError
from distilkit.models.sentence import SentenceSpec, pool
from distilkit.models.teacher import encoder_of, mlm_head_of
from distilkit.train.schedule import Schedule, parse_schedule

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


def _as_schedule(value: Schedule | float) -> Schedule:
    return value if isinstance(value, Schedule) else parse_schedule(value)


def attention_heads(config) -> int:
    """The attention head count of a BERT/RoBERTa (num_attention_heads) or DistilBERT (n_heads) config."""
    return int(getattr(config, "num_attention_heads", None) or config.n_heads)


@dataclass(frozen=True)
class Objective:
    """The resolved loss: term weights and temperature (schedules over the run; a plain number is constant),
    layer matches and, for embeddings, the pooling recipe."""

    weights: dict[str, Schedule | float]
    temperature: Schedule | float
    hidden_pairs: LayerPairs = field(default_factory=list)
    attention_pairs: LayerPairs = field(default_factory=list)
    kind: str = "mlm"  # "mlm" or "embedding"
    sentence: SentenceSpec | None = None  # embedding objective: how the teacher pools (and the student will)
    relation_pairs: LayerPairs = field(default_factory=list)  # value_relation and relation terms, 1-based layers
    relation_heads: int = 1  # MiniLMv2 relation heads: divides both widths

    def __post_init__(self) -> None:  # a plain number is a constant schedule (hand-built objectives, tests)
        object.__setattr__(self, "weights", {name: _as_schedule(w) for name, w in self.weights.items()})
        object.__setattr__(self, "temperature", _as_schedule(self.temperature))

    def active(self, name: str) -> bool:
        """Whether the term's weight is above 0 at some point of the run."""
        return name in self.weights and self.weights[name].bounds()[1] > 0

    def at(self, step: int, total_steps: int) -> tuple[dict[str, float], float]:
        """The active terms' weights and the temperature at optimizer step `step` (0-based) of `total_steps`."""
        weights = {name: w.value(step, total_steps) for name, w in self.weights.items() if self.active(name)}
        return weights, self.temperature.value(step, total_steps)

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
    def compares_states(self) -> bool:
        """Whether a term compares student and teacher vectors entry by entry: a narrower student then goes
        through the loss projection (TinyBERT's W_h)."""
        return any(self.active(name) for name in ("cos", "hidden", "emb_mse", "emb_cos"))

    @property
    def needs_qkv(self) -> bool:
        return self.active("value_relation") or self.active("relation")

    @property
    def pooling(self) -> tuple[str, ...] | None:
        """Pooling modes when a sentence-embedding term is on, else None."""
        wanted = self.active("emb_mse") or self.active("emb_cos") or self.active("emb_sim")
        return self.sentence.pooling if wanted and self.sentence is not None else None

    def active_weights(self) -> dict[str, str]:
        """The active terms' weight schedules as text ("5", "5:1"), for the resolved config and the result."""
        return {name: str(w) for name, w in self.weights.items() if self.active(name)}


QKV_NAMES = (("query", "key", "value"), ("q_lin", "k_lin", "v_lin"))  # BERT/RoBERTa; DistilBERT


def attention_projections(model: nn.Module, layer: int) -> tuple[nn.Module, nn.Module, nn.Module]:
    """The query, key and value Linear modules of 1-based `layer`: ``encoder.layer[i].attention.self.query``
    (BERT, RoBERTa), ``transformer.layer[i].attention.q_lin`` (DistilBERT) or ``attentions[i].q_lin`` (XLM)."""
    encoder = encoder_of(model)
    if hasattr(encoder, "attentions"):  # XLM layout (FlauBERT): one ModuleList per part of the layers
        attention = encoder.attentions[layer - 1]
    else:
        stack = encoder.encoder.layer if hasattr(encoder, "encoder") else encoder.transformer.layer
        attention = stack[layer - 1].attention
    attention = getattr(attention, "self", attention)
    for names in QKV_NAMES:
        if all(hasattr(attention, name) for name in names):
            return tuple(getattr(attention, name) for name in names)
    raise ModelError(f"no query/key/value projections found in layer {layer} of {type(model).__name__}")


class QKVCapture:
    """Forward hooks on the query, key and value projections of some layers: after a forward pass, ``take()``
    gives {layer: (queries, keys, values)}, each (B, L, d) — all heads concatenated, as the projections output
    them (MiniLM's relations). Hooks exist only for an objective with relation terms: no cost otherwise."""

    def __init__(self, model: nn.Module, layers: list[int]) -> None:
        self.captured: dict[tuple[int, int], torch.Tensor] = {}
        self.layers = sorted(set(layers))
        for layer in self.layers:
            for kind, module in enumerate(attention_projections(model, layer)):
                module.register_forward_hook(self._keep(layer, kind))

    def _keep(self, layer: int, kind: int):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            self.captured[layer, kind] = output

        return hook

    def take(self) -> dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        qkv = {layer: tuple(self.captured.pop((layer, kind)) for kind in range(3)) for layer in self.layers}
        return qkv  # type: ignore[return-value]


class EncoderWithHead(nn.Module):
    """Runs an encoder and, optionally, its MLM head on the masked rows only, pooling into sentence vectors
    and, for a student narrower than its teacher, the loss projection into the teacher's width.

    Wrapping the forward in one module lets DDP see every parameter that gets a gradient (the
    projection's included).
    """

    def __init__(
        self, model: nn.Module, pooling: tuple[str, ...] | None = None, projection: nn.Linear | None = None,
        qkv_layers: list[int] | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.model = model
        self.encoder = encoder_of(model)
        self.head = mlm_head_of(model)
        self.pooling = pooling
        self.projection = projection
        self.qkv = QKVCapture(model, qkv_layers) if qkv_layers else None
        self.heads = attention_heads(model.config)

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
        """input_ids, attention_mask: (B, L). masked_rows: (n_masked,) indices into the flattened B·L.
        Returns last/hidden (in the teacher's width when projected), attentions, logits (masked rows), pooled,
        qkv ({layer: (q, k, v)} of the hooked layers, or None) and heads (this model's attention heads)."""
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
        qkv = self.qkv.take() if self.qkv is not None else None
        return {"last": last, "hidden": hidden, "attentions": out.attentions, "logits": logits, "pooled": pooled,
                "qkv": qkv, "heads": self.heads}  # fmt: skip


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
    temperature: float | None = None,
) -> dict[str, torch.Tensor]:
    """The unweighted loss terms of one micro-batch, each normalised by the *global* row count.

    attention_mask: (B, L); mlm_labels: (n_masked,) targets at the masked rows.
    normalizers: global counts — "masked" (masked tokens), "tokens" (non-pad tokens), "sequences".
    The sentence-embedding terms are the hidden-state losses applied to rows that are pooled
    sentence vectors (B, k·d_t): emb_mse = Σ_rows mean_d (s − t)² / n_sequences on the vectors
    before L2 normalisation (so it also pins their scale), emb_cos = Σ_rows (1 − cos(s, t)) /
    n_sequences (scale-free: the same on the normalised embeddings), emb_sim = Σ_rows mean_j of the
    squared gap between the student's and the teacher's cosine similarities to the other sentences of
    the micro-batch / n_sequences. The layer terms (hidden, attention, value_relation, relation) are summed over
    their layer pairs and divided by n_tokens · n_pairs; relation sums the q-q, k-k and v-v KLs (MiniLMv2).
    temperature: the step's (default: the schedule's start).
    """
    tokens = attention_mask.bool()
    terms: dict[str, torch.Tensor] = {}
    if objective.active("kl"):
        temperature = objective.temperature.start if temperature is None else temperature
        terms["kl"] = losses.soft_target_kl(
            student_out["logits"], teacher_out["logits"], temperature, normalizers["masked"]
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
    if objective.active("value_relation"):
        n = normalizers["tokens"] * len(objective.relation_pairs)
        terms["value_relation"] = sum(
            losses.value_relation_kl(
                _by_head(student_out["qkv"][s][2], student_out["heads"]),
                _by_head(teacher_out["qkv"][t][2], teacher_out["heads"]),
                attention_mask,
                n,
            )
            for s, t in objective.relation_pairs
        )
    if objective.active("relation"):
        n = normalizers["tokens"] * len(objective.relation_pairs)
        terms["relation"] = sum(
            losses.attention_relation_kl(student, teacher, attention_mask, objective.relation_heads, n)
            for s, t in objective.relation_pairs
            for student, teacher in zip(student_out["qkv"][s], teacher_out["qkv"][t], strict=True)
        )
    return terms


def _by_head(states: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, L, heads·d_head) → (B, heads, L, d_head): a layer's values split into its own attention heads."""
    return states.unflatten(-1, (heads, -1)).transpose(1, 2)
