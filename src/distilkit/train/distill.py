"""General distillation: the config and the training loop, top to bottom.

Objective "mlm" is the DistilBERT recipe (soft-target KL + masked LM + cosine on masked text);
"embedding" trains the student to reproduce a sentence-embedding teacher's pooled sentence vectors
on unmasked text (MSE + cosine), both with optional hidden-state and attention matching.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from distilkit.data.dataset import BatchPlan, TokenDataset, micro_batches, pad_batch
from distilkit.data.masking import MaskingSpec, mask_sequences, selection_weights, step_generator
from distilkit.errors import ConfigError, TrainingError
from distilkit.io import append_jsonl
from distilkit.losses import weighted_sum
from distilkit.train import loop
from distilkit.train.checkpoint import Checkpointer
from distilkit.train.config import DistillConfig
from distilkit.train.objective import EncoderWithHead, compute_terms
from distilkit.train.setup import (
    check_compatible,
    load_models,
    load_projection,
    prepare_out_dir,
    resolve_objective,
    save_student,
    trim_log,
)

log = logging.getLogger(__name__)

CALIBRATION_STEPS = 5  # steps timed before a time-budgeted run first plans its length


@dataclass
class DistillResult:
    out: Path
    student_dir: Path
    steps: int
    skipped_steps: int
    stopped_early: bool
    final_loss: float | None
    terms: list[str]


def distill(config: DistillConfig, callback: Callable[[dict], None] | None = None) -> DistillResult:
    """Run general distillation; see :class:`DistillConfig`. ``callback`` receives progress events."""
    runtime = loop.setup_runtime(config.device, config.precision)
    try:
        return _distill(config, runtime, callback)
    finally:
        loop.shutdown_runtime(runtime)


def _distill(config: DistillConfig, runtime: loop.Runtime, callback: Callable[[dict], None] | None) -> DistillResult:
    emit = callback or (lambda event: None)
    out = Path(config.out)
    data = TokenDataset(config.data)
    teacher, student = load_models(config)
    objective, notes = resolve_objective(config, teacher, student)
    check_compatible(teacher, student, data.meta, objective)
    projection = load_projection(config, teacher, student) if objective.kind == "embedding" else None
    for note in notes:
        (log.info if callback else log.warning)(note)  # with a callback the caller shows it
        emit({"event": "note", "message": note})
    if runtime.is_main:
        prepare_out_dir(out, config, objective, resume=config.resume)
    runtime.barrier()

    loop.seed_everything(config.seed)
    teacher.to(runtime.device).eval().requires_grad_(False)
    student.to(runtime.device).train()
    # What the optimizer, clipping and checkpoints own: the student, plus the loss projection of a narrower one.
    trainable = student if projection is None else nn.ModuleDict({"student": student, "projection": projection})
    trainable.to(runtime.device)
    teacher_fwd = EncoderWithHead(teacher, objective.pooling)
    student_fwd = EncoderWithHead(student, objective.pooling, projection)
    if runtime.distributed:
        # find_unused_parameters: the pooler (and an unused MLM head) get no gradient.
        student_fwd = DistributedDataParallel(student_fwd, find_unused_parameters=True)

    world, accum = runtime.world_size, config.grad_accum
    plan = BatchPlan(data.lengths, config.batch_size * world * accum, config.seed, config.group_by_length)
    per_epoch = plan.batches_per_epoch()
    total_steps = config.max_steps or config.epochs * per_epoch
    optimizer = loop.build_optimizer(trainable, config.lr, config.weight_decay)
    scheduler = loop.linear_schedule(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    scaler = loop.make_grad_scaler(runtime)
    checkpointer = Checkpointer(out / "checkpoints", keep=config.keep)
    masking = MaskingSpec(config.mlm_prob, config.mask_frac, config.random_frac, config.smoothing)
    special = data.meta["special_token_ids"]
    weights = selection_weights(data.token_counts, special, masking.smoothing)
    mask_id, pad_id = data.meta["special_ids"]["mask"], data.meta["special_ids"]["pad"] or 0

    step, bad_streak, skipped = 0, 0, 0
    if config.resume and (latest := checkpointer.latest_good()) is not None:
        rng, state = checkpointer.load(latest, trainable, optimizer, scheduler, scaler)
        check_resumable(state, plan.global_batch, config)
        loop.set_rng_state(rng)
        step, skipped = state["step"], state["skipped_steps"]
        total_steps = state.get("total_steps", total_steps)
        emit({"event": "resumed", "step": step, "checkpoint": str(latest)})
    if config.resume and runtime.is_main:
        trim_log(out / "metrics.jsonl", step)  # lines logged after the checkpoint will be written again
    writer = open_tensorboard(out, step) if config.tensorboard and runtime.is_main else None

    def save_checkpoint() -> None:
        if runtime.is_main:
            state = {
                "step": step, "skipped_steps": skipped, "global_batch": plan.global_batch, "seed": config.seed,
                "total_steps": total_steps,
            }  # fmt: skip
            path = checkpointer.save(step, trainable, optimizer, scheduler, scaler, loop.rng_state(), state)
            emit({"event": "checkpoint", "step": step, "path": str(path)})
        runtime.barrier()

    emit({"event": "start", "total_steps": total_steps, "step": step, "terms": list(objective.active_weights())})
    started, last_record, epoch_cache = time.monotonic(), None, {}
    stopped_early, first_step = False, step
    # With a time budget and no --max-steps, the run measures its pace (since its first step) and re-plans
    # its length, never beyond the planned epochs, so the learning rate decays to 0 as the budget runs out.
    # A single early measurement is not enough: length-grouped batches of short and long text differ in cost.
    replans = bool(config.time_budget) and config.max_steps is None
    epochs_total = total_steps
    while step < total_steps:
        # 1. The global batch of this step: a pure function of (seed, epoch, position).
        epoch, position = divmod(step, per_epoch)
        if epoch not in epoch_cache:
            epoch_cache = {epoch: plan.epoch(epoch)}
        sequences = [torch.from_numpy(data[int(i)]) for i in epoch_cache[epoch][position]]
        labels = None
        if objective.needs_masking:
            sequences, labels = mask_sequences(
                sequences, weights, mask_id=mask_id, vocab_size=student.config.vocab_size,
                spec=masking, generator=step_generator(config.seed, step),
            )  # fmt: skip
        # 2. This process's micro-batches; loss terms are normalised by the global counts.
        mine = [
            chunk
            for k, chunk in enumerate(micro_batches(range(len(sequences)), accum * world))
            if k % world == runtime.rank
        ]
        n_tokens = sum(len(sequences[i]) for chunk in mine for i in chunk)
        n_masked = sum(int((labels[i] != -100).sum()) for chunk in mine for i in chunk) if labels else 0
        n_tokens, n_masked = runtime.all_reduce_sum([n_tokens, n_masked])
        normalizers = {"tokens": n_tokens, "masked": max(n_masked, 1.0), "sequences": float(len(sequences))}
        term_sums: dict[str, float] = {}
        for k, chunk in enumerate(mine):
            input_ids, attention_mask = pad_batch([sequences[i] for i in chunk], pad_id)
            input_ids, attention_mask = input_ids.to(runtime.device), attention_mask.to(runtime.device)
            masked_rows = mlm_labels = None
            if labels is not None:
                flat_labels = pad_batch([labels[i] for i in chunk], -100)[0].flatten().to(runtime.device)
                masked_rows = (flat_labels != -100).nonzero(as_tuple=True)[0]
                mlm_labels = flat_labels[masked_rows]
            sync = k == len(mine) - 1 or not runtime.distributed
            with runtime.autocast(), student_fwd.no_sync() if not sync else contextlib.nullcontext():
                with torch.no_grad():
                    teacher_out = teacher_fwd(
                        input_ids, attention_mask, masked_rows, objective.needs_all_hidden, objective.needs_attentions
                    )
                student_out = student_fwd(
                    input_ids, attention_mask, masked_rows, objective.needs_all_hidden, objective.needs_attentions
                )
                terms = compute_terms(objective, student_out, teacher_out, attention_mask, mlm_labels, normalizers)
                # 3. DDP averages gradients over processes; ×world turns that back into the global sum.
                total = weighted_sum(terms, objective.weights) * world
                (scaler.scale(total) if scaler is not None else total).backward()
            for name, value in terms.items():
                term_sums[name] = term_sums.get(name, 0.0) + float(value.detach())
        # 4. Clip and step (a non-finite gradient skips the update), then log and checkpoint.
        grad_norm, stepped = loop.optimizer_step(trainable, optimizer, scheduler, scaler, config.max_grad_norm)
        step += 1
        names = sorted(term_sums)
        reduced = dict(zip(names, runtime.all_reduce_sum([term_sums[n] for n in names]), strict=True))
        loss = sum(objective.weights[n] * v for n, v in reduced.items())
        bad_streak = 0 if stepped else bad_streak + 1
        skipped += 0 if stepped else 1
        record = {
            "step": step, "epoch": epoch, "loss": loss, "terms": reduced, "lr": scheduler.get_last_lr()[0],
            "grad_norm": grad_norm, "tokens": n_tokens, "skipped": not stepped,
            "elapsed": time.monotonic() - started,
        }  # fmt: skip
        last_record = record
        if runtime.is_main and (step % config.log_every == 0 or not stepped or step == total_steps):
            append_jsonl(out / "metrics.jsonl", record)
            if writer is not None:
                log_tensorboard(writer, record)
        if step == first_step + 1:
            pace_from = (step, record["elapsed"])
        since = step - first_step
        if replans and step < total_steps and (since == CALIBRATION_STEPS or since % loop.REPLAN_EVERY == 0):
            fits = loop.steps_within_budget(step, record["elapsed"], *pace_from, config.time_budget)
            fits = int(runtime.all_reduce_sum([fits])[0] / world)  # every process agrees
            total_steps = loop.replan(scheduler, config.warmup_ratio, total_steps, fits, step, epochs_total)
        emit({"event": "step", **record, "total_steps": total_steps})
        if bad_streak >= config.max_bad_steps:
            save_checkpoint()  # weights are still the last good ones: non-finite steps were skipped
            raise TrainingError(
                f"{bad_streak} steps in a row had a non-finite loss or gradient (at step {step}) — "
                f"lower --lr or check the data; the last good weights are in {checkpointer.root}"
            )
        over_budget = config.time_budget is not None and time.monotonic() - started > config.time_budget
        over_budget = runtime.all_reduce_sum([float(over_budget)])[0] > 0
        if step % config.save_every == 0 or step == total_steps or over_budget:
            save_checkpoint()
        if over_budget and step < total_steps:
            stopped_early = True
            emit({"event": "note", "message": f"time budget reached after {step} of {total_steps} steps"})
            break

    if writer is not None:
        writer.close()
    student_dir = out / "student"
    if runtime.is_main:
        save_student(student, config, student_dir, objective, projection)
    runtime.barrier()
    emit({"event": "done", "step": step, "student": str(student_dir)})
    return DistillResult(
        out=out,
        student_dir=student_dir,
        steps=step,
        skipped_steps=skipped,
        stopped_early=stopped_early,
        final_loss=last_record["loss"] if last_record else None,
        terms=list(objective.active_weights()),
    )


def check_resumable(state: dict, global_batch: int, config: DistillConfig) -> None:
    if state.get("global_batch") != global_batch or state.get("seed") != config.seed:
        raise ConfigError(
            f"cannot resume exactly: the checkpoint was made with global batch {state.get('global_batch')} and seed "
            f"{state.get('seed')}, this run has {global_batch} and {config.seed} — use the same "
            "--batch-size × --grad-accum × processes and --seed"
        )


def open_tensorboard(out: Path, step: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("tensorboard is not installed: loss curves go to metrics.jsonl only")
        return None
    return SummaryWriter(str(out / "tb"), purge_step=step + 1 if step else None)


def log_tensorboard(writer, record: dict) -> None:
    step = record["step"]
    writer.add_scalar("loss/total", record["loss"], step)
    for name, value in record["terms"].items():
        writer.add_scalar(f"loss/{name}", value, step)
    writer.add_scalar("train/lr", record["lr"], step)
    writer.add_scalar("train/grad_norm", record["grad_norm"], step)


def config_dict(config: DistillConfig) -> dict:
    return asdict(config)
