"""Where and how a process runs: device, precision, processes (torchrun / accelerate launch), seeds and RNG state.

Set up once per command (`setup_runtime`), handed to training, prediction and timing alike.
"""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass

import numpy as np
import torch

from distilkit.errors import ConfigError


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


def make_grad_scaler(runtime: Runtime) -> torch.amp.GradScaler | None:
    if runtime.amp_dtype == torch.float16:
        return torch.amp.GradScaler("cuda")
    return None


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
