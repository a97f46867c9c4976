"""Helpers shared by the benchmark scripts: repository paths, the shared data folder, logging, training progress.

The scripts run as `python benchmarks/<name>.py`, which puts benchmarks/ on sys.path: `from common import ...`.
Logs go to stderr, so a script's stdout holds only what it reports (its final JSON line).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def data_root() -> Path:
    """The shared data folder: $DISTILKIT_SHARED_DATA, else ../shared/data next to the repository (unchecked)."""
    return Path(os.environ.get("DISTILKIT_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


def shared_data(*needed: str) -> Path:
    """The shared data folder, after checking that it and every path in `needed` (relative to it) exist;
    exits with a message naming what is missing otherwise."""
    root = data_root()
    missing = [name for name in needed if not (root / name).exists()]
    if missing or not root.is_dir():
        sys.exit(
            f"shared data not found under {root}"
            + (f" (missing {', '.join(missing)})" if missing else "")
            + " — set DISTILKIT_SHARED_DATA to the shared/data folder (the one holding glue/, text/, ...)"
        )
    return root


def log(message: str) -> None:
    """A timestamped line on stderr, prefixed with the running script's name."""
    name = Path(sys.argv[0]).stem or "benchmarks"
    print(f"[{name} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def progress(prefix: str) -> Callable[[dict], None]:
    """A training callback that logs every 50th and the last step, teacher-logit caching, notes and stages."""

    def callback(event: dict) -> None:
        kind = event.get("event")
        if kind == "step" and (event["step"] % 50 == 0 or event["step"] == event["total_steps"]):
            log(f"{prefix} step {event['step']}/{event['total_steps']} loss {event['loss']:.4f}")
        elif kind == "teacher-logits" and (event["done"] % 12_800 < 64 or event["done"] == event["total"]):
            log(f"{prefix} teacher logits {event['done']:,}/{event['total']:,}")
        elif kind in ("note", "stage"):
            log(f"{prefix} {event['message']}")

    return callback
