"""distilkit: distil a BERT-style teacher into a smaller, faster student, and ship it.

The public API mirrors the CLI: each command is one function taking one config dataclass::

    import distilkit
    distilkit.distill(distilkit.DistillConfig(teacher=..., student=..., data=..., out=...))

Names are imported lazily, so ``import distilkit`` stays light (no torch until a function is used).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "prepare": "distilkit.data.prepare",
    "PrepareConfig": "distilkit.data.prepare",
    "init_student": "distilkit.models.student",
    "InitStudentConfig": "distilkit.models.student",
    "distill": "distilkit.train.distill",
    "DistillConfig": "distilkit.train.distill",
    "quickstart": "distilkit.pipeline",
    "QuickstartConfig": "distilkit.pipeline",
    "finetune": "distilkit.train.finetune",
    "FinetuneConfig": "distilkit.train.finetune",
    "task_distill": "distilkit.train.task_distill",
    "TaskDistillConfig": "distilkit.train.task_distill",
    "fit_mlm_head": "distilkit.train.mlm_head",
    "FitMlmHeadConfig": "distilkit.train.mlm_head",
    "evaluate": "distilkit.evaluation",
    "EvaluateConfig": "distilkit.evaluation",
    "evaluate_sts": "distilkit.embeddings",
    "StsConfig": "distilkit.embeddings",
    "bench": "distilkit.ship.bench",
    "BenchConfig": "distilkit.ship.bench",
    "export": "distilkit.ship.export",
    "ExportConfig": "distilkit.ship.export",
    "AccuracyGuardError": "distilkit.ship.export",
    "serve": "distilkit.ship.serve.app",
    "ServeConfig": "distilkit.ship.serve.app",
    "create_app": "distilkit.ship.serve.app",
    "report": "distilkit.ship.report",
    "ReportConfig": "distilkit.ship.report",
    "write_report": "distilkit.ship.report",
    "compress": "distilkit.compression.run",
    "CompressConfig": "distilkit.compression.config",
    "DistilkitError": "distilkit.errors",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'distilkit' has no attribute '{name}'")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
