"""Build a student from the teacher: fewer layers (chosen, or found by a probe), optionally narrower, teacher weights.

DistilBERT (Sanh et al. 2019) §3: "initialize the student from the teacher by taking one layer
out of two". The student is an ordinary transformers model of the teacher's class, built from
a copy of its config and filled with the teacher's tensors — sliced, for a narrower student, to
the teacher dimensions it keeps (weight selection, Xu et al. 2023, "Initializing Models with Larger Ones").
"""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from distilkit.errors import ConfigError, ModelError
from distilkit.models.teacher import (
    arch_of,
    hidden_size,
    layer_index,
    load_model,
    load_tokenizer,
    num_layers,
    resolve_model_path,
    with_layer_index,
)

log = logging.getLogger(__name__)

LAYERS_CONFIG_KEY = "distilkit_teacher_layers"  # stored in the student's config.json
DIMS_CONFIG_KEY = "distilkit_teacher_hidden_dims"  # a narrower student: the teacher dimensions it kept
PROJECTION_FILE = "distilkit_projection.safetensors"  # a narrower student: the loss projection P (d_t × d_s)
HEADS_ATTR = {"bert": "num_attention_heads", "roberta": "num_attention_heads", "xlm-roberta": "num_attention_heads",
              "distilbert": "n_heads"}  # fmt: skip

# Which width each axis of a tensor indexes: "h" the hidden size (residual stream), "a" the attention
# inner size (heads × head size), None neither (vocabulary, positions, FFN inner size). First match wins.
WIDTH_AXES = [
    (r"(query|key|value|q_lin|k_lin|v_lin)\.weight$", ("a", "h")),
    (r"(query|key|value|q_lin|k_lin|v_lin)\.bias$", ("a",)),
    (r"(attention\.output\.dense|out_lin)\.weight$", ("h", "a")),
    (r"(intermediate\.dense|ffn\.lin1)\.weight$", (None, "h")),
    (r"(intermediate\.dense|ffn\.lin1)\.bias$", (None,)),
    (r"(output\.dense|ffn\.lin2)\.weight$", ("h", None)),
    (r"(pooler\.dense|transform\.dense|lm_head\.dense|vocab_transform)\.weight$", ("h", "h")),
    (r"(_embeddings|decoder|vocab_projector)\.weight$", (None, "h")),
    (r"(decoder|vocab_projector)\.bias$|(predictions|lm_head)\.bias$", (None,)),
    (r"\.(weight|bias)$", ("h",)),  # LayerNorms and the biases of hidden-sized outputs
]


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


@dataclass(frozen=True)
class Narrowing:
    """The teacher dimensions a narrower student keeps: residual-stream dims, and attention dims per layer."""

    hidden: tuple[int, ...]  # ascending teacher hidden dims, one per student hidden dim
    num_heads: int
    attention: tuple[tuple[int, ...], ...]  # per student layer: teacher attention dims (whole heads, head-major)


def _width_axes(key: str) -> tuple[str | None, ...]:
    return next(axes for pattern, axes in WIDTH_AXES if re.search(pattern, key))


def _narrow(key: str, tensor: torch.Tensor, narrowing: Narrowing, layer: int | None) -> torch.Tensor:
    axes = _width_axes(key)
    if len(axes) != tensor.ndim:
        raise ModelError(f"cannot narrow teacher tensor '{key}' of shape {tuple(tensor.shape)}: unknown layout")
    for dim, axis in enumerate(axes):
        if axis == "h":
            tensor = tensor.index_select(dim, torch.tensor(narrowing.hidden))
        elif axis == "a":
            tensor = tensor.index_select(dim, torch.tensor(narrowing.attention[layer]))
    return tensor


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
            tensor = _narrow(key, tensor, narrowing, index)
        if tensor.shape != target.shape:
            raise ModelError(f"teacher tensor '{source}' {tuple(tensor.shape)} does not fit student '{key}'")
        student_state[key] = tensor.clone()
    student.load_state_dict(student_state, strict=True)
    return student


def plan_narrowing(
    teacher: nn.Module, layers: list[int], hidden_energy: torch.Tensor, width: int, num_heads: int | None
) -> Narrowing:
    """Keep the ``width`` hidden dims with the most energy (mean squared activation over a text sample, all
    layers) and, per layer, the attention heads with the largest value→output weights.

    Dropping the lowest-energy coordinates loses the least of the teacher's hidden states among all
    choices of ``width`` coordinates; whole heads keep the teacher's head size (and attention scale).
    """
    d_teacher = hidden_size(teacher.config)
    heads_teacher = int(getattr(teacher.config, HEADS_ATTR[teacher.config.model_type]))
    head_size = d_teacher // heads_teacher
    if not 1 <= width <= d_teacher:
        raise ConfigError(f"--hidden-size must be between 1 and the teacher's {d_teacher}")
    if num_heads is None:
        if width % head_size:
            raise ConfigError(
                f"--hidden-size {width} is not a multiple of the teacher's head size {head_size} — pass --num-heads"
            )
        num_heads = width // head_size
    if width % num_heads or num_heads > heads_teacher or width // num_heads != head_size:
        raise ConfigError(
            f"--num-heads {num_heads} does not fit: whole teacher heads of size {head_size} are kept, so "
            f"--hidden-size must equal --num-heads × {head_size} with at most {heads_teacher} heads"
        )
    hidden = sorted(torch.topk(hidden_energy, width).indices.tolist())
    state, arch = teacher.state_dict(), arch_of(teacher.config)

    def layer_tensor(layer: int, pattern: str) -> torch.Tensor:
        return next(v for k, v in state.items() if layer_index(k, arch) == layer and re.search(pattern, k))

    attention = []
    for layer in layers:
        value = layer_tensor(layer, r"(value|v_lin)\.weight$").view(heads_teacher, head_size, -1)
        output = layer_tensor(layer, r"(attention\.output\.dense|out_lin)\.weight$").view(-1, heads_teacher, head_size)
        strength = value.norm(dim=(1, 2)) * output.norm(dim=(0, 2))  # per head: its value → output path
        kept = sorted(torch.topk(strength, num_heads).indices.tolist())
        attention.append(tuple(h * head_size + i for h in kept for i in range(head_size)))
    return Narrowing(tuple(hidden), num_heads, tuple(attention))


def selection_projection(narrowing: Narrowing, teacher_width: int) -> torch.Tensor:
    """P (d_t × d_s) with P[hidden[j], j] = 1: puts each kept coordinate back at its teacher position.

    Its columns are orthonormal, so cos(P·s_i, P·s_j) = cos(s_i, s_j): at step 0 the loss sees
    exactly the student's own embedding geometry, and P·h_s ≈ h_t up to the dropped low-energy dims.
    """
    projection = torch.zeros(teacher_width, len(narrowing.hidden))
    projection[list(narrowing.hidden), range(len(narrowing.hidden))] = 1.0
    return projection


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

    from distilkit.embeddings import encode

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


def hidden_energy(
    teacher: nn.Module, tokenizer, texts: list[str], max_len: int = 128, batch_size: int = 32
) -> torch.Tensor:
    """Mean squared activation of each hidden dim over the sample's tokens, all hidden states: (d_t,)."""
    from distilkit.models.teacher import encoder_of

    encoder = encoder_of(teacher).eval()
    total, count = torch.zeros(hidden_size(teacher.config), dtype=torch.float64), 0
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            inputs = tokenizer(texts[start : start + batch_size], padding=True, truncation=True, max_length=max_len,
                               return_tensors="pt")  # fmt: skip
            mask = inputs["attention_mask"].bool()
            out = encoder(**inputs, output_hidden_states=True)
            for states in out.hidden_states:
                total += states[mask].double().pow(2).sum(0)
                count += int(mask.sum())
    return (total / max(count, 1)).float()


# ---------------------------------------------------------------- init-student
@dataclass(frozen=True)
class InitStudentConfig:
    teacher: str
    out: str
    layers: str | None = None  # e.g. "0,2,4,7,9,11", or "auto" (chosen by a probe); default: evenly spread
    num_layers: int | None = None  # default: half the teacher's layers (DistilBERT)
    hidden_size: int | None = None  # narrower than the teacher (e.g. 384 → 256); default: the teacher's
    num_heads: int | None = None  # default: hidden_size / the teacher's head size (whole heads are kept)
    probe_text: str | None = None  # text for --layers auto and --hidden-size; default: the shipped demo corpus
    probe_samples: int = 512  # lines sampled from the probe text (20 candidates × 512 lines: ~1 CPU-minute)
    probe_max_len: int = 128  # tokens per probe line
    max_candidates: int = 64  # try every layer subset up to this many, else hill-climb from the even spread
    seed: int = 0  # which probe lines are sampled
    overwrite: bool = False

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
    from distilkit.data.prepare import demo_corpus_path
    from distilkit.embeddings import read_lines

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
    needs_text = config.auto_layers or config.hidden_size not in (None, hidden_size(teacher.config))
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
    if config.hidden_size not in (None, hidden_size(teacher.config)):
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
            write_sentence_files(tmp, spec, hidden_size(student.config), student.config.max_position_embeddings,
                                 teacher_path)  # fmt: skip
        if narrowing is not None:
            projection = selection_projection(narrowing, hidden_size(teacher.config))
            save_file({"weight": projection}, str(tmp / PROJECTION_FILE))
    return InitStudentResult(Path(config.out), layers, hidden_size(student.config), probe)
