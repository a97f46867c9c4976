"""Shared training machinery: runtime (device, precision, processes), optimizer, schedule, one optimizer step.

Used by general distillation, fine-tuning and task distillation alike, so there is one way
to clip, skip a non-finite step, schedule the learning rate and run under DDP.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from distilkit.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Where and how this process trains. Built once from the environment torchrun/accelerate set."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    amp_dtype: torch.dtype | None = None  # None = full fp32

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        """Sum a few numbers over processes (float64, so counts stay exact)."""
        if not self.distributed:
            return list(values)
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()


PRECISIONS = ("auto", "fp32", "bf16", "fp16")
REPLAN_EVERY = 10  # steps between re-plans of a time-budgeted run: the pace drifts (a shared CPU, batches of
# grouped lengths that differ in cost many times over)


def setup_runtime(device: str = "auto", precision: str = "auto") -> Runtime:
    """Read RANK/WORLD_SIZE/LOCAL_RANK (set by torchrun and ``accelerate launch``) and pick device and precision.

    precision "auto": bf16 autocast on a GPU that supports it, else fp32 (CPU bf16 is only
    faster on CPUs with AMX, so it is opt-in there).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is available")
    torch_device = torch.device(f"cuda:{local_rank}" if device == "cuda" else device)
    if torch_device.type == "cuda":
        torch.cuda.set_device(torch_device)
    if world_size > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if torch_device.type == "cuda" else "gloo")
    amp_dtype = None
    if precision == "bf16" or (precision == "auto" and torch_device.type == "cuda" and torch.cuda.is_bf16_supported()):
        amp_dtype = torch.bfloat16
    elif precision == "fp16":
        if torch_device.type != "cuda":
            raise ConfigError("--precision fp16 needs a CUDA GPU; use bf16 or fp32 on CPU")
        amp_dtype = torch.float16
    return Runtime(torch_device, rank, world_size, local_rank, amp_dtype)


def shutdown_runtime(runtime: Runtime) -> None:
    if runtime.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


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


def make_grad_scaler(runtime: Runtime) -> torch.amp.GradScaler | None:
    if runtime.amp_dtype == torch.float16:
        return torch.amp.GradScaler("cuda")
    return None


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


def rng_state() -> dict:
    """Every random state the training step consumes (dropout uses torch's global generator)."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(legacy=False),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
