"""The recipe of `finetune` and `task-distill` for the one loop (train/loop.py): a command brings its model, its
features and its loss; this file cuts the features into the step's batches and weights each micro-batch's loss by
its share of the step, and scores the learning curve at the end of each epoch."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from distilkit.data.dataset import micro_batches
from distilkit.runtime import Runtime, seed_everything
from distilkit.tasks.data import TaskData, collate, train_batches
from distilkit.tasks.features import IGNORE_INDEX
from distilkit.tasks.predict import headline, predict, score
from distilkit.train import loop
from distilkit.train.records import MemoryLog

LossFn = Callable[[nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, torch.Tensor]]]
StepValues = Callable[[int, int], dict[str, Any]]  # (step, total_steps) → the loss's values at that step
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


class TaskRecipe:
    """A step's batch is --batch-size × --grad-accum × processes features, length-grouped and shuffled (a pure
    function of seed, epoch and position); each process runs its micro-batches, each loss — a mean over the
    micro-batch's rows, or labelled tokens for token tasks (`loss_units`) — weighted by its share of the step's:
    the gradient of one large batch."""

    def __init__(
        self, train: TaskData, loss_fn: LossFn, config: Any, runtime: Runtime, pad_id: int,
        step_values: StepValues | None = None,
    ) -> None:  # fmt: skip
        self.train, self.loss_fn, self.runtime, self.pad_id = train, loss_fn, runtime, pad_id
        self.step_values = step_values
        self.seed, self.pieces = config.seed, config.grad_accum * runtime.world_size
        self.global_batch = config.batch_size * self.pieces
        self.per_epoch = math.ceil(len(train) / self.global_batch)
        self.epoch_batches: dict[int, list] = {}

    def micro_batches(self, step: int, total_steps: int) -> tuple[list[tuple[dict[str, torch.Tensor], float]], dict]:
        """The step's micro-batches with their shares; with `step_values`, each batch carries the step's values
        under "step_values" (the loss reads them) and the step's record logs them."""
        epoch, position = divmod(step, self.per_epoch)
        if epoch not in self.epoch_batches:
            self.epoch_batches = {epoch: train_batches(self.train.lengths, self.global_batch, self.seed, epoch)}
        world, rank = self.runtime.world_size, self.runtime.rank
        chunks = micro_batches(self.epoch_batches[epoch][position], self.pieces)[rank::world]
        device = self.runtime.device
        batches = [{k: v.to(device) for k, v in collate(self.train.features, c, self.pad_id).items()} for c in chunks]
        units = [loss_units(self.train.spec.kind, batch) for batch in batches]
        batch_units = self.runtime.all_reduce_sum([sum(units)])[0]
        values = self.step_values(step, total_steps) if self.step_values is not None else {}
        batches = [{**batch, "step_values": values} for batch in batches] if values else batches
        return [(batch, count / batch_units) for batch, count in zip(batches, units, strict=True)], values

    def loss(self, model: nn.Module, batch: tuple[dict[str, torch.Tensor], float]):
        inputs, share = batch
        loss, terms = self.loss_fn(model, inputs)
        return loss * share, {name: value * share for name, value in terms.items()}


def fit(
    model: nn.Module,
    train: TaskData,
    loss_fn: LossFn,
    config: Any,  # the command's TaskTrainConfig (tasks/finetune.py: importing it here would close a circle)
    runtime: Runtime,
    pad_id: int,
    emit: Callable[[dict], None],
    eval_data: TaskData | None = None,
    step_values: StepValues | None = None,
    loss_modules: nn.Module | None = None,
) -> Fitted:
    """Train `model` on `train` with `loss_fn(model, batch) -> (total, terms)`, a mean over the batch's rows
    (labelled tokens for token tasks), through the one loop: AdamW + linear warm-up/decay, clipping, non-finite-step
    skipping, the --time-budget pace, checkpoints every --save-every steps and exact --resume. With
    --eval-every-epoch the evaluation split is scored after each epoch (the learning curve). `step_values(step,
    total_steps)` gives loss values that move over the run (schedules), passed in each batch and logged;
    `loss_modules` (a loss projection) are trained and checkpointed with `model` but are no part of it."""
    seed_everything(config.seed)
    model.to(runtime.device).train()
    forward: nn.Module = model
    if runtime.distributed:  # find_unused_parameters: a pooler the head does not read gets no gradient
        forward = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    recipe = TaskRecipe(train, loss_fn, config, runtime, pad_id, step_values)
    # What the optimizer, clipping and checkpoints own: the model, plus any loss module trained with it.
    trainable = model if loss_modules is None else nn.ModuleDict({"model": model, "loss": loss_modules})
    trainable.to(runtime.device)
    per_epoch = recipe.per_epoch

    def after_step(step: int) -> dict | None:
        if config.eval_every_epoch and eval_data is not None and step % per_epoch == 0:
            return epoch_score(model, eval_data, runtime, pad_id, config, step // per_epoch, step, emit)
        return None

    trained = loop.train(
        trainable, forward, recipe, loop.Settings.of(config), runtime,
        planned_steps=config.max_steps or max(1, math.ceil(config.epochs * per_epoch)), per_epoch=per_epoch,
        checkpoints=checkpoint_root(config.out), records=MemoryLog(), emit=emit, after_step=after_step,
        plan={"global_batch": recipe.global_batch, "seed": config.seed, "train_fingerprint": train.fingerprint()},
    )  # fmt: skip
    return Fitted(trained.steps, trained.planned_steps, trained.stopped_early, trained.records, per_epoch)


def loss_units(kind: str, batch: dict[str, torch.Tensor]) -> float:
    """What a task loss averages over in `batch`: its labelled tokens (token tasks), else its rows. (task-distill's
    hidden-state MSE averages over all tokens: accumulated, it is weighted by these units too — close, not exact.)"""
    if kind == "token-classification":
        return float((batch["labels"] != IGNORE_INDEX).sum())
    return float(len(batch["input_ids"]))


def epoch_score(
    model: nn.Module, eval_data: TaskData, runtime: Runtime, pad_id: int, config: Any, epoch: int,
    step: int, emit: Callable[[dict], None],
) -> dict:  # fmt: skip
    """One point of the learning curve: the model scored on the evaluation split after `epoch` epochs."""
    metrics, _ = score(eval_data, predict(model, eval_data, runtime, pad_id, config.eval_batch_size))
    model.train()
    main = headline(eval_data.spec, metrics)
    emit({"event": "note", "message": f"epoch {epoch}: {config.eval_split} main score {main:.4f}"})
    return {"event": "epoch_eval", "epoch": epoch, "step": step, "split": config.eval_split, "metrics": metrics,
            "main_score": main}  # fmt: skip
