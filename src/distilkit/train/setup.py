"""Set-up for a distillation run: load and check the models, resolve the objective, own the output folder."""

from __future__ import annotations

import logging
import platform
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from distilkit.errors import ConfigError, ModelError
from distilkit.io import atomic_dir, atomic_write_text, read_jsonl, write_json
from distilkit.models.sentence import read_sentence_spec, write_sentence_files
from distilkit.models.student import LAYERS_CONFIG_KEY, PROJECTION_FILE, spread_layers
from distilkit.models.teacher import (
    hidden_size,
    load_model,
    load_tokenizer,
    mlm_head_of,
    num_layers,
    resolve_model_path,
)
from distilkit.train.objective import Objective, parse_layer_pairs

if TYPE_CHECKING:
    from distilkit.train.config import DistillConfig

log = logging.getLogger(__name__)

RUN_ARTIFACTS = ("checkpoints", "metrics.jsonl", "tb", "student", "config.json")


def versions() -> dict[str, str]:
    import torch
    import transformers

    import distilkit

    return {
        "distilkit": distilkit.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def load_models(config: DistillConfig) -> tuple[nn.Module, nn.Module]:
    attentions = config.alpha_attention > 0
    teacher = load_model(config.teacher, attentions=attentions)
    student = load_model(config.student, attentions=attentions)
    return teacher, student


def resolve_objective(config: DistillConfig, teacher: nn.Module, student: nn.Module) -> tuple[Objective, list[str]]:
    """Term weights, layer pairs, and notes on what was switched off and why."""
    notes = []
    sentence = None
    if config.objective == "embedding":
        weights = {
            "emb_mse": config.alpha_emb_mse,
            "emb_cos": config.alpha_emb_cos,
            "emb_sim": config.alpha_emb_sim,
            "hidden": config.alpha_hidden,
            "attention": config.alpha_attention,
        }
        sentence = read_sentence_spec(resolve_model_path(config.teacher))
        if not sentence.from_folder:
            notes.append(
                "the teacher is not a sentence-transformers folder (no modules.json): its sentence embeddings are "
                "taken as mean pooling + L2 normalisation"
            )
    else:
        weights = {
            "kl": config.alpha_ce,
            "mlm": config.alpha_mlm,
            "cos": config.alpha_cos,
            "hidden": config.alpha_hidden,
            "attention": config.alpha_attention,
        }
    wants_mlm = weights.get("kl", 0) > 0 or weights.get("mlm", 0) > 0
    if wants_mlm and mlm_head_of(teacher) is None:
        weights["kl"] = weights["mlm"] = 0.0
        notes.append(
            "the teacher has no masked-LM head: the soft-target KL and MLM terms are off — distilling through "
            "hidden states and attentions only, on unmasked text"
        )
    elif wants_mlm and mlm_head_of(student) is None:
        raise ModelError(
            "the student has no masked-LM head but the teacher has one — build it with `distilkit init-student` "
            "from this teacher, or set --alpha-ce 0 --alpha-mlm 0"
        )
    if not any(w > 0 for w in weights.values()):
        raise ConfigError(
            "nothing to distil: the teacher has no MLM head and --alpha-cos, --alpha-hidden and --alpha-attention are 0"
        )
    n_student, n_teacher = num_layers(student.config), num_layers(teacher.config)
    hidden_pairs = parse_layer_pairs(config.layer_map, "--layer-map")
    if hidden_pairs is None:
        source = getattr(student.config, LAYERS_CONFIG_KEY, None) or spread_layers(n_teacher, n_student)
        hidden_pairs = [(j + 1, t + 1) for j, t in enumerate(source)]
    attention_pairs = parse_layer_pairs(config.attention_map, "--attention-map") or [(n_student, n_teacher)]
    for s, t in hidden_pairs:
        if not (0 <= s <= n_student and 0 <= t <= n_teacher):
            raise ConfigError(
                f"--layer-map pair {s}:{t} is out of range (student 0..{n_student}, teacher 0..{n_teacher})"
            )
    for s, t in attention_pairs:
        if not (1 <= s <= n_student and 1 <= t <= n_teacher):
            raise ConfigError(
                f"--attention-map pair {s}:{t} is out of range (student 1..{n_student}, teacher 1..{n_teacher})"
            )
    objective = Objective(weights, config.temperature, hidden_pairs, attention_pairs, config.objective, sentence)
    return objective, notes


def check_compatible(teacher: nn.Module, student: nn.Module, meta: dict, objective: Objective) -> None:
    """Refuse, before any training, a pair the loss cannot compare."""
    t_vocab, s_vocab = teacher.config.vocab_size, student.config.vocab_size
    if meta["vocab_size"] > min(t_vocab, s_vocab):
        raise ModelError(
            f"the data was tokenized with a vocabulary of {meta['vocab_size']} but the teacher has {t_vocab} and the "
            f"student {s_vocab} embeddings — prepare the data with the teacher's tokenizer"
        )
    if objective.active("kl") and t_vocab != s_vocab:
        raise ModelError(
            f"teacher vocabulary ({t_vocab}) and student vocabulary ({s_vocab}) differ — the KL term needs them equal"
        )
    narrower = hidden_size(teacher.config) != hidden_size(student.config)
    if (objective.active("cos") or objective.active("hidden")) and narrower and objective.kind != "embedding":
        raise ModelError(
            f"teacher hidden size {hidden_size(teacher.config)} and student hidden size {hidden_size(student.config)} "
            "differ — the cosine and hidden-state terms need them equal"
        )
    if objective.active("attention"):
        heads = [
            getattr(m.config, "num_attention_heads", getattr(m.config, "n_heads", None)) for m in (teacher, student)
        ]
        if heads[0] != heads[1]:
            raise ModelError(
                f"teacher ({heads[0]}) and student ({heads[1]}) attention heads differ — "
                "the attention term needs them equal"
            )


def load_projection(config: DistillConfig, teacher: nn.Module, student: nn.Module) -> nn.Linear | None:
    """The loss projection P (d_s → d_t) of a student narrower than its teacher, from the student folder.

    None when the widths are equal. ``init-student --hidden-size`` writes P (see
    ``distilkit.models.student.selection_projection``); distill trains it with the student.
    """
    d_teacher, d_student = hidden_size(teacher.config), hidden_size(student.config)
    if d_teacher == d_student:
        return None
    path = Path(resolve_model_path(config.student)) / PROJECTION_FILE
    if not path.is_file():
        raise ModelError(
            f"the student is narrower than the teacher ({d_student} vs {d_teacher}) but has no {PROJECTION_FILE} — "
            "build it with `distilkit init-student --hidden-size`"
        )
    from safetensors.torch import load_file

    weight = load_file(str(path)).get("weight")
    if weight is None or tuple(weight.shape) != (d_teacher, d_student):
        raise ModelError(f"{path} must hold 'weight' of shape ({d_teacher}, {d_student})")
    projection = nn.Linear(d_student, d_teacher, bias=False)
    with torch.no_grad():
        projection.weight.copy_(weight)
    return projection


def prepare_out_dir(out: Path, config: DistillConfig, objective: Objective, resume: bool) -> None:
    """Check the output folder is ours to write, clear it on --overwrite, and record the resolved config."""
    existing = [p for p in out.iterdir()] if out.is_dir() else []
    if existing and not resume:
        if not config.overwrite:
            raise ConfigError(f"{out} is not empty — pass --resume to continue that run or --overwrite to start again")
        for name in RUN_ARTIFACTS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {out}: {exc.strerror or exc}") from None
    record = {
        "command": "distill",
        "config": asdict(config),
        "objective": {
            "kind": objective.kind,
            "pooling": list(objective.pooling) if objective.pooling else None,
            "weights": objective.active_weights(),
            "temperature": objective.temperature,
            "hidden_pairs": objective.hidden_pairs if objective.active("hidden") else [],
            "attention_pairs": objective.attention_pairs if objective.active("attention") else [],
        },
        "versions": versions(),
    }
    write_json(out / "config.json", record)


def save_student(
    student: nn.Module,
    config: DistillConfig,
    student_dir: Path,
    objective: Objective | None = None,
    projection: nn.Linear | None = None,
) -> None:
    """The final, weights-only export: save_pretrained + tokenizer, loadable by plain transformers.

    With the embedding objective the folder is a sentence-transformers folder too (the teacher's
    pooling files, the student's width): ``SentenceTransformer(student_dir)`` loads it. A narrower
    student's trained loss projection is kept beside it, for a later run to continue with.
    """
    try:
        tokenizer = load_tokenizer(config.student)
    except ModelError:
        tokenizer = load_tokenizer(config.teacher)
    with atomic_dir(student_dir, overwrite=True) as tmp:
        student.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if objective is not None and objective.sentence is not None:
            positions = student.config.max_position_embeddings
            teacher_dir = resolve_model_path(config.teacher)
            write_sentence_files(tmp, objective.sentence, hidden_size(student.config), positions, teacher_dir)
        if projection is not None:
            from safetensors.torch import save_file

            save_file({"weight": projection.weight.detach().cpu().contiguous()}, str(tmp / PROJECTION_FILE))


def trim_log(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint we resume from (they will be written again)."""
    import json

    kept = [r for r in read_jsonl(path) if r.get("step", 0) <= step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
