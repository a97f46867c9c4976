"""Build a student from the teacher: fewer layers, same hidden size and vocabulary, teacher weights.

DistilBERT (Sanh et al. 2019) §3: "initialize the student from the teacher by taking one layer
out of two". The student is an ordinary transformers model of the teacher's class, built from
a copy of its config and filled with the teacher's tensors.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from distilkit.errors import ConfigError, ModelError
from distilkit.models.teacher import arch_of, layer_index, load_model, load_tokenizer, num_layers, with_layer_index

log = logging.getLogger(__name__)

LAYERS_CONFIG_KEY = "distilkit_teacher_layers"  # stored in the student's config.json


def spread_layers(teacher_layers: int, student_layers: int) -> list[int]:
    """Evenly spread layer indices, first and last included: 12→6 gives DistilBERT's [0, 2, 4, 7, 9, 11]."""
    if not 1 <= student_layers <= teacher_layers:
        raise ConfigError(f"--num-layers must be between 1 and the teacher's {teacher_layers} layers")
    return [int(i) for i in np.round(np.linspace(0, teacher_layers - 1, student_layers))]


def parse_layers(text: str) -> list[int]:
    try:
        layers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--layers must be comma-separated integers, got '{text}'") from None
    if not layers:
        raise ConfigError("--layers is empty")
    return layers


def check_layers(layers: list[int], teacher_layers: int) -> None:
    bad = [i for i in layers if not 0 <= i < teacher_layers]
    if bad:
        raise ConfigError(f"layers {bad} do not exist: the teacher has layers 0..{teacher_layers - 1}")
    if sorted(set(layers)) != layers:
        raise ConfigError(f"layers must be strictly increasing without repeats, got {layers}")


def build_student(teacher: nn.Module, layers: list[int]) -> nn.Module:
    """A model of the teacher's class with ``len(layers)`` layers; layer j is a copy of teacher layer layers[j].

    Embeddings, pooler and heads (e.g. the MLM head) are copied unchanged. Loading is strict:
    every student tensor comes from the teacher.
    """
    arch = arch_of(teacher.config)
    check_layers(layers, num_layers(teacher.config))
    config = copy.deepcopy(teacher.config)
    setattr(config, arch.num_layers_attr, len(layers))
    setattr(config, LAYERS_CONFIG_KEY, list(layers))
    student = type(teacher)(config)
    teacher_state = teacher.state_dict()
    student_state = {}
    for key in student.state_dict():
        index = layer_index(key, arch)
        source = key
        if index is not None:  # rewrite only the layer index matched by the architecture's regex
            source = with_layer_index(key, arch, layers[index])
        if source not in teacher_state:
            raise ModelError(f"teacher has no tensor '{source}' for student tensor '{key}'")
        student_state[key] = teacher_state[source].clone()
    student.load_state_dict(student_state, strict=True)
    return student


@dataclass(frozen=True)
class InitStudentConfig:
    teacher: str
    out: str
    layers: str | None = None  # e.g. "0,2,4,7,9,11"; default: evenly spread
    num_layers: int | None = None  # default: half the teacher's layers (DistilBERT)
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.layers is not None and self.num_layers is not None:
            raise ConfigError("give either --layers or --num-layers, not both")
        if self.num_layers is not None and self.num_layers < 1:
            raise ConfigError("--num-layers must be at least 1")


def init_student(config: InitStudentConfig) -> Path:
    """Build the student from ``config.teacher`` and save it (save_pretrained + tokenizer) to ``config.out``."""
    from distilkit.io import atomic_dir

    teacher = load_model(config.teacher)
    tokenizer = load_tokenizer(config.teacher)
    n_teacher = num_layers(teacher.config)
    if config.layers is not None:
        layers = parse_layers(config.layers)
    else:
        layers = spread_layers(n_teacher, config.num_layers or max(1, n_teacher // 2))
    student = build_student(teacher, layers)
    log.info("student layers from teacher layers %s", layers)
    with atomic_dir(config.out, overwrite=config.overwrite) as tmp:
        student.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(config.out)
