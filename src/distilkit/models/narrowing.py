"""A narrower student: which teacher dimensions it keeps and the loss projection back to the teacher's width.

Weight selection (Xu et al. 2023, "Initializing Models with Larger Ones"): the student's tensors are the teacher's,
sliced to the hidden dims with the most energy and, per layer, the strongest whole attention heads.
``student.build_student`` applies a :class:`Narrowing`; this module plans one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from distilkit.errors import ConfigError, ModelError
from distilkit.models.teacher import ARCHS, arch_of, encoder_of, hidden_size, layer_index

HEADS_ATTR = {model_type: arch.heads_attr for model_type, arch in ARCHS.items()}

# Which width each axis of a tensor indexes: "h" the hidden size (residual stream), "a" the attention
# inner size (heads × head size), None neither (vocabulary, positions, FFN inner size). First match wins.
WIDTH_AXES = [
    (r"(query|key|value|q_lin|k_lin|v_lin)\.weight$", ("a", "h")),
    (r"(query|key|value|q_lin|k_lin|v_lin)\.bias$", ("a",)),
    (r"(attention\.output\.dense|out_lin)\.weight$", ("h", "a")),
    (r"(intermediate\.dense|ffns?(\.\d+)?\.lin1)\.weight$", (None, "h")),
    (r"(intermediate\.dense|ffns?(\.\d+)?\.lin1)\.bias$", (None,)),
    (r"(output\.dense|ffns?(\.\d+)?\.lin2)\.weight$", ("h", None)),
    (r"(pooler\.dense|transform\.dense|lm_head\.dense|vocab_transform)\.weight$", ("h", "h")),
    (r"(_embeddings|\bembeddings|decoder|vocab_projector|pred_layer\.proj)\.weight$", (None, "h")),
    (r"(decoder|vocab_projector|pred_layer\.proj)\.bias$|(predictions|lm_head)\.bias$", (None,)),
    (r"\.(weight|bias)$", ("h",)),  # LayerNorms and the biases of hidden-sized outputs
]


@dataclass(frozen=True)
class Narrowing:
    """The teacher dimensions a narrower student keeps: residual-stream dims, and attention dims per layer."""

    hidden: tuple[int, ...]  # ascending teacher hidden dims, one per student hidden dim
    num_heads: int
    attention: tuple[tuple[int, ...], ...]  # per student layer: teacher attention dims (whole heads, head-major)


def _width_axes(key: str) -> tuple[str | None, ...]:
    return next(axes for pattern, axes in WIDTH_AXES if re.search(pattern, key))


def narrow_tensor(key: str, tensor: torch.Tensor, narrowing: Narrowing, layer: int | None) -> torch.Tensor:
    axes = _width_axes(key)
    if len(axes) != tensor.ndim:
        raise ModelError(f"cannot narrow teacher tensor '{key}' of shape {tuple(tensor.shape)}: unknown layout")
    for dim, axis in enumerate(axes):
        if axis == "h":
            tensor = tensor.index_select(dim, torch.tensor(narrowing.hidden))
        elif axis == "a":
            tensor = tensor.index_select(dim, torch.tensor(narrowing.attention[layer]))
    return tensor


def check_narrowable(config) -> None:
    """Refuse a narrower student of an architecture whose feed-forward width follows the hidden size."""
    if not arch_of(config).ffn_from_config:
        raise ConfigError(
            f"--hidden-size: {config.model_type} fixes its feed-forward width at 4 × the hidden size, so a narrower "
            "student cannot hold the teacher's feed-forward layers — keep the teacher's width (drop --hidden-size)"
        )


def plan_narrowing(
    teacher: nn.Module, layers: list[int], hidden_energy: torch.Tensor, width: int, num_heads: int | None
) -> Narrowing:
    """Keep the ``width`` hidden dims with the most energy (mean squared activation over a text sample, all
    layers) and, per layer, the attention heads with the largest value→output weights.

    Dropping the lowest-energy coordinates loses the least of the teacher's hidden states among all
    choices of ``width`` coordinates; whole heads keep the teacher's head size (and attention scale).
    """
    check_narrowable(teacher.config)
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


def hidden_energy(
    teacher: nn.Module, tokenizer, texts: list[str], max_len: int = 128, batch_size: int = 32
) -> torch.Tensor:
    """Mean squared activation of each hidden dim over the sample's tokens, all hidden states: (d_t,)."""
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
