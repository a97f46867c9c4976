"""The flags of ``distilkit distill``: one frozen dataclass, every default with where it comes from, and every
problem with the flags collected into one error before any work starts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distilkit.errors import ConfigError
from distilkit.train.schedule import Schedule, parse_schedule

OBJECTIVES = ("mlm", "embedding")
Scheduled = float | str  # a number (constant over the run) or a schedule's text: "4:1", "cosine:4:1" (schedule.py)


def read_schedules(config: Any, fields: tuple[str, ...], problems: list[str]) -> dict[str, Schedule]:
    """field → Schedule for each loss weight (≥ 0 throughout) and the temperature (> 0 throughout) named in
    `fields`; what cannot be read or leaves its range becomes one entry of `problems`, the field left out."""
    schedules = {}
    for name in fields:
        flag = "--" + name.replace("_", "-")
        try:
            schedule = parse_schedule(getattr(config, name), flag)
        except ConfigError as error:
            problems.append(str(error))
            continue
        low = schedule.bounds()[0]
        if name == "temperature" and low <= 0:
            problems.append(f"{flag} must be > 0 throughout the run, got {schedule}")
        elif name != "temperature" and low < 0:
            problems.append(f"{flag} must be ≥ 0 throughout the run, got {schedule}")
        else:
            schedules[name] = schedule
    return schedules


MLM_WEIGHTS = ("alpha_kl", "alpha_mlm", "alpha_cos")
EMBEDDING_WEIGHTS = ("alpha_emb_mse", "alpha_emb_cos", "alpha_emb_sim")
LAYER_WEIGHTS = ("alpha_hidden", "alpha_attention", "alpha_value_relation", "alpha_relation")  # either objective
WEIGHT_FIELDS = (*MLM_WEIGHTS, *EMBEDDING_WEIGHTS, *LAYER_WEIGHTS)


@dataclass(frozen=True)
class DistillConfig:
    teacher: str  # teacher model dir or hub id
    student: str  # student model dir (init-student output)
    data: str | None  # a folder from `distilkit prepare`; None with --parallel
    out: str  # run directory: checkpoints, logs, the final student
    objective: str = "mlm"  # mlm: DistilBERT's triple loss; embedding: a sentence-embedding teacher's embeddings
    # Cross-lingual students (Reimers & Gurevych 2020): TSV "source<TAB>translation" or JSONL {"source",
    # "translation"}; the student, with its own tokenizer, maps both sides to the teacher's source embedding.
    parallel: str | None = None
    # Loss weights and temperature: a number, or a schedule over the run ("5:1", "cosine:5:1"; train/schedule.py).
    # Defaults: DistilBERT release (train.py / distillation README). kl/mlm/cos: mlm objective.
    alpha_kl: Scheduled = 5.0  # soft-target KL on the teacher's MLM distribution (DistilBERT's alpha_ce)
    alpha_mlm: Scheduled = 2.0  # masked-LM cross-entropy on the hard targets
    alpha_cos: Scheduled = 1.0  # cosine loss on the last hidden states (through the projection if narrower)
    alpha_hidden: Scheduled = 0.0  # MSE on mapped intermediate hidden states (TinyBERT; W_h if narrower)
    alpha_attention: Scheduled = 0.0  # KL between attention distributions (MiniLM; equal head counts)
    alpha_value_relation: Scheduled = 0.0  # KL between value relations (MiniLM v1; equal head counts)
    alpha_relation: Scheduled = 0.0  # q-q + k-k + v-v self-attention relation KLs (MiniLMv2; any widths, heads)
    # Embedding objective: MSE to the teacher's sentence vectors (Reimers & Gurevych 2020) plus cosine. Equal
    # weights: on all-MiniLM-L6-v2, cosine alone and MSE + cosine gave the same STS-B (benchmarks/results).
    alpha_emb_mse: Scheduled = 1.0  # MSE between pooled sentence vectors (before L2 normalisation)
    alpha_emb_cos: Scheduled = 1.0  # 1 − cosine between the sentence embeddings
    alpha_emb_sim: Scheduled = 0.0  # MSE between in-batch cosine-similarity matrices (relational KD)
    temperature: Scheduled = 2.0  # softmax temperature of the KL term (DistilBERT)
    layer_map: str | None = None  # hidden-state pairs "s:t,...", default: each student layer ↔ its source layer
    attention_map: str | None = None  # attention layer pairs "s:t,...", default: last ↔ last (MiniLM)
    relation_map: str | None = None  # relation layer pairs "s:t,..." (1-based), default: last ↔ last (MiniLMv2)
    # MiniLMv2 (Wang et al. 2021) §4 uses 48 relation heads for base-size teachers (64 for large); None: 48 when it
    # divides both widths (768, 384, 192, ...), else the largest count below 48 that does.
    relation_heads: int | None = None
    # Masking: BERT's 15% with 80/10/10, DistilBERT's frequency smoothing 0.7.
    mlm_prob: float = 0.15  # fraction of tokens to predict (BERT)
    mask_frac: float = 0.8  # of the predicted tokens: share replaced by [MASK] (BERT)
    random_frac: float = 0.1  # of the predicted tokens: share replaced at random (BERT)
    smoothing: float = 0.7  # masking-frequency smoothing exponent (DistilBERT)
    # Optimisation: DistilBERT release values where they fit one CPU/GPU.
    batch_size: int = 32  # sequences per process per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step (DistilBERT used 50, with batch 5 on 8 GPUs)
    lr: float = 5e-4  # peak learning rate (DistilBERT)
    weight_decay: float = 0.0  # AdamW weight decay (DistilBERT)
    warmup_ratio: float = 0.05  # fraction of steps spent warming up (DistilBERT warmup_prop)
    max_grad_norm: float = 5.0  # gradient clipping norm, 0 = off (DistilBERT)
    epochs: int = 1  # passes over the data
    max_steps: int | None = None  # optimizer steps (overrides --epochs)
    time_budget: float | None = None  # seconds; stop (checkpointed, student saved) when exceeded
    group_by_length: bool = True  # batches of similar lengths (less padding)
    seed: int = 56  # random seed (DistilBERT's)
    precision: str = "auto"  # auto, fp32, bf16 or fp16
    device: str = "auto"  # auto, cpu or cuda
    save_every: int = 500  # checkpoint every N optimizer steps
    keep: int = 3  # newest checkpoints kept
    log_every: int = 1  # log every N steps
    max_bad_steps: int = 5  # stop after this many non-finite steps in a row
    resume: bool = False  # continue from the newest good checkpoint in --out
    overwrite: bool = False  # start again in a non-empty --out
    tensorboard: bool = True  # write TensorBoard logs to --out/tb

    def __post_init__(self) -> None:
        problems = []
        if self.objective not in OBJECTIVES:
            problems.append(f"--objective must be one of {', '.join(OBJECTIVES)}, got '{self.objective}'")
        if self.parallel is None and not self.data:
            problems.append("--data is needed (a folder from `distilkit prepare`), or --parallel FILE")
        schedules = read_schedules(self, (*WEIGHT_FIELDS, "temperature"), problems)
        if self.parallel is not None:
            problems += parallel_problems(self, schedules)
        used = EMBEDDING_WEIGHTS if self.objective == "embedding" else MLM_WEIGHTS
        if all(name in schedules and schedules[name].bounds()[1] == 0 for name in (*used, *LAYER_WEIGHTS)):
            problems.append("every loss weight is 0 — nothing to train")
        if self.relation_heads is not None and self.relation_heads < 1:
            problems.append("--relation-heads must be ≥ 1")
        problems += masking_problems(self.mlm_prob, self.mask_frac, self.random_frac)
        if self.epochs < 1:
            problems.append("--epochs must be ≥ 1")
        problems += settings_problems(self)
        if problems:
            raise ConfigError("; ".join(problems))

    def schedules(self) -> dict[str, Schedule]:
        """Each loss term's weight schedule (term name → Schedule, "alpha_" dropped) and the temperature's."""
        schedules = read_schedules(self, (*WEIGHT_FIELDS, "temperature"), [])
        return {name.removeprefix("alpha_"): schedule for name, schedule in schedules.items()}


def parallel_problems(config: DistillConfig, schedules: dict[str, Schedule]) -> list[str]:
    """What --parallel rules out: another objective, --data beside it, and layer terms (the student's tokens are
    not the teacher's, so only sentence vectors can be compared)."""
    problems = []
    if config.objective != "embedding":
        problems.append("--parallel needs --objective embedding (the student learns the teacher's sentence embeddings)")
    if config.data:
        problems.append("--parallel and --data exclude each other — pass one")
    if not Path(str(config.parallel)).is_file():
        problems.append(f"parallel file not found: {config.parallel}")
    for name in LAYER_WEIGHTS:
        if name in schedules and schedules[name].bounds()[1] > 0:
            flag = "--" + name.replace("_", "-")
            problems.append(f"{flag} compares token states: --parallel cannot (the student has its own tokenizer)")
    return problems


def settings_problems(config: Any) -> list[str]:
    """One line per problem with the training fields every optimizer command shares (`Settings`, plus
    --grad-accum, --batch-size and --overwrite), for the configs' `__post_init__`."""
    counts = ("batch_size", "grad_accum", "max_steps", "save_every", "keep", "log_every", "max_bad_steps")
    problems = [f"--{name.replace('_', '-')} must be ≥ 1" for name in counts
                if getattr(config, name) is not None and getattr(config, name) < 1]  # fmt: skip
    if config.lr <= 0:
        problems.append("--lr must be > 0")
    if config.weight_decay < 0 or config.max_grad_norm < 0:
        problems.append("--weight-decay and --max-grad-norm must be ≥ 0")
    if not 0 <= config.warmup_ratio < 1:
        problems.append("--warmup-ratio must be in [0, 1)")
    if config.time_budget is not None and config.time_budget <= 0:
        problems.append("--time-budget must be > 0 seconds")
    if config.resume and config.overwrite:
        problems.append("--resume and --overwrite contradict each other")
    return problems


def masking_problems(mlm_prob: float, mask_frac: float, random_frac: float) -> list[str]:
    """One line per problem with the masking flags (for the configs' `__post_init__`)."""
    problems = [] if 0 < mlm_prob < 1 else ["--mlm-prob must be in (0, 1)"]
    if mask_frac < 0 or random_frac < 0 or mask_frac + random_frac > 1:
        problems.append("--mask-frac + --random-frac must be within [0, 1]")
    return problems
