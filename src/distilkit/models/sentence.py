"""Sentence-transformers folders: read how one pools and normalises, pool the same way, and write one.

A sentence-transformers (ST) model is a transformers model at the folder's root plus a few JSON
files: ``modules.json`` (Transformer → Pooling → optional Normalize), ``1_Pooling/config.json``
(which pooling: mean, cls, max, ...), ``sentence_bert_config.json`` (``max_seq_length``,
``do_lower_case``). distilkit encodes with the same recipe itself, so distillation never needs the
sentence-transformers package; the tests compare against ``SentenceTransformer(dir).encode``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from distilkit.errors import ModelError
from distilkit.io import read_json, write_json
from distilkit.models.teacher import encoder_of, max_positions, tokenizer_inputs

# Order of concatenation when several modes are on (sentence-transformers' legacy config order).
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
MODULE_KINDS = {"Transformer": "transformer", "Pooling": "pooling", "Normalize": "normalize"}
ST_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")
POOLING_DIR = "1_Pooling"


@dataclass(frozen=True)
class SentenceSpec:
    """How token states become a sentence embedding: pooling mode(s), L2 normalisation, input length.

    The default — mean over non-pad tokens, then L2 normalisation — is all-MiniLM-L6-v2's recipe and
    what distilkit uses for a bare encoder that is not a sentence-transformers folder.
    """

    pooling: tuple[str, ...] = ("mean",)
    normalize: bool = True
    max_seq_length: int | None = None  # None: the tokenizer's limit, capped at the position embeddings
    do_lower_case: bool = False
    from_folder: bool = False  # True when read from a sentence-transformers folder

    def max_length(self, model_config, tokenizer) -> int:
        """The truncation length sentence-transformers would use for this model and tokenizer."""
        if self.max_seq_length is not None:
            return int(self.max_seq_length)
        limit = int(getattr(tokenizer, "model_max_length", 512) or 512)
        positions = max_positions(model_config) if getattr(model_config, "max_position_embeddings", 0) else 0
        return min(limit, positions) if positions > 0 else limit


def is_sentence_transformer(path: str | Path) -> bool:
    return (Path(path) / "modules.json").is_file()


def _pooling_modes(config: dict, where: Path) -> tuple[str, ...]:
    if "pooling_mode" in config:  # sentence-transformers ≥ 5 writes one key, a mode or a list of modes
        raw = config["pooling_mode"]
        modes = (raw,) if isinstance(raw, str) else tuple(raw)
    else:
        modes = tuple(mode for key, mode in LEGACY_POOLING_KEYS.items() if config.get(key))
    modes = modes or ("mean",)  # what sentence-transformers falls back to
    unknown = [m for m in modes if m not in POOLING_MODES]
    if unknown:
        raise ModelError(f"{where}: unknown pooling mode {unknown[0]!r} — supported: {', '.join(POOLING_MODES)}")
    return modes


def read_sentence_spec(path: str | Path) -> SentenceSpec:
    """The pooling recipe of a sentence-transformers folder, or the default for a bare encoder."""
    path = Path(path)
    if not is_sentence_transformer(path):
        return SentenceSpec()
    modules = read_json(path / "modules.json", "sentence-transformers modules.json")
    if not isinstance(modules, list):
        raise ModelError(f"{path / 'modules.json'} is not a list of modules")
    kinds = []
    pooling: tuple[str, ...] = ("mean",)
    for module in sorted(modules, key=lambda m: int(m.get("idx", 0))):
        kind = MODULE_KINDS.get(str(module.get("type", "")).rsplit(".", 1)[-1])
        if kind is None:
            raise ModelError(
                f"{path}: sentence-transformers module {module.get('type')!r} is not supported — distilkit reads "
                "Transformer, Pooling and Normalize modules"
            )
        if kind == "transformer" and module.get("path", "") not in ("", "."):
            raise ModelError(
                f"{path}: the transformer lives in the subfolder {module['path']!r} — pass that folder as the model"
            )
        if kind == "pooling":
            config_path = path / module.get("path", POOLING_DIR) / "config.json"
            pooling = _pooling_modes(read_json(config_path, "pooling config"), config_path)
        kinds.append(kind)
    if kinds[:1] != ["transformer"]:
        raise ModelError(f"{path}: modules.json must start with a Transformer module")
    config = {}
    if (path / "sentence_bert_config.json").is_file():
        config = read_json(path / "sentence_bert_config.json", "sentence_bert_config.json")
    return SentenceSpec(
        pooling=pooling,
        normalize="normalize" in kinds,
        max_seq_length=config.get("max_seq_length"),
        do_lower_case=bool(config.get("do_lower_case", False)),
        from_folder=True,
    )


def pool(token_states: torch.Tensor, attention_mask: torch.Tensor, modes: tuple[str, ...]) -> torch.Tensor:
    """Sentence vectors from token states, as sentence-transformers' ``Pooling`` computes them (right padding).

    token_states: (B, L, d); attention_mask: (B, L), 1 for real tokens. Returns (B, d · len(modes)),
    the modes concatenated in the given order. Mean-type modes accumulate in float32.
    """
    mask = attention_mask.unsqueeze(-1).to(token_states.dtype)
    counts = mask.sum(1, dtype=torch.float32).clamp_min(1e-9)
    out = []
    for mode in modes:
        if mode == "cls":
            out.append(token_states[:, 0])
        elif mode == "max":
            out.append(token_states.masked_fill(mask == 0, float("-inf")).max(1).values)
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            total = (token_states * mask).sum(1, dtype=torch.float32)
            out.append((total / (counts if mode == "mean" else counts.sqrt())).to(token_states.dtype))
        elif mode == "weightedmean":
            positions = torch.arange(1, token_states.shape[1] + 1, device=token_states.device, dtype=torch.float32)
            weights = mask.float() * positions.view(1, -1, 1)
            out.append(((token_states * weights).sum(1) / weights.sum(1).clamp_min(1e-9)).to(token_states.dtype))
        elif mode == "lasttoken":
            last = attention_mask.sum(1).clamp_min(1) - 1
            out.append(token_states[torch.arange(len(last), device=token_states.device), last])
        else:
            raise ValueError(f"unknown pooling mode {mode!r}")
    return torch.cat(out, dim=-1)


def embed(pooled: torch.Tensor, spec: SentenceSpec) -> torch.Tensor:
    """The final sentence embedding from pooled vectors: L2-normalised when the spec says so."""
    return F.normalize(pooled, dim=-1) if spec.normalize else pooled


def _teacher_json(teacher_dir: Path | None, name: str) -> dict | list | None:
    if teacher_dir is None or not (teacher_dir / name).is_file():
        return None
    try:
        return json.loads((teacher_dir / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_sentence_files(
    directory: Path, spec: SentenceSpec, dimension: int, max_positions: int, teacher_dir: str | Path | None = None
) -> None:
    """Make a saved transformers folder a sentence-transformers folder too (same weights at the root).

    Mirrors the teacher's own files when it is a sentence-transformers folder: its modules.json,
    its pooling config with the student's ``dimension``, its sentence_bert_config (``max_seq_length``
    capped at the student's ``max_positions``) and config_sentence_transformers.json.
    """
    teacher = Path(teacher_dir) if teacher_dir is not None and is_sentence_transformer(teacher_dir) else None
    modules = _teacher_json(teacher, "modules.json")
    if not isinstance(modules, list):
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": POOLING_DIR, "type": "sentence_transformers.models.Pooling"},
        ]
        if spec.normalize:
            modules.append(
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
            )
    pooling_path = next(
        (m.get("path", POOLING_DIR) for m in modules if str(m.get("type", "")).endswith("Pooling")), POOLING_DIR
    )
    pooling = _teacher_json(teacher, f"{pooling_path}/config.json")
    if not isinstance(pooling, dict):
        pooling = {key: mode in spec.pooling for key, mode in LEGACY_POOLING_KEYS.items()}
    dimension_key = "embedding_dimension" if "embedding_dimension" in pooling else "word_embedding_dimension"
    pooling = {**pooling, dimension_key: dimension}
    sentence_config = _teacher_json(teacher, "sentence_bert_config.json")
    if not isinstance(sentence_config, dict):
        sentence_config = {"do_lower_case": spec.do_lower_case}
    length = spec.max_seq_length or max_positions
    sentence_config = {**sentence_config, "max_seq_length": min(int(length), max_positions)}
    st_config = _teacher_json(teacher, "config_sentence_transformers.json")
    if not isinstance(st_config, dict):
        st_config = {"similarity_fn_name": "cosine"}
    write_json(directory / "modules.json", modules)
    write_json(directory / pooling_path / "config.json", pooling)
    write_json(directory / "sentence_bert_config.json", sentence_config)
    write_json(directory / "config_sentence_transformers.json", st_config)


def copy_sentence_files(source: str | Path, target: str | Path) -> list[str]:
    """Copy what makes ``source`` a sentence-transformers folder into ``target`` (which holds the same model):
    modules.json, sentence_bert_config.json, config_sentence_transformers.json and every module's folder
    (1_Pooling/, 2_Normalize/, ...). Returns the names copied; none when ``source`` is a bare encoder."""
    source, target = Path(source), Path(target)
    if not is_sentence_transformer(source):
        return []
    modules = read_json(source / "modules.json", "sentence-transformers modules.json")
    folders = {str(m.get("path", "")) for m in modules if isinstance(m, dict)} if isinstance(modules, list) else set()
    names = [*ST_FILES, *sorted(folders - {"", "."})]
    copied = []
    for name in names:
        path = source / name
        if source.resolve() not in path.resolve().parents:  # a module path may not leave the folder
            continue
        if path.is_dir():
            shutil.copytree(path, target / name, dirs_exist_ok=True)
        elif path.is_file():
            shutil.copy2(path, target / name)
        else:
            continue
        copied.append(name)
    return copied


@torch.inference_mode()
def encode(
    model: nn.Module,
    tokenizer,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    max_len: int | None = None,
    spec: SentenceSpec | None = None,
) -> np.ndarray:
    """Sentence embeddings as sentence-transformers computes them, (n_texts, dim) float32.

    ``spec`` (default: mean pooling + L2 normalisation) says how to pool; ``max_len`` (default: the
    spec's ``max_seq_length``, else the tokenizer's limit) is where inputs are truncated.
    """
    spec = spec or SentenceSpec()
    encoder = encoder_of(model).eval()
    device = next(encoder.parameters()).device
    max_len = max_len or spec.max_length(encoder.config, tokenizer)
    # Sort by length so each batch pads little; restore the caller's order at the end.
    order = np.argsort([-len(t) for t in texts], kind="stable")
    chunks = []
    for start in range(0, len(texts), batch_size):
        batch = [texts[i] for i in order[start : start + batch_size]]
        if spec.do_lower_case:
            batch = [text.lower() for text in batch]
        inputs = tokenizer(batch, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        inputs = {k: v.to(device) for k, v in inputs.items() if k in tokenizer_inputs(encoder.config)}
        hidden = encoder(**inputs).last_hidden_state
        chunks.append(embed(pool(hidden, inputs["attention_mask"], spec.pooling), spec).float().cpu().numpy())
    width = encoder.config.hidden_size * len(spec.pooling) if not chunks else chunks[0].shape[1]
    embeddings = np.concatenate(chunks) if chunks else np.zeros((0, width), np.float32)
    restored = np.empty_like(embeddings)
    restored[order] = embeddings
    return restored


@dataclass
class SentenceModel:
    """A model folder loaded for sentence embeddings: the model, its tokenizer and its pooling recipe."""

    path: str
    model: nn.Module
    tokenizer: object
    spec: SentenceSpec

    def encode(self, texts: Sequence[str], batch_size: int = 64, max_len: int | None = None) -> np.ndarray:
        return encode(self.model, self.tokenizer, texts, batch_size=batch_size, max_len=max_len, spec=self.spec)
