"""Set-up for a distillation run: load and check the models, resolve the objective, own the output folder."""

from __future__ import annotations

import logging
import math
import platform
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from distilkit.data.masking import mask_token_id
from distilkit.errors import ConfigError, ModelError
from distilkit.io import atomic_dir, write_json
from distilkit.models.sentence import read_sentence_spec, write_sentence_files
from distilkit.models.student import LAYERS_CONFIG_KEY, PROJECTION_FILE, spread_layers
from distilkit.models.teacher import (
    hidden_size,
    load_model,
    load_tokenizer,
    max_positions,
    mlm_head_of,
    num_layers,
    resolve_model_path,
)
from distilkit.runtime import Runtime
from distilkit.train.loop import Trained
from distilkit.train.objective import Objective, attention_heads, parse_layer_pairs

if TYPE_CHECKING:
    from distilkit.train.config import DistillConfig

log = logging.getLogger(__name__)

RUN_ARTIFACTS = ("checkpoints", "metrics.jsonl", "tb", "student", "config.json")
MAX_RELATION_HEADS = 48  # MiniLMv2 §4: 48 relation heads for base-size teachers (64 for large ones)


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
    attentions = config.schedules()["attention"].bounds()[1] > 0  # eager attention only when its maps are needed
    teacher = load_model(config.teacher, attentions=attentions)
    student = load_model(config.student, attentions=attentions)
    return teacher, student


def resolve_objective(config: DistillConfig, teacher: nn.Module, student: nn.Module) -> tuple[Objective, list[str]]:
    """Term weights, layer pairs, and notes on what was switched off and why."""
    notes = []
    sentence = None
    schedules = config.schedules()
    layer_terms = ("hidden", "attention", "value_relation", "relation")
    if config.objective == "embedding":
        weights = {name: schedules[name] for name in ("emb_mse", "emb_cos", "emb_sim", *layer_terms)}
        sentence = read_sentence_spec(resolve_model_path(config.teacher))
        if not sentence.from_folder:
            notes.append(
                "the teacher is not a sentence-transformers folder (no modules.json): its sentence embeddings are "
                "taken as mean pooling + L2 normalisation"
            )
    else:
        weights = {name: schedules[name] for name in ("kl", "mlm", "cos", *layer_terms)}
    wants_mlm = any(name in weights and weights[name].bounds()[1] > 0 for name in ("kl", "mlm"))
    if wants_mlm and mlm_head_of(teacher) is None:
        del weights["kl"], weights["mlm"]
        notes.append(
            "the teacher has no masked-LM head: the soft-target KL and MLM terms are off — distilling through "
            "hidden states and attentions only, on unmasked text"
        )
    elif wants_mlm and mlm_head_of(student) is None:
        raise ModelError(
            "the student has no masked-LM head but the teacher has one — build it with `distilkit init-student` "
            "from this teacher, or set --alpha-kl 0 --alpha-mlm 0"
        )
    if not any(w.bounds()[1] > 0 for w in weights.values()):
        raise ConfigError(
            "nothing to distil: the teacher has no MLM head and --alpha-cos, --alpha-hidden, --alpha-attention, "
            "--alpha-value-relation and --alpha-relation are 0"
        )
    n_student, n_teacher = num_layers(student.config), num_layers(teacher.config)
    hidden_pairs = parse_layer_pairs(config.layer_map, "--layer-map")
    if hidden_pairs is None:
        source = getattr(student.config, LAYERS_CONFIG_KEY, None) or spread_layers(n_teacher, n_student)
        hidden_pairs = [(j + 1, t + 1) for j, t in enumerate(source)]
    attention_pairs = parse_layer_pairs(config.attention_map, "--attention-map") or [(n_student, n_teacher)]
    relation_pairs = parse_layer_pairs(config.relation_map, "--relation-map") or [(n_student, n_teacher)]
    for s, t in hidden_pairs:
        if not (0 <= s <= n_student and 0 <= t <= n_teacher):
            raise ConfigError(
                f"--layer-map pair {s}:{t} is out of range (student 0..{n_student}, teacher 0..{n_teacher})"
            )
    for flag, pairs in (("--attention-map", attention_pairs), ("--relation-map", relation_pairs)):
        for s, t in pairs:
            if not (1 <= s <= n_student and 1 <= t <= n_teacher):
                raise ConfigError(
                    f"{flag} pair {s}:{t} is out of range (student 1..{n_student}, teacher 1..{n_teacher})"
                )
    widths = (hidden_size(student.config), hidden_size(teacher.config))
    objective = Objective(
        weights, schedules["temperature"], hidden_pairs, attention_pairs, config.objective, sentence,
        relation_pairs, relation_heads(config.relation_heads, widths),
    )  # fmt: skip
    return objective, notes


def relation_heads(requested: int | None, widths: tuple[int, int]) -> int:
    """MiniLMv2's relation head count for student and teacher widths: `requested`, which must divide both, or by
    default the largest count up to MAX_RELATION_HEADS that does (48 for 768- and 384-wide models)."""
    common = math.gcd(*widths)
    if requested is None:
        return max(count for count in range(1, MAX_RELATION_HEADS + 1) if common % count == 0)
    if common % requested:
        raise ConfigError(
            f"--relation-heads {requested} must divide both hidden sizes (student {widths[0]}, teacher {widths[1]}) "
            f"— pick a divisor of {common}"
        )
    return requested


def check_compatible(teacher: nn.Module, student: nn.Module, meta: dict, objective: Objective) -> None:
    """Refuse, before any training, a pair the loss cannot compare."""
    if objective.needs_masking:
        mask_token_id(meta)  # masked-LM distillation needs the tokenizer's mask token (issue #18)
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
    # Widths may differ: cosine and hidden-state terms go through the loss projection (load_projection), the
    # relation terms compare L × L matrices. MiniLM v1's terms pair head h with head h: equal head counts only.
    heads = attention_heads(teacher.config), attention_heads(student.config)
    for name, flag in (("attention", "--alpha-attention"), ("value_relation", "--alpha-value-relation")):
        if objective.active(name) and heads[0] != heads[1]:
            raise ConfigError(
                f"{flag} (MiniLM) pairs attention heads one to one, but the teacher has {heads[0]} and the student "
                f"{heads[1]} — use --alpha-relation (MiniLMv2 relations: any head counts) instead"
            )


def load_projection(config: Any, teacher: nn.Module, student: nn.Module) -> nn.Linear | None:
    """The loss projection P (d_s → d_t) of a student narrower than its teacher, from the folder `config.student`.

    None when the widths are equal. ``init-student --hidden-size`` writes P (see
    ``distilkit.models.student.selection_projection``); distill and task-distill train it with the student
    (TinyBERT's W_h), for every term that compares hidden states.
    """
    d_teacher, d_student = hidden_size(teacher.config), hidden_size(student.config)
    if d_teacher == d_student:
        return None
    path = Path(resolve_model_path(config.student)) / PROJECTION_FILE
    if not path.is_file():
        raise ModelError(
            f"the student's hidden size ({d_student}) differs from the teacher's ({d_teacher}) and it has no "
            f"{PROJECTION_FILE} to project into the teacher's width — build it with `distilkit init-student "
            "--hidden-size`, or train without --alpha-cos/--alpha-hidden (the relation terms need no projection)"
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
            "temperature": str(objective.temperature),
            "hidden_pairs": objective.hidden_pairs if objective.active("hidden") else [],
            "attention_pairs": objective.attention_pairs if objective.active("attention") else [],
            "relation_pairs": objective.relation_pairs if objective.needs_qkv else [],
            "relation_heads": objective.relation_heads if objective.active("relation") else None,
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
    student's trained loss projection is no part of the model: its weights hold the student alone, and P is
    kept beside them in its own file (which transformers ignores), for a later distill or task-distill.
    """
    try:
        tokenizer = load_tokenizer(config.student)
    except ModelError:
        tokenizer = load_tokenizer(config.teacher)
    with atomic_dir(student_dir, overwrite=True) as tmp:
        student.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if objective is not None and objective.sentence is not None:
            positions = max_positions(student.config)  # RoBERTa family: fewer than its position table
            teacher_dir = resolve_model_path(config.teacher)
            write_sentence_files(tmp, objective.sentence, hidden_size(student.config), positions, teacher_dir)
        if projection is not None:
            from safetensors.torch import save_file

            save_file({"weight": projection.weight.detach().cpu().contiguous()}, str(tmp / PROJECTION_FILE))


@dataclass
class DistillResult:
    out: Path
    student_dir: Path
    steps: int
    skipped_steps: int
    stopped_early: bool
    final_loss: float | None
    terms: list[str]


def finish(
    config: DistillConfig, runtime: Runtime, emit: Callable[[dict], None], trained: Trained, student: nn.Module,
    objective: Objective, projection: nn.Linear | None, terms: list[str],
) -> DistillResult:  # fmt: skip
    """Save the final student (the main process) and describe the run."""
    student_dir = Path(config.out) / "student"
    if runtime.is_main:
        save_student(student, config, student_dir, objective, projection)
    runtime.barrier()
    emit({"event": "done", "step": trained.steps, "student": str(student_dir)})
    return DistillResult(
        out=Path(config.out),
        student_dir=student_dir,
        steps=trained.steps,
        skipped_steps=trained.skipped_steps,
        stopped_early=trained.stopped_early,
        final_loss=trained.last_record["loss"] if trained.last_record else None,
        terms=terms,
    )
