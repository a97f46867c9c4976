"""The flags of ``distilkit distill``: one frozen dataclass, every default with where it comes from, and every
problem with the flags collected into one error before any work starts."""

from __future__ import annotations

from dataclasses import dataclass

from distilkit.errors import ConfigError

OBJECTIVES = ("mlm", "embedding")


@dataclass(frozen=True)
class DistillConfig:
    teacher: str
    student: str
    data: str
    out: str
    objective: str = "mlm"  # mlm: DistilBERT's triple loss; embedding: a sentence-embedding teacher's embeddings
    # Loss weights and temperature: DistilBERT release (train.py / distillation README). ce/mlm/cos: mlm objective.
    alpha_ce: float = 5.0  # soft-target KL on the teacher's MLM distribution
    alpha_mlm: float = 2.0  # masked-LM cross-entropy on the hard targets
    alpha_cos: float = 1.0  # cosine loss on the last hidden states
    alpha_hidden: float = 0.0  # MSE on mapped intermediate hidden states (TinyBERT)
    alpha_attention: float = 0.0  # KL between attention distributions (MiniLM)
    # Embedding objective: MSE to the teacher's sentence vectors (Reimers & Gurevych 2020) plus cosine. Equal
    # weights: on all-MiniLM-L6-v2, cosine alone and MSE + cosine gave the same STS-B (benchmarks/results).
    alpha_emb_mse: float = 1.0  # MSE between pooled sentence vectors (before L2 normalisation)
    alpha_emb_cos: float = 1.0  # 1 − cosine between the sentence embeddings
    alpha_emb_sim: float = 0.0  # MSE between in-batch cosine-similarity matrices (relational KD)
    temperature: float = 2.0
    layer_map: str | None = None  # hidden-state pairs "s:t,...", default: each student layer ↔ its source layer
    attention_map: str | None = None  # attention layer pairs "s:t,...", default: last ↔ last (MiniLM)
    # Masking: BERT's 15% with 80/10/10, DistilBERT's frequency smoothing 0.7.
    mlm_prob: float = 0.15
    mask_frac: float = 0.8
    random_frac: float = 0.1
    smoothing: float = 0.7
    # Optimisation: DistilBERT release values where they fit one CPU/GPU.
    batch_size: int = 32  # sequences per process per micro-batch
    grad_accum: int = 1  # DistilBERT used 50 (with batch 5 on 8 GPUs)
    lr: float = 5e-4  # DistilBERT
    weight_decay: float = 0.0  # DistilBERT
    warmup_ratio: float = 0.05  # DistilBERT warmup_prop
    max_grad_norm: float = 5.0  # DistilBERT
    epochs: int = 1
    max_steps: int | None = None  # overrides epochs
    time_budget: float | None = None  # seconds; stop (checkpointed, student saved) when exceeded
    group_by_length: bool = True
    seed: int = 56  # DistilBERT
    precision: str = "auto"
    device: str = "auto"
    save_every: int = 500
    keep: int = 3
    log_every: int = 1
    max_bad_steps: int = 5  # stop after this many non-finite steps in a row
    resume: bool = False
    overwrite: bool = False
    tensorboard: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.objective not in OBJECTIVES:
            problems.append(f"--objective must be one of {', '.join(OBJECTIVES)}, got '{self.objective}'")
        weights = [self.alpha_ce, self.alpha_mlm, self.alpha_cos, self.alpha_hidden, self.alpha_attention]
        weights += [self.alpha_emb_mse, self.alpha_emb_cos, self.alpha_emb_sim]
        if any(w < 0 for w in weights):
            problems.append("loss weights must be ≥ 0")
        used = (
            (self.alpha_emb_mse, self.alpha_emb_cos, self.alpha_emb_sim)
            if self.objective == "embedding"
            else weights[:3]
        )
        if all(w == 0 for w in (*used, self.alpha_hidden, self.alpha_attention)):
            problems.append("every loss weight is 0 — nothing to train")
        if self.temperature <= 0:
            problems.append("--temperature must be > 0")
        if not 0 < self.mlm_prob < 1:
            problems.append("--mlm-prob must be in (0, 1)")
        if self.mask_frac < 0 or self.random_frac < 0 or self.mask_frac + self.random_frac > 1:
            problems.append("--mask-frac + --random-frac must be within [0, 1]")
        for name in ("batch_size", "grad_accum", "epochs", "save_every", "keep", "log_every", "max_bad_steps"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be ≥ 1")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append("--max-steps must be ≥ 1")
        if self.lr <= 0:
            problems.append("--lr must be > 0")
        if not 0 <= self.warmup_ratio < 1:
            problems.append("--warmup-ratio must be in [0, 1)")
        if self.time_budget is not None and self.time_budget <= 0:
            problems.append("--time-budget must be > 0 seconds")
        if self.resume and self.overwrite:
            problems.append("--resume and --overwrite contradict each other")
        if problems:
            raise ConfigError("; ".join(problems))
