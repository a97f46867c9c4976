"""Checkpoints that resume exactly: model, optimizer, scheduler, scaler, RNG, data position, step.

Layout: ``<out>/checkpoints/step-00000123/`` with ``model.safetensors``, ``trainer.pt``,
``state.json`` and ``manifest.json`` (sizes and sha256). A step folder is built in a temporary
sibling, fsynced, and renamed into place, so it exists only once complete; the manifest is
checked on load and a damaged checkpoint is skipped in favour of the previous good one.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from torch import nn

from distilkit.errors import CheckpointError
from distilkit.io import atomic_dir, read_json, verify_manifest, write_json, write_manifest

log = logging.getLogger(__name__)

STEP_DIR = re.compile(r"^step-(\d+)$")


def _to_tensors(rng: dict) -> dict:
    """numpy's RNG state holds an ndarray; store it as a tensor so ``torch.load(weights_only=True)`` reads it."""
    rng = dict(rng)
    numpy_state = dict(rng["numpy"])
    numpy_state["state"] = {**numpy_state["state"], "key": torch.from_numpy(np.asarray(numpy_state["state"]["key"]))}
    rng["numpy"] = numpy_state
    return rng


def _from_tensors(rng: dict) -> dict:
    rng = dict(rng)
    numpy_state = dict(rng["numpy"])
    numpy_state["state"] = {**numpy_state["state"], "key": numpy_state["state"]["key"].numpy().astype(np.uint32)}
    rng["numpy"] = numpy_state
    return rng


class Checkpointer:
    """Owns the checkpoint folder of one run: save, rotate, find the newest good one, load."""

    def __init__(self, root: str | Path, keep: int = 3) -> None:
        self.root = Path(root)
        self.keep = keep

    def step_dirs(self) -> list[Path]:
        """Complete step folders, newest first (temporary ones from a killed write are not listed)."""
        if not self.root.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.root.iterdir() if (m := STEP_DIR.match(p.name)) and p.is_dir()]
        return [p for _, p in sorted(found, reverse=True)]

    def save(
        self,
        step: int,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler,
        scaler: torch.amp.GradScaler | None,
        rng: dict,
        state: dict[str, Any],
    ) -> Path:
        path = self.root / f"step-{step:08d}"
        try:
            with atomic_dir(path, overwrite=True) as tmp:
                save_model(model, str(tmp / "model.safetensors"))
                trainer = {
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict() if scaler is not None else None,
                    "rng": _to_tensors(rng),
                }
                torch.save(trainer, tmp / "trainer.pt")
                write_json(tmp / "state.json", {**state, "step": step})
                write_manifest(tmp)
        except OSError as exc:
            raise CheckpointError(
                f"could not write checkpoint {path.name}: {exc.strerror or exc} — the previous checkpoint is intact"
            ) from None
        self._rotate()
        self._clean_temporaries()
        return path

    def _rotate(self) -> None:
        for old in self.step_dirs()[self.keep :]:
            shutil.rmtree(old, ignore_errors=True)

    def _clean_temporaries(self) -> None:
        for leftover in self.root.glob(".step-*.tmp"):
            shutil.rmtree(leftover, ignore_errors=True)

    def latest_good(self) -> Path | None:
        """The newest checkpoint whose manifest verifies; damaged ones are reported and skipped."""
        for path in self.step_dirs():
            problem = verify_manifest(path)
            if problem is None:
                return path
            log.warning("skipping damaged checkpoint %s: %s", path.name, problem)
        return None

    def load(
        self,
        path: Path,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler,
        scaler: torch.amp.GradScaler | None,
    ) -> tuple[dict, dict[str, Any]]:
        """Restore everything in place; returns ``(rng_state, state)`` for the caller to apply."""
        problem = verify_manifest(path)
        if problem is not None:
            raise CheckpointError(f"checkpoint {path} is damaged: {problem}")
        try:
            load_model(model, str(path / "model.safetensors"))
            trainer = torch.load(path / "trainer.pt", map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"cannot load checkpoint {path}: {str(exc).splitlines()[0]}") from None
        optimizer.load_state_dict(trainer["optimizer"])
        scheduler.load_state_dict(trainer["scheduler"])
        if scaler is not None and trainer["scaler"] is not None:
            scaler.load_state_dict(trainer["scaler"])
        return _from_tensors(trainer["rng"]), read_json(path / "state.json", "checkpoint state")
