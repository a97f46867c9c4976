"""The training loop of `finetune` and `task-distill`, top to bottom: a command brings its model, its features and
its loss; this loop brings the batches, accumulation, the one optimizer step of train/loop.py, the time-budget
pace, checkpoints and exact resume (train/checkpoint.py, as `distill` uses them)."""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from distilkit.data.dataset import micro_batches
from distilkit.errors import ConfigError, TrainingError
from distilkit.tasks.data import TaskData, collate, train_batches
from distilkit.tasks.ner import IGNORE_INDEX
from distilkit.tasks.predict import headline, predict, score
from distilkit.train import loop
from distilkit.train.checkpoint import Checkpointer

LossFn = Callable[[nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, torch.Tensor]]]
CHECKPOINTS = "checkpoints"  # OUT/checkpoints/step-N while training; the final save of OUT replaces them


@dataclass
class Fitted:
    """How training went: steps taken of the steps the epochs (or --max-steps) asked for, and the loss log."""

    steps: int
    planned_steps: int
    stopped_early: bool
    records: list[dict]
    per_epoch: int = 1  # optimizer steps per epoch


def checkpoint_root(out: str | Path) -> Path:
    return Path(out) / CHECKPOINTS


def fit(
    model: nn.Module,
    train: TaskData,
    loss_fn: LossFn,
    config: Any,  # the command's TaskTrainConfig (tasks/finetune.py: importing it here would close a circle)
    runtime: loop.Runtime,
    pad_id: int,
    emit: Callable[[dict], None],
    command: str = "finetune",
    eval_data: TaskData | None = None,
) -> Fitted:
    """Train `model` on `train` with `loss_fn(model, batch) -> (total, terms)`, a mean over the batch's rows
    (labelled tokens for token tasks).

    A step's batch is --batch-size × --grad-accum × processes features, length-grouped and shuffled: a pure
    function of (seed, epoch, position), so a resumed run takes the batches the uninterrupted one would have. Each
    process runs its micro-batches, each loss weighted by its share of the batch's rows (`loss_units`): the gradient
    of one large batch. AdamW + linear warm-up/decay, clipping and non-finite-step skipping come from
    train/loop.py. With --time-budget (and no --max-steps) the run times its pace and re-plans its length every
    loop.REPLAN_EVERY steps, never beyond the planned epochs, so the learning rate still decays to 0 when the
    budget runs out (a resumed run's budget starts again)."""
    loop.seed_everything(config.seed)
    model.to(runtime.device).train()
    trained: nn.Module = model
    if runtime.distributed:  # find_unused_parameters: a pooler the head does not read gets no gradient
        trained = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    world, accum = runtime.world_size, config.grad_accum
    global_batch = config.batch_size * accum * world
    per_epoch = math.ceil(len(train) / global_batch)
    planned = total_steps = config.max_steps or max(1, math.ceil(config.epochs * per_epoch))
    optimizer = loop.build_optimizer(model, config.lr, config.weight_decay)
    scheduler = loop.linear_schedule(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    scaler = loop.make_grad_scaler(runtime)
    checkpointer = Checkpointer(checkpoint_root(config.out), keep=config.keep)
    plan = {"global_batch": global_batch, "seed": config.seed, "train_fingerprint": train.fingerprint()}
    step, records = 0, []
    if config.resume:
        step, total_steps, records, path = resume(checkpointer, model, optimizer, scheduler, scaler, plan)
        emit({"event": "resumed", "step": step, "checkpoint": str(path)})
    elif runtime.is_main:
        shutil.rmtree(checkpointer.root, ignore_errors=True)  # an earlier run's, replaced by --overwrite
    runtime.barrier()

    def save_checkpoint() -> None:
        if runtime.is_main:
            state = {**plan, "total_steps": total_steps, "records": records}
            path = checkpointer.save(step, model, optimizer, scheduler, scaler, loop.rng_state(), state)
            emit({"event": "checkpoint", "step": step, "path": str(path)})
        runtime.barrier()

    emit({"event": "start", "command": command, "total_steps": total_steps, "step": step})
    replans = config.time_budget is not None and config.max_steps is None
    first_step, bad_streak, started, epoch_batches, pace_from = step, 0, time.monotonic(), {}, (step, 0.0)
    while step < total_steps:
        # 1. The batch of this step, and this process's micro-batches of it.
        epoch, position = divmod(step, per_epoch)
        if epoch not in epoch_batches:
            epoch_batches = {epoch: train_batches(train.lengths, global_batch, config.seed, epoch)}
        chunks = micro_batches(epoch_batches[epoch][position], accum * world)[runtime.rank :: world]
        batches = [{k: v.to(runtime.device) for k, v in collate(train.features, c, pad_id).items()} for c in chunks]
        units = [loss_units(train.spec.kind, batch) for batch in batches]
        batch_units = runtime.all_reduce_sum([sum(units)])[0]
        # 2. Forward and backward each micro-batch, its loss scaled to its share of the batch.
        loss_sum, term_sums = 0.0, {}
        for k, (batch, count) in enumerate(zip(batches, units, strict=True)):
            share = count / batch_units
            last = k == len(batches) - 1
            with trained.no_sync() if runtime.distributed and not last else contextlib.nullcontext():
                with runtime.autocast():
                    loss, terms = loss_fn(trained, batch)
                # DDP averages gradients over processes: ×world turns that back into the batch's sum.
                scaled = loss * (share * world)
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
            loss_sum += float(loss.detach()) * share
            for name, value in terms.items():
                term_sums[name] = term_sums.get(name, 0.0) + float(value.detach()) * share
        # 3. Clip and step (a non-finite gradient skips the update), then log, re-plan, score and checkpoint.
        grad_norm, stepped = loop.optimizer_step(model, optimizer, scheduler, scaler, config.max_grad_norm)
        step += 1
        loss_value, *term_values = runtime.all_reduce_sum([loss_sum, *term_sums.values()])
        bad_streak = 0 if stepped else bad_streak + 1
        elapsed = time.monotonic() - started
        record = {
            "step": step, "epoch": epoch, "loss": loss_value, "terms": dict(zip(term_sums, term_values, strict=True)),
            "lr": scheduler.get_last_lr()[0], "grad_norm": grad_norm, "skipped": not stepped, "elapsed": elapsed,
        }  # fmt: skip
        if step == first_step + 1:
            pace_from = (step, elapsed)  # the first step pays one-off costs: time from its end
        if replans and step < total_steps and step % loop.REPLAN_EVERY == 0:
            fits = loop.steps_within_budget(step, elapsed, *pace_from, config.time_budget)
            fits = int(runtime.all_reduce_sum([fits])[0] / world)  # every process agrees
            total_steps = loop.replan(scheduler, config.warmup_ratio, total_steps, fits, step + 1, planned)
        if step % config.log_every == 0 or step == total_steps or not stepped:
            records.append(record)
        emit({"event": "step", **record, "total_steps": total_steps})
        if bad_streak >= config.max_bad_steps:
            raise TrainingError(f"{bad_streak} steps in a row had a non-finite loss or gradient — lower --lr")
        if config.eval_every_epoch and eval_data is not None and step % per_epoch == 0 and step < total_steps:
            records.append(epoch_score(model, eval_data, runtime, pad_id, config, step // per_epoch, step, emit))
        if step % config.save_every == 0:
            save_checkpoint()
        over_budget = config.time_budget is not None and elapsed > config.time_budget and step < total_steps
        if runtime.all_reduce_sum([float(over_budget)])[0] > 0:
            emit({"event": "note", "message": f"time budget reached after {step} of {total_steps} steps"})
            break
    if step < planned:
        emit({"event": "note", "message": f"trained {step} of {planned} planned steps within --time-budget"})
    return Fitted(step, planned, step < planned, records, per_epoch)


def loss_units(kind: str, batch: dict[str, torch.Tensor]) -> float:
    """What a task loss averages over in `batch`: its labelled tokens (token tasks), else its rows. (task-distill's
    hidden-state MSE averages over all tokens: accumulated, it is weighted by these units too — close, not exact.)"""
    if kind == "token":
        return float((batch["labels"] != IGNORE_INDEX).sum())
    return float(len(batch["input_ids"]))


def resume(
    checkpointer: Checkpointer, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, scaler,
    plan: dict[str, Any],
) -> tuple[int, int, list[dict], Path]:  # fmt: skip
    """Restore the newest good checkpoint in place (weights, optimizer, schedule, RNG); returns (step, total
    steps, the log so far, its folder). The batch plan must be the one it was made with, or resuming is not exact."""
    path = checkpointer.latest_good()
    if path is None:
        raise ConfigError(f"no complete checkpoint in {checkpointer.root} to resume — run without --resume")
    rng, state = checkpointer.load(path, model, optimizer, scheduler, scaler)
    if any(state.get(name) != value for name, value in plan.items()):
        raise ConfigError(
            f"cannot resume exactly from {path}: it was made with another batch plan (global batch "
            f"{state.get('global_batch')}, seed {state.get('seed')}, or other training data) — use the same "
            "--batch-size × --grad-accum × processes, --seed and data"
        )
    loop.set_rng_state(rng)
    return state["step"], state["total_steps"], state["records"], path


def epoch_score(
    model: nn.Module, eval_data: TaskData, runtime: loop.Runtime, pad_id: int, config: Any, epoch: int,
    step: int, emit: Callable[[dict], None],
) -> dict:  # fmt: skip
    """One point of the learning curve: the model scored on the evaluation split after `epoch` epochs."""
    metrics, _ = score(eval_data, predict(model, eval_data, runtime, pad_id, config.eval_batch_size))
    model.train()
    main = headline(eval_data.spec.name, metrics)
    emit({"event": "note", "message": f"epoch {epoch}: {config.eval_split} main score {main:.4f}"})
    return {"event": "epoch_eval", "epoch": epoch, "step": step, "split": config.eval_split, "metrics": metrics,
            "main_score": main}  # fmt: skip
