"""What a model folder is, for the ship commands: its kind (embedding, classification, token-classification, qa —
the vocabulary of tasks/registry.py), the transformers head class and outputs of that kind, and the inputs the
model takes."""

from __future__ import annotations

import contextlib
import inspect
import json
import warnings
from pathlib import Path

from torch import nn

from distilkit.errors import ConfigError, ModelError
from distilkit.models.teacher import load_config, max_positions, resolve_model_path, tokenizer_inputs
from distilkit.tasks.registry import HEADS, task_spec

TASK_FILE = "distilkit_task.json"  # written next to fine-tuned models: {"task": "sst2", ...}
# A model folder's kind → (transformers auto class, output names of the model and of its ONNX graph). A regression
# model is a sequence classifier with one output: kind "classification" (TaskSpec.model_kind).
_OUTPUTS = {"embedding": ("last_hidden_state",), "classification": ("logits",),
            "token-classification": ("logits",), "qa": ("start_logits", "end_logits")}  # fmt: skip
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    kind: (f"AutoModel{HEADS[kind]}", outputs) for kind, outputs in _OUTPUTS.items()
}
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def read_task(model_dir: str | Path) -> str | None:
    """The task name in a model folder's distilkit_task.json, or None."""
    path = Path(model_dir) / TASK_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    task = (record.get("task") or record.get("task_name")) if isinstance(record, dict) else None
    return str(task) if task else None


def model_kind(model_dir: str | Path) -> str:
    """embedding, classification, token-classification or qa — from distilkit_task.json, else the architectures."""
    path = resolve_model_path(model_dir)
    task = read_task(path)
    if task:
        with contextlib.suppress(ConfigError):
            return task_spec(task).model_kind
    for name in getattr(load_config(path), "architectures", None) or []:
        for kind in KINDS:
            if HEADS[kind] and name.endswith(HEADS[kind]):
                return kind
    return "embedding"  # a bare encoder or an MLM checkpoint: sentence embeddings, pooled as its config says


def load_task_model(model_dir: str | Path, kind: str | None = None) -> nn.Module:
    """The model with the head of its kind, in eval mode (a bare encoder for embedding models)."""
    import transformers

    path = resolve_model_path(model_dir)
    kind = kind or model_kind(path)
    loader = getattr(transformers, KINDS[kind][0])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = loader.from_pretrained(path)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot load a {kind} model from {path}: {str(exc).splitlines()[0]}") from None
    return model.eval()


def input_names(model: nn.Module, tokenizer) -> list[str]:
    """The model inputs both the tokenizer produces and the model accepts (DistilBERT has no token types)."""
    accepted = inspect.signature(model.forward).parameters
    fed = tokenizer_inputs(model.config)  # FlauBERT/XLM: no token_type_ids (they are not segment ids there)
    names = [n for n in MODEL_INPUTS if n in accepted and n in tokenizer.model_input_names and n in fed]
    return names if "input_ids" in names else ["input_ids", "attention_mask"]


def max_tokens(config) -> int:
    """The longest sequence the model's position table holds (RoBERTa's positions start after the padding id)."""
    return max_positions(config)
