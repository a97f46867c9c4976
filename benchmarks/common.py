"""Helpers shared by the benchmark scripts: repository paths, the shared data folder, logging, training progress.

The scripts run as `python benchmarks/<name>.py`, which puts benchmarks/ on sys.path: `from common import ...`.
Logs go to stderr, so a script's stdout holds only what it reports (its final JSON line).
"""

from __future__ import annotations

import os
import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def evaluation_data(root: Path) -> list[Path]:
    """Every evaluation split the benchmarks report, as `--exclude` takes it: every GLUE task folder (its dev/test
    files), SQuAD dev and CoNLL-2003 valid/test."""
    glue = [path for path in sorted((root / "glue").iterdir()) if path.is_dir()]
    return [*glue, *(path for path in (root / "squad", root / "conll2003") if path.is_dir())]


def cpu_info() -> dict:
    """The CPU's model name and the instruction-set features that decide fp32/bf16/int8 speed."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                 platform.processor() or platform.machine())  # fmt: skip
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")
    return {"model": model, "features": [name for name in wanted if name in flags], "cores": os.cpu_count()}


_WORK_FOLDER = re.compile(r"(^|[\s'\"=(])/[^\s'\"]*?/runs/")


def portable(value: Any) -> Any:
    """A results record without this machine's paths: the shared data folder becomes ../shared/data, paths in the
    repository become relative to it, and a work folder anywhere becomes the part from its runs/ folder on."""
    if isinstance(value, dict):
        return {portable(key): portable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [portable(item) for item in value]
    if not isinstance(value, str):
        return value
    value = value.replace(str(data_root()), "../shared/data").replace(str(REPO) + "/", "")
    return _WORK_FOLDER.sub(r"\1runs/", value)
