"""The one training loop of every command that runs an optimizer (distill, finetune, task-distill), top to bottom.

A command brings a `Recipe`: this process's micro-batches of a step and the loss of one micro-batch. The loop
brings the rest — gradient accumulation, DDP, the non-finite guard, clipping, the learning-rate schedule, the
time-budget pace, logging, checkpoints and exact resume — so every command gets all of it, the same way.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from distilkit.errors import ConfigError, TrainingError
from distilkit.runtime import (
    Runtime,
    make_grad_scaler,
    rng_state,
    set_rng_state,
)
from distilkit.train.checkpoint import Checkpointer
from distilkit.train.records import FileLog, MemoryLog

CALIBRATION_STEPS = 5  # steps timed before a time-budgeted run first plans its length
REPLAN_EVERY = 10  # steps between re-plans of a time-budgeted run: the pace drifts (a shared CPU, batches of
# grouped lengths that differ in cost many times over)


class Recipe(Protocol):
    """What a command brings to the loop (torchtune's recipes, cut down to the two things that differ)."""

    def micro_batches(self, step: int, total_steps: int) -> tuple[list[Any], dict[str, Any]]:
        """This process's micro-batches of optimizer step `step` (0-based) of the run's `total_steps` (as planned
        now: loss schedules read their value from both) — a pure function of (seed, step), so a resumed run takes
        the batches the uninterrupted one would have — and numbers to log with the step."""
        ...

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(total, terms) of one micro-batch, each already its share of the whole step's loss (normalised by the
        global batch's counts), so that summing over micro-batches and processes gives the step's loss."""
        ...


@dataclass
class Settings:
    """The training fields every command's config has (DistillConfig, FinetuneConfig, TaskDistillConfig)."""

    lr: float
    weight_decay: float
    warmup_ratio: float
    max_grad_norm: float
    max_steps: int | None
    time_budget: float | None
    seed: int
    save_every: int
    keep: int
    log_every: int
    max_bad_steps: int
    resume: bool

    @classmethod
    def of(cls, config: Any) -> Settings:
        return cls(**{name: getattr(config, name) for name in cls.__dataclass_fields__})


@dataclass
class Trained:
    """How training went: steps taken of those the epochs (or --max-steps) asked for, and the log kept in memory."""

    steps: int
    planned_steps: int
    skipped_steps: int
    stopped_early: bool
    last_record: dict | None
    records: list[dict] = field(default_factory=list)


def build_optimizer(model: nn.Module, lr: float, weight_decay: float, eps: float = 1e-6) -> torch.optim.AdamW:
    """AdamW without weight decay on biases and LayerNorm weights (BERT / DistilBERT practice)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, eps=eps, betas=(0.9, 0.98))


class LinearWarmupDecay:
    """LR factor: linear warm-up to 1, then linear decay to 0 at ``total_steps``.

    A callable object rather than a closure, so LambdaLR saves and restores ``total_steps`` with
    the scheduler state — a time-budgeted run re-plans its length once and resumes with it.
    """

    def __init__(self, warmup_steps: int, total_steps: int) -> None:
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / max(1, self.warmup_steps)
        return max(0.0, (self.total_steps - step) / max(1, self.total_steps - self.warmup_steps))


def linear_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    """Linear warm-up to the peak learning rate, then linear decay to 0 at ``total_steps``."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, LinearWarmupDecay(warmup_steps, total_steps))


def replan_schedule(scheduler, warmup_ratio: float, total_steps: int) -> None:
    """Point the schedule's end (and warm-up) at a new total, e.g. once a time budget's step count is known."""
    for factor in scheduler.lr_lambdas:
        factor.total_steps = total_steps
        factor.warmup_steps = int(warmup_ratio * total_steps)


def replan(scheduler, warmup_ratio: float, total_steps: int, fits: int, floor: int, cap: int) -> int:
    """A time-budgeted run's new length: the steps that fit (`steps_within_budget`), kept within [floor, cap]
    (cap: the planned epochs); the schedule follows when the length changes."""
    new_total = max(floor, min(cap, fits))
    if new_total != total_steps:
        replan_schedule(scheduler, warmup_ratio, new_total)
    return new_total


def steps_within_budget(step: int, elapsed: float, since_step: int, since_elapsed: float, budget: float) -> int:
    """The last step that should finish inside ``budget`` seconds, at the pace measured since ``since_step``."""
    pace = (elapsed - since_elapsed) / max(1, step - since_step)
    return step + max(0, int((budget - elapsed) / max(pace, 1e-9)))


def optimizer_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    scaler: torch.amp.GradScaler | None,
    max_grad_norm: float,
) -> tuple[float, bool]:
    """Unscale, clip, and step — unless the gradient is not finite, in which case skip the update.

    Returns ``(grad_norm, stepped)``. The gradients are already reduced over processes, so every
    process takes the same decision. The scheduler advances either way (the data was consumed).
    """
    if scaler is not None:
        scaler.unscale_(optimizer)
    clip = max_grad_norm if max_grad_norm > 0 else float("inf")
    grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip))
    stepped = math.isfinite(grad_norm)
    if scaler is not None:
        scaler.step(optimizer)  # the scaler itself skips a step with inf/nan gradients
        scaler.update()
    elif stepped:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    scheduler.step()
    return grad_norm, stepped


def train(
    model: nn.Module,
    forward: nn.Module,
    recipe: Recipe,
    settings: Settings,
    runtime: Runtime,
    *,
    planned_steps: int,
    per_epoch: int,
    checkpoints: Path,
    plan: dict[str, Any],
    records: MemoryLog | FileLog,
    emit: Callable[[dict], None],
    after_step: Callable[[int], dict | None] | None = None,
    resume_required: bool = True,
) -> Trained:
    """Train `model` (what the optimizer, clipping and checkpoints own) with `recipe`, whose loss calls `forward`
    (`model`'s forward, or its DistributedDataParallel wrapper). `plan` names what makes the batches (global batch,
    seed, data): a resumed run must find the same, or it would not be exact. `after_step(step)` may return a record
    to log (a learning-curve point). With --time-budget and no --max-steps the run times its pace and re-plans its
    length (after CALIBRATION_STEPS, then every REPLAN_EVERY), never beyond `planned_steps`, so the learning rate
    still decays to 0 as the budget runs out (a resumed run's budget starts again)."""
    optimizer = build_optimizer(model, settings.lr, settings.weight_decay)
    total_steps = planned_steps
    scheduler = linear_schedule(optimizer, int(settings.warmup_ratio * total_steps), total_steps)
    scaler = make_grad_scaler(runtime)
    checkpointer = Checkpointer(checkpoints, keep=settings.keep)
    step = skipped = 0
    if settings.resume:
        restored = resume(checkpointer, model, optimizer, scheduler, scaler, plan, resume_required)
        state = restored[0] if restored else {}
        step, skipped = state.get("step", 0), state.get("skipped_steps", 0)
        total_steps = state.get("total_steps", total_steps)
        records.restore(step, state.get("records"))
        if restored:
            emit({"event": "resumed", "step": step, "checkpoint": str(restored[1])})
    elif runtime.is_main:
        shutil.rmtree(checkpointer.root, ignore_errors=True)  # an earlier run's, replaced by --overwrite
    runtime.barrier()

    def save_checkpoint() -> None:
        if runtime.is_main:
            state = {**plan, "total_steps": total_steps, "skipped_steps": skipped, "records": records.state()}
            path = checkpointer.save(step, model, optimizer, scheduler, scaler, rng_state(), state)
            emit({"event": "checkpoint", "step": step, "path": str(path)})
        runtime.barrier()

    emit({"event": "start", "total_steps": total_steps, "step": step})
    replans = settings.time_budget is not None and settings.max_steps is None
    first_step, bad_streak, started, last_record, stopped = step, 0, time.monotonic(), None, False
    pace_from, world = (step, 0.0), runtime.world_size
    while step < total_steps:
        # 1. This process's micro-batches of the step; forward and backward each, its loss its share of the step's.
        batches, info = recipe.micro_batches(step, total_steps)
        loss_sum, term_sums = 0.0, {}
        for k, batch in enumerate(batches):
            last = k == len(batches) - 1
            with forward.no_sync() if runtime.distributed and not last else contextlib.nullcontext():
                with runtime.autocast():
                    loss, terms = recipe.loss(forward, batch)
                scaled = loss * world  # DDP averages gradients over processes: ×world turns that back into the sum
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
            loss_sum += float(loss.detach())
            for name, value in terms.items():
                term_sums[name] = term_sums.get(name, 0.0) + float(value.detach())
        # 2. Clip and step (a non-finite gradient skips the update).
        grad_norm, stepped = optimizer_step(model, optimizer, scheduler, scaler, settings.max_grad_norm)
        epoch, step = step // per_epoch, step + 1
        names = sorted(term_sums)
        loss_value, *term_values = runtime.all_reduce_sum([loss_sum, *(term_sums[n] for n in names)])
        bad_streak, skipped = (0, skipped) if stepped else (bad_streak + 1, skipped + 1)
        elapsed = time.monotonic() - started
        record = {
            "step": step, "epoch": epoch, "loss": loss_value, "terms": dict(zip(names, term_values, strict=True)),
            "lr": scheduler.get_last_lr()[0], "grad_norm": grad_norm, **info, "skipped": not stepped,
            "elapsed": elapsed,
        }  # fmt: skip
        last_record = record
        # 3. Re-plan a time-budgeted run, log, score, checkpoint.
        if step == first_step + 1:
            pace_from = (step, elapsed)  # the first step pays one-off costs: time from its end
        since = step - first_step
        if replans and step < total_steps and (since == CALIBRATION_STEPS or since % REPLAN_EVERY == 0):
            fits = steps_within_budget(step, elapsed, *pace_from, settings.time_budget)
            fits = int(runtime.all_reduce_sum([fits])[0] / world)  # every process agrees
            total_steps = replan(scheduler, settings.warmup_ratio, total_steps, fits, step, planned_steps)
        if step % settings.log_every == 0 or step == total_steps or not stepped:
            records.write(record)
        emit({"event": "step", **record, "total_steps": total_steps})
        if bad_streak >= settings.max_bad_steps:
            save_checkpoint()  # the weights are still the last good ones: non-finite steps were skipped
            raise TrainingError(
                f"{bad_streak} steps in a row had a non-finite loss or gradient (at step {step}) — lower --lr or "
                f"check the data; the last good weights are in {checkpointer.root}"
            )
        if after_step is not None and step < total_steps and (point := after_step(step)) is not None:
            records.write(point)
        over_budget = settings.time_budget is not None and time.monotonic() - started > settings.time_budget
        over_budget = runtime.all_reduce_sum([float(over_budget)])[0] > 0
        if step % settings.save_every == 0 or step == total_steps or over_budget:
            save_checkpoint()
        if over_budget and step < total_steps:
            stopped = True
            emit({"event": "note", "message": f"time budget reached after {step} of {total_steps} steps"})
            break
    records.close()
    if step < planned_steps and not stopped:
        emit({"event": "note", "message": f"trained {step} of {planned_steps} planned steps within --time-budget"})
    return Trained(step, planned_steps, skipped, step < planned_steps, last_record, records.records)


def resume(
    checkpointer: Checkpointer, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, scaler,
    plan: dict[str, Any], required: bool,
) -> tuple[dict, Path] | None:  # fmt: skip
    """Restore the newest good checkpoint in place (weights, optimizer, schedule, scaler, RNG); returns its state
    and folder, or None when there is none and `required` is False (the run starts from step 0)."""
    path = checkpointer.latest_good()
    if path is None:
        if required:
            raise ConfigError(f"no complete checkpoint in {checkpointer.root} to resume — run without --resume")
        return None
    rng, state = checkpointer.load(path, model, optimizer, scheduler, scaler)
    changed = [name for name, value in plan.items() if state.get(name) != value]
    if changed:
        was = ", ".join(
            f"{name.replace('_', ' ')} {state.get(name)} (now {plan[name]})" if "fingerprint" not in name
            else "other data" for name in changed
        )  # fmt: skip
        raise ConfigError(
            f"cannot resume exactly from {path}: it was made with {was} — use the same --batch-size × --grad-accum "
            "× processes, --seed and data"
        )
    set_rng_state(rng)
    return state, path
