"""Task-specific distillation: train a student's task head and encoder on a task against a fine-tuned teacher's
logits (soft targets at temperature T) plus the gold labels, optionally matching hidden states.

The teacher's logits on the fixed training set are computed once per feature, the first time it is trained on
(eval mode, no gradients), kept in memory and in a .npy keyed by a fingerprint of the teacher weights and the
features, and reused every epoch and by any later run on the same teacher and data — that is where a CPU run
saves most of its time.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from distilkit import losses
from distilkit.errors import ConfigError, ModelError
from distilkit.io import atomic_write, sha256_file
from distilkit.models.student import LAYERS_CONFIG_KEY, spread_layers
from distilkit.models.teacher import (
    WEIGHT_FILES,
    hidden_size,
    load_config,
    load_tokenizer,
    num_layers,
    resolve_model_path,
)
from distilkit.tasks.data import TaskData, TaskSpec, collate, squad_article_split
from distilkit.tasks.finetune import (
    TaskResult,
    TaskTrainConfig,
    check_out,
    data_message,
    evaluate_and_save,
    fit,
    prepare_data,
    single_process_runtime,
    squad_split_info,
)
from distilkit.tasks.heads import build_head_model, forward, head_logits, load_head_model, read_task_info, task_loss
from distilkit.tasks.ner import IGNORE_INDEX
from distilkit.train.objective import parse_layer_pairs

log = logging.getLogger(__name__)

CACHE_PREFIX = "teacher_logits-"
_NEG = -1e4  # logit given to padding positions of QA windows: exp(-1e4 / T) is 0 for both models, never NaN


@dataclass(frozen=True, kw_only=True)
class TaskDistillConfig(TaskTrainConfig):
    teacher: str  # fine-tuned head model (distilkit finetune output or any matching transformers head model)
    student: str  # base encoder (init-student / distill output): its task head is built fresh
    # 0.5/0.5 and T=2: the defaults of HF's run_squad_w_distillation.py (DistilBERT's task distillation).
    alpha_kl: float = 0.5  # soft targets: KL·T² on the task logits (MSE to the teacher's score for STS-B)
    alpha_hard: float = 0.5  # gold labels: cross-entropy (MSE for STS-B)
    temperature: float = 2.0
    alpha_hidden: float = 0.0  # MSE between mapped hidden states (TinyBERT §3.1); needs a live teacher pass
    layer_map: str | None = None  # "s:t,..." hidden-state pairs; default: each student layer ↔ its source layer
    cache_dir: str | None = None  # where teacher logits are cached; default: inside --out

    def problems(self) -> list[str]:
        problems = super().problems()
        if min(self.alpha_kl, self.alpha_hard, self.alpha_hidden) < 0:
            problems.append("--alpha-kl, --alpha-hard and --alpha-hidden must be ≥ 0")
        if self.alpha_kl + self.alpha_hard + self.alpha_hidden == 0:
            problems.append("every loss weight is 0 — nothing to train")
        if self.temperature <= 0:
            problems.append("--temperature must be > 0")
        try:
            parse_layer_pairs(self.layer_map, "--layer-map")
        except ConfigError as error:
            problems.append(str(error))
        return problems


def weights_fingerprint(model_dir: str) -> str:
    """sha256 over the model's weight files (a different or retrained teacher gets a different key)."""
    path = Path(resolve_model_path(model_dir))
    digest = hashlib.sha256()
    for name in WEIGHT_FILES:
        if (path / name).is_file():
            digest.update(f"{name}:{sha256_file(path / name)}".encode())
    return digest.hexdigest()


def cache_key(teacher_dir: str, train: TaskData) -> str:
    return hashlib.sha256(f"{weights_fingerprint(teacher_dir)}|{train.fingerprint()}".encode()).hexdigest()[:20]


def row_offsets(spec: TaskSpec, train: TaskData) -> np.ndarray:
    """Where each feature's teacher rows start in the cache: 1 row per sequence-task feature, 1 per labelled
    token (first sub-tokens) for NER, 1 per window token for QA (start and end logits as 2 columns)."""
    if spec.kind == "token":
        counts = [sum(label != IGNORE_INDEX for label in row) for row in train.features["labels"]]
    elif spec.kind == "qa":
        counts = list(train.lengths)
    else:
        counts = [1] * len(train)
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


class TeacherCache:
    """The teacher's logits on the training features, computed the first time a feature is in a batch (teacher
    in eval mode, no gradients) and kept: later epochs — and later runs, through the .npy written next to the
    model (NaN rows: never needed) — reuse them. A time-budgeted run so pays only for the features it sees."""

    def __init__(self, teacher: nn.Module, train: TaskData, pad_id: int, rows: np.ndarray | None = None) -> None:
        self.teacher, self.train, self.pad_id = teacher, train, pad_id
        self.offsets = row_offsets(train.spec, train)
        if rows is None:
            rows = np.full((int(self.offsets[-1]), train.spec.num_labels), np.nan, dtype=np.float32)
        self.rows = torch.from_numpy(rows)
        first_value = np.append(rows[:, 0], 0.0)[self.offsets[:-1]]
        self.known = ~np.isnan(first_value) | (self.offsets[1:] == self.offsets[:-1])
        self.reused, self.computed = int(self.known.sum()), 0

    @torch.no_grad()
    def fill(self, indices: list[int], device: torch.device) -> None:
        """Run the teacher on the features of `indices` it has not seen yet."""
        missing = [index for index in indices if not self.known[index]]
        if missing:
            batch = {k: v.to(device) for k, v in collate(self.train.features, missing, self.pad_id).items()}
            self.remember(batch, head_logits(self.train.spec, forward(self.teacher, batch)))

    def remember(self, batch: dict[str, torch.Tensor], logits: torch.Tensor) -> None:
        """Keep the teacher logits of a batch (already computed, e.g. by a hidden-state matching pass)."""
        logits, kind = logits.detach().float().cpu(), self.train.spec.kind
        for row, index in enumerate(batch["index"].tolist()):
            if self.known[index]:
                continue
            if kind == "token":
                values = logits[row][batch["labels"][row].cpu() != IGNORE_INDEX]
            elif kind == "qa":
                values = logits[row, : self.offsets[index + 1] - self.offsets[index]]
            else:
                values = logits[row : row + 1]
            self.rows[self.offsets[index] : self.offsets[index + 1]] = values
            self.known[index] = True
            self.computed += 1

    def batch(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The teacher logits of a training batch, shaped like what the soft loss compares."""
        device = batch["input_ids"].device
        self.fill(batch["index"].tolist(), device)
        return batch_teacher_logits(self.train.spec, self.rows, self.offsets, batch).to(device)

    def array(self) -> np.ndarray:
        return self.rows.numpy()


def open_cache(config: TaskDistillConfig, teacher: nn.Module, train: TaskData, pad_id: int) -> tuple[TeacherCache, str]:
    """The cache of this teacher + these features: read from --cache-dir or a previous run in --out when the
    fingerprint matches (a different teacher or data never does), else empty."""
    name = f"{CACHE_PREFIX}{cache_key(config.teacher, train)}.npy"
    shape = (int(row_offsets(train.spec, train)[-1]), train.spec.num_labels)
    for folder in filter(None, [config.cache_dir, config.out]):
        path = Path(folder) / name
        if path.is_file():
            rows = np.load(path)
            if rows.shape == shape:
                return TeacherCache(teacher, train, pad_id, rows), name
            log.warning("ignoring %s: shape %s, expected %s", path, rows.shape, shape)
    return TeacherCache(teacher, train, pad_id), name


def _save_npy(path: Path, rows: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, rows)
    path.write_bytes(buffer.getvalue())


def batch_teacher_logits(
    spec: TaskSpec, rows: torch.Tensor, offsets: np.ndarray, batch: dict[str, torch.Tensor]
) -> torch.Tensor:
    """Cached teacher logits of a batch: (B, C) sequence, (labelled tokens, C) NER, (B, L, 2) QA padded with _NEG."""
    indices = batch["index"].tolist()
    if spec.kind in ("classification", "regression"):
        return rows[indices]
    pieces = [rows[offsets[i] : offsets[i + 1]] for i in indices]
    if spec.kind == "token":
        return torch.cat(pieces)
    padded = torch.full((len(indices), batch["input_ids"].shape[1], 2), _NEG)
    for row, piece in enumerate(pieces):
        padded[row, : len(piece)] = piece
    return padded


def soft_loss(spec: TaskSpec, student: torch.Tensor, teacher: torch.Tensor, batch: dict, temperature: float):
    """Soft-target term: KL·T² on class logits (per labelled token for NER; start and end position
    distributions averaged for QA, padding masked); MSE to the teacher's score for regression."""
    if spec.kind == "regression":
        return F.mse_loss(student.squeeze(-1).float(), teacher.squeeze(-1).float())
    if spec.kind == "token":
        return losses.soft_target_kl(student[batch["labels"] != IGNORE_INDEX], teacher, temperature)
    if spec.kind == "qa":
        student = student.masked_fill(~batch["attention_mask"].bool().unsqueeze(-1), _NEG)
        start = losses.soft_target_kl(student[..., 0], teacher[..., 0], temperature)
        return (start + losses.soft_target_kl(student[..., 1], teacher[..., 1], temperature)) / 2
    return losses.soft_target_kl(student, teacher, temperature)


def hidden_pairs(config: TaskDistillConfig, student: nn.Module, teacher: nn.Module) -> list[tuple[int, int]]:
    """Hidden-state pairs (transformers indexing: 0 = embeddings); default each student layer ↔ its source layer
    (the student config's distilkit_teacher_layers, else evenly spread)."""
    n_student, n_teacher = num_layers(student.config), num_layers(teacher.config)
    pairs = parse_layer_pairs(config.layer_map, "--layer-map")
    if pairs is None:
        source = getattr(student.config, LAYERS_CONFIG_KEY, None) or spread_layers(n_teacher, n_student)
        pairs = [(j + 1, t + 1) for j, t in enumerate(source)]
    for s, t in pairs:
        if not (0 <= s <= n_student and 0 <= t <= n_teacher):
            raise ConfigError(
                f"--layer-map pair {s}:{t} is out of range (student 0..{n_student}, teacher 0..{n_teacher})"
            )
    if hidden_size(student.config) != hidden_size(teacher.config):
        raise ModelError("teacher and student hidden sizes differ — --alpha-hidden needs them equal")
    return pairs


def check_pair(teacher_tokenizer: Any, student_tokenizer: Any, teacher: nn.Module, student_config: Any) -> None:
    """Teacher and student must read the same token ids: same vocabulary size and the same tokenizer vocabulary."""
    if teacher.config.vocab_size != student_config.vocab_size or (
        teacher_tokenizer.get_vocab() != student_tokenizer.get_vocab()
    ):
        raise ModelError(
            f"teacher (vocab {teacher.config.vocab_size}) and student (vocab {student_config.vocab_size}) tokenize "
            "differently — the student must come from this teacher's encoder (init-student / distill)"
        )


def task_distill(config: TaskDistillConfig, callback: Callable[[dict], None] | None = None) -> TaskResult:
    """Distil fine-tuned `config.teacher` into `config.student` on `config.task`; saves like `finetune`."""
    emit = callback or (lambda event: None)
    started = time.monotonic()
    check_out(config.out, config.overwrite)
    runtime = single_process_runtime(config)
    teacher, teacher_spec = load_head_model(config.teacher, config.task)
    teacher_tokenizer, tokenizer = load_tokenizer(config.teacher), load_tokenizer(config.student)
    check_pair(teacher_tokenizer, tokenizer, teacher, load_config(config.student))
    teacher_info = read_task_info(config.teacher) or {}
    heldout = None
    if teacher_spec.kind == "qa" and not config.data.startswith("hf:"):
        split = teacher_info.get("squad_split")  # train on the teacher's articles: no held-out leakage
        heldout = split["heldout_titles"] if split else squad_article_split(
            Path(config.data), config.squad_dev_fraction, config.seed)  # fmt: skip
    labels = list(teacher_spec.labels) if teacher_spec.kind == "token" else None
    train, eval_data = prepare_data(config, tokenizer, labels, heldout)
    spec = train.spec
    student = build_head_model(config.student, spec)
    emit({"event": "stage", "stage": "data", "message": data_message(train, eval_data)})
    pad_id = tokenizer.pad_token_id or 0
    teacher.to(runtime.device).eval().requires_grad_(False)
    cache, cache_name = open_cache(config, teacher, train, pad_id)
    pairs = hidden_pairs(config, student, teacher) if config.alpha_hidden > 0 else []
    weights = {"kl": config.alpha_kl, "hard": config.alpha_hard, "hidden": config.alpha_hidden}

    def distillation_loss(model: nn.Module, batch: dict[str, torch.Tensor]):
        if pairs:  # hidden-state matching needs the teacher live; its logits then fill the cache for free
            with torch.no_grad():
                teacher_out = forward(teacher, batch, hidden=True)
            cache.remember(batch, head_logits(spec, teacher_out))
        outputs = forward(model, batch, hidden=bool(pairs))
        logits = head_logits(spec, outputs)
        terms = {}
        if config.alpha_kl > 0:
            terms["kl"] = soft_loss(spec, logits, cache.batch(batch), batch, config.temperature)
        if config.alpha_hard > 0:
            terms["hard"] = task_loss(spec, logits, batch)
        if pairs:
            tokens = batch["attention_mask"].bool()
            terms["hidden"] = sum(
                losses.hidden_mse(outputs.hidden_states[s][tokens], teacher_out.hidden_states[t][tokens])
                for s, t in pairs
            ) / len(pairs)
        return losses.weighted_sum(terms, weights), terms

    fitted = fit(student, train, distillation_loss, config, runtime, pad_id, emit, "task-distill")
    emit({"event": "note", "message": f"teacher logits: {cache.computed} features computed, {cache.reused} reused"})
    if config.cache_dir and cache.computed:
        atomic_write(Path(config.cache_dir) / cache_name, lambda tmp: _save_npy(tmp, cache.array()))
    if eval_data is not None:
        emit({"event": "stage", "stage": "evaluate", "message": f"scoring the {config.eval_split} split"})
    info = {
        "labels": list(spec.labels), "train_examples": len(train.examples), "train_features": len(train),
        "squad_split": squad_split_info(config, heldout, train), "base_model": config.student,
        "teacher": config.teacher, "teacher_main_score": teacher_info.get("main_score"),
        "distillation": {"weights": weights, "temperature": config.temperature, "hidden_pairs": pairs,
                         "teacher_cache": cache_name, "teacher_logits_computed": cache.computed,
                         "teacher_logits_reused": cache.reused},
    }  # fmt: skip
    save_cache = (lambda folder: _save_npy(folder / cache_name, cache.array()),)
    result = evaluate_and_save(config, "task-distill", student, tokenizer, eval_data, runtime, fitted, info, save_cache)
    result.seconds = time.monotonic() - started
    emit({"event": "done", "out": config.out, "metrics": result.metrics})
    return result
