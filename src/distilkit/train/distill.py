"""General distillation: set-up, the recipe (batches and loss of a step) the one loop trains with, and the save.

Objective "mlm" is the DistilBERT recipe (soft-target KL + masked LM + cosine on masked text);
"embedding" trains the student to reproduce a sentence-embedding teacher's pooled sentence vectors
on unmasked text (MSE + cosine), both with optional hidden-state, attention and self-attention relation
matching (MiniLM, MiniLMv2). Every weight and the temperature may follow a schedule over the run.
With --parallel the embedding objective runs on sentence pairs instead: a cross-lingual student (train/parallel.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from distilkit.data.dataset import BatchPlan, TokenDataset, micro_batches, pad_batch
from distilkit.data.masking import MaskingSpec, mask_sequences, selection_weights, step_generator
from distilkit.losses import weighted_sum
from distilkit.runtime import Runtime, seed_everything, setup_runtime, shutdown_runtime
from distilkit.train import loop
from distilkit.train.config import DistillConfig
from distilkit.train.objective import EncoderWithHead, Objective, compute_terms
from distilkit.train.records import FileLog
from distilkit.train.setup import (
    DistillResult,
    check_compatible,
    finish,
    load_models,
    load_projection,
    prepare_out_dir,
    resolve_objective,
)

log = logging.getLogger(__name__)


def distill(config: DistillConfig, callback: Callable[[dict], None] | None = None) -> DistillResult:
    """Run general distillation; see :class:`DistillConfig`. ``callback`` receives progress events."""
    runtime = setup_runtime(config.device, config.precision)
    try:
        if config.parallel is not None:  # a cross-lingual student from sentence pairs (train/parallel.py)
            from distilkit.train.parallel import distill_parallel

            return distill_parallel(config, runtime, callback)
        return _distill(config, runtime, callback)
    finally:
        shutdown_runtime(runtime)


def _distill(config: DistillConfig, runtime: Runtime, callback: Callable[[dict], None] | None) -> DistillResult:
    emit = callback or (lambda event: None)
    out = Path(config.out)
    data = TokenDataset(config.data)
    teacher, student = load_models(config)
    objective, notes = resolve_objective(config, teacher, student)
    check_compatible(teacher, student, data.meta, objective)
    projection = load_projection(config, teacher, student) if objective.compares_states else None
    for note in notes:
        (log.info if callback else log.warning)(note)  # with a callback the caller shows it
        emit({"event": "note", "message": note})
    if runtime.is_main:
        prepare_out_dir(out, config, objective, resume=config.resume)
    runtime.barrier()

    seed_everything(config.seed)
    teacher.to(runtime.device).eval().requires_grad_(False)
    student.to(runtime.device).train()
    # What the optimizer, clipping and checkpoints own: the student, plus the loss projection of a narrower one.
    trainable = student if projection is None else nn.ModuleDict({"student": student, "projection": projection})
    trainable.to(runtime.device)
    relations = objective.relation_pairs if objective.needs_qkv else []  # Q/K/V hooks on these layers only
    student_fwd = EncoderWithHead(student, objective.pooling, projection, qkv_layers=[s for s, _ in relations])
    if runtime.distributed:
        # find_unused_parameters: the pooler (and an unused MLM head) get no gradient.
        student_fwd = DistributedDataParallel(student_fwd, find_unused_parameters=True)
    world = runtime.world_size
    plan = BatchPlan(data.lengths, config.batch_size * world * config.grad_accum, config.seed, config.group_by_length)
    per_epoch = plan.batches_per_epoch()
    teacher_fwd = EncoderWithHead(teacher, objective.pooling, qkv_layers=[t for _, t in relations])
    recipe = DistillRecipe(config, data, plan, objective, teacher_fwd, student.config.vocab_size, runtime)
    log_file = FileLog(out / "metrics.jsonl", out / "tb" if config.tensorboard else None, runtime.is_main)
    trained = loop.train(
        trainable, student_fwd, recipe, loop.Settings.of(config), runtime,
        planned_steps=config.max_steps or config.epochs * per_epoch, per_epoch=per_epoch,
        checkpoints=out / "checkpoints", plan={"global_batch": plan.global_batch, "seed": config.seed},
        records=log_file, emit=emit, resume_required=False,
    )  # fmt: skip
    return finish(config, runtime, emit, trained, student, objective, projection, list(objective.active_weights()))


class DistillRecipe:
    """General distillation's batches and loss: masked (or plain) text through teacher and student, the objective's
    terms normalised by the whole step's counts (tokens, masked tokens, sequences) over every process and weighted
    by the step's point on each schedule."""

    def __init__(
        self, config: DistillConfig, data: TokenDataset, plan: BatchPlan, objective: Objective,
        teacher_fwd: EncoderWithHead, vocab_size: int, runtime: Runtime,
    ) -> None:  # fmt: skip
        self.config, self.data, self.plan, self.objective = config, data, plan, objective
        self.teacher_fwd, self.vocab_size, self.runtime = teacher_fwd, vocab_size, runtime
        self.masking = MaskingSpec(config.mlm_prob, config.mask_frac, config.random_frac, config.smoothing)
        self.weights = selection_weights(data.token_counts, data.meta["special_token_ids"], self.masking.smoothing)
        self.mask_id, self.pad_id = data.meta["special_ids"]["mask"], data.meta["special_ids"]["pad"] or 0
        self.epoch_cache: dict[int, list] = {}

    def micro_batches(self, step: int, total_steps: int) -> tuple[list[dict], dict]:
        """The global batch of `step` (a pure function of seed, epoch and position), masked with the step's own
        generator, cut into this process's micro-batches, with the step's weights and temperature (logged too)."""
        epoch, position = divmod(step, self.plan.batches_per_epoch())
        if epoch not in self.epoch_cache:
            self.epoch_cache = {epoch: self.plan.epoch(epoch)}
        sequences = [torch.from_numpy(self.data[int(i)]) for i in self.epoch_cache[epoch][position]]
        labels = None
        if self.objective.needs_masking:
            sequences, labels = mask_sequences(
                sequences, self.weights, mask_id=self.mask_id, vocab_size=self.vocab_size, spec=self.masking,
                generator=step_generator(self.config.seed, step),
            )  # fmt: skip
        runtime, world = self.runtime, self.runtime.world_size
        chunks = micro_batches(range(len(sequences)), self.config.grad_accum * world)[runtime.rank :: world]
        n_tokens = sum(len(sequences[i]) for chunk in chunks for i in chunk)
        n_masked = sum(int((labels[i] != -100).sum()) for chunk in chunks for i in chunk) if labels else 0
        n_tokens, n_masked = runtime.all_reduce_sum([n_tokens, n_masked])
        normalizers = {"tokens": n_tokens, "masked": max(n_masked, 1.0), "sequences": float(len(sequences))}
        weights, temperature = self.objective.at(step, total_steps)
        values = {"weights": weights, **({"temperature": temperature} if self.objective.active("kl") else {})}
        batches = []
        for chunk in chunks:
            input_ids, attention_mask = pad_batch([sequences[i] for i in chunk], self.pad_id)
            batch = {"input_ids": input_ids.to(runtime.device), "attention_mask": attention_mask.to(runtime.device),
                     "masked_rows": None, "mlm_labels": None, "normalizers": normalizers, "weights": weights,
                     "temperature": temperature}  # fmt: skip
            if labels is not None:
                flat_labels = pad_batch([labels[i] for i in chunk], -100)[0].flatten().to(runtime.device)
                batch["masked_rows"] = (flat_labels != -100).nonzero(as_tuple=True)[0]
                batch["mlm_labels"] = flat_labels[batch["masked_rows"]]
            batches.append(batch)
        return batches, {"tokens": n_tokens, **values}

    def loss(self, student_fwd: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        objective = self.objective
        inputs = (batch["input_ids"], batch["attention_mask"], batch["masked_rows"])
        wants = (objective.needs_all_hidden, objective.needs_attentions)
        with torch.no_grad():
            teacher_out = self.teacher_fwd(*inputs, *wants)
        student_out = student_fwd(*inputs, *wants)
        terms = compute_terms(
            objective, student_out, teacher_out, batch["attention_mask"], batch["mlm_labels"], batch["normalizers"],
            batch["temperature"],
        )  # fmt: skip
        return weighted_sum(terms, batch["weights"]), terms
