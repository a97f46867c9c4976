"""Task heads: build a fresh head on a base encoder, load a fine-tuned head model and check it fits the task,
save a fine-tuned model, and the hard-label loss of each head. Models stay plain transformers
AutoModelFor{SequenceClassification,QuestionAnswering,TokenClassification}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from distilkit.errors import ModelError
from distilkit.io import read_json, write_json
from distilkit.models import teacher as models
from distilkit.tasks.data import model_inputs
from distilkit.tasks.features import IGNORE_INDEX
from distilkit.tasks.readers.schemes import scheme_of_labels
from distilkit.tasks.registry import HEADS, TaskSpec

TASK_FILE = "distilkit_task.json"  # task, labels, max_len, data split and dev metrics of a fine-tuned model


def _auto_class(head: str):
    import transformers

    return getattr(transformers, f"AutoModel{head}")


def head_of(config) -> str | None:
    """The task head a checkpoint was saved with ("ForSequenceClassification", ...), None for a base/MLM model."""
    for architecture in getattr(config, "architectures", None) or []:
        for head in filter(None, HEADS.values()):
            if architecture.endswith(head):
                return head
    return None


def read_task_info(model_dir: str | Path) -> dict[str, Any] | None:
    """The distilkit_task.json of a model fine-tuned by distilkit, None for any other model."""
    path = Path(models.resolve_model_path(model_dir)) / TASK_FILE
    return read_json(path, "task description") if path.is_file() else None


def _is_default_names(names: list[str]) -> bool:
    return names == [f"LABEL_{i}" for i in range(len(names))]


def check_head(config, spec: TaskSpec, where: str) -> None:
    """Refuse a model whose head cannot answer `spec`: wrong head type, label count, problem type or labels."""
    head = head_of(config)
    if head is None:
        raise ModelError(
            f"{where} has no task head (it is a base encoder) — fine-tune it first: "
            f"distilkit finetune --model {where} --task {spec.name} ..."
        )
    if head != spec.head:
        raise ModelError(f"{where} has a {head[3:]} head but task {spec.name} needs a {spec.head[3:]} head")
    if config.num_labels != spec.num_labels:
        raise ModelError(f"{where} predicts {config.num_labels} labels but task {spec.name} has {spec.num_labels}")
    problem = getattr(config, "problem_type", None)
    if spec.kind == "regression" and problem not in (None, "regression"):
        raise ModelError(f"{where} is a {problem} model but task {spec.name} is a regression")
    if spec.kind == "classification" and problem == "regression":
        raise ModelError(f"{where} is a regression model but task {spec.name} is a classification")
    names = [config.id2label[i] for i in range(config.num_labels)]
    named = spec.kind in ("classification", "token-classification") and not _is_default_names(names)
    if named and names != list(spec.labels):
        raise ModelError(f"{where} has labels {', '.join(names)} but task {spec.name} has {', '.join(spec.labels)}")


def model_spec(spec: TaskSpec, config, info: dict[str, Any] | None = None) -> TaskSpec:
    """The task as a head model sees it: token tags and own classification take their labels from id2label; a
    token task without a scheme takes the one the model was trained with (distilkit_task.json `info`), else the
    one its tags can only be read in (plain tags, BIOES or IOB)."""
    labels = [config.id2label[i] for i in range(config.num_labels)] if head_of(config) else None
    spec = spec.with_labels(labels)
    if spec.kind == "token-classification" and spec.tag_scheme is None and spec.labels:
        spec = spec.with_scheme((info or {}).get("tag_scheme") or scheme_of_labels(spec.labels))
    return spec


def _from_pretrained(head: str, path: str, **kwargs: Any) -> nn.Module:
    models._check_weights(path)
    try:
        return _auto_class(head).from_pretrained(path, **kwargs)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot load a {head[3:]} model from {path}: {str(exc).splitlines()[0]}") from None


def load_head_model(model_dir: str | Path, task: TaskSpec) -> tuple[nn.Module, TaskSpec]:
    """A fine-tuned head model for `task` and the task with the model's labels; ModelError when its head does not
    fit."""
    path = models.resolve_model_path(model_dir)
    config = models.load_config(path)
    spec = model_spec(task, config, read_task_info(path))
    check_head(config, spec, str(model_dir))
    return _from_pretrained(spec.head, path), spec


def build_head_model(model_dir: str | Path, spec: TaskSpec) -> nn.Module:
    """A model for `spec`: a fresh, randomly initialised head on a base encoder (BertModel, ...ForMaskedLM),
    or the model itself when it already has the right head (fine-tuning on)."""
    path = models.resolve_model_path(model_dir)
    config = models.load_config(path)
    if head_of(config) is not None:
        check_head(config, spec, str(model_dir))
        return _from_pretrained(spec.head, path)
    labels = {i: name for i, name in enumerate(spec.labels)} if spec.labels else None
    kwargs: dict[str, Any] = {"num_labels": spec.num_labels}
    if labels:
        kwargs.update(id2label=labels, label2id={name: i for i, name in labels.items()})
    if spec.kind in ("classification", "regression"):
        kwargs["problem_type"] = "regression" if spec.kind == "regression" else "single_label_classification"
    return _from_pretrained(spec.head, path, **kwargs)


def save_task_model(model: nn.Module, tokenizer: Any, directory: Path, info: dict[str, Any]) -> None:
    """save_pretrained + tokenizer + distilkit_task.json into `directory` (a temporary dir of io.atomic_dir)."""
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    write_json(directory / TASK_FILE, info)


def forward(model: nn.Module, batch: dict[str, torch.Tensor], hidden: bool = False) -> Any:
    config = getattr(getattr(model, "module", model), "config", None)  # DDP wraps the model
    return model(**model_inputs(batch, config), output_hidden_states=hidden, return_dict=True)


def head_logits(spec: TaskSpec, outputs: Any) -> torch.Tensor:
    """The head's logits as one tensor: (B, C) sequence, (B, L, C) token, (B, L, 2) start/end for QA."""
    if spec.kind == "qa":
        return torch.stack([outputs.start_logits, outputs.end_logits], dim=-1)
    return outputs.logits


def task_loss(spec: TaskSpec, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The hard-label loss of the head, as transformers' heads compute it: cross-entropy (classification; per
    token over labelled positions for NER; mean of start and end for QA, Devlin et al. 2019 §4.2), MSE (STS-B)."""
    logits = logits.float()
    if spec.kind == "regression":
        return F.mse_loss(logits.squeeze(-1), batch["labels"].float())
    if spec.kind == "token-classification":
        return F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE_INDEX)
    if spec.kind == "qa":
        start = F.cross_entropy(logits[..., 0], batch["start_positions"])
        return (start + F.cross_entropy(logits[..., 1], batch["end_positions"])) / 2
    return F.cross_entropy(logits, batch["labels"])
