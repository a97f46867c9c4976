"""Where a run's step records go: kept in memory and in each checkpoint, or appended to metrics.jsonl and
TensorBoard as training goes. The loop (train/loop.py) writes to either the same way."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from distilkit.io import append_jsonl, atomic_write_text, read_jsonl

log = logging.getLogger(__name__)


class MemoryLog:
    """Step records kept in memory and in every checkpoint (finetune, task-distill write them out at the end)."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    def write(self, record: dict) -> None:
        self.records.append(record)

    def state(self) -> list[dict] | None:
        return self.records

    def restore(self, step: int, records: list[dict] | None) -> None:
        self.records = list(records or [])

    def close(self) -> None:
        pass


class FileLog:
    """Step records appended to a JSONL file as training goes, and to TensorBoard when asked (distill)."""

    def __init__(self, path: Path, tensorboard: Path | None, is_main: bool) -> None:
        self.path, self.tensorboard_dir, self.is_main = path, tensorboard, is_main
        self.records: list[dict] = []  # nothing kept: the file is the log
        self.writer, self.first_step = None, 0

    def write(self, record: dict) -> None:
        if not self.is_main:
            return
        append_jsonl(self.path, record)
        if self.tensorboard_dir is not None:
            if self.writer is None:
                self.writer = open_tensorboard(self.tensorboard_dir, self.first_step)
            if self.writer is not None:
                log_tensorboard(self.writer, record)

    def state(self) -> list[dict] | None:
        return None

    def restore(self, step: int, records: list[dict] | None) -> None:
        """Drop lines written after the checkpoint (they will be written again)."""
        self.first_step = step
        if self.is_main and self.path.exists():
            kept = [r for r in read_jsonl(self.path) if r.get("step", 0) <= step]
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def open_tensorboard(folder: Path, step: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("tensorboard is not installed: loss curves go to metrics.jsonl only")
        return None
    return SummaryWriter(str(folder), purge_step=step + 1 if step else None)


def log_tensorboard(writer, record: dict) -> None:
    step = record["step"]
    writer.add_scalar("loss/total", record["loss"], step)
    for name, value in record["terms"].items():
        writer.add_scalar(f"loss/{name}", value, step)
    writer.add_scalar("train/lr", record["lr"], step)
    writer.add_scalar("train/grad_norm", record["grad_norm"], step)
    for name, value in record.get("weights", {}).items():  # the step's point on each loss weight's schedule
        writer.add_scalar(f"weight/{name}", value, step)
    if "temperature" in record:
        writer.add_scalar("train/temperature", record["temperature"], step)
