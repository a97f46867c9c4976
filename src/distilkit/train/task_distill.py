"""Task-specific distillation: train a student's task head and encoder on a task against a fine-tuned teacher's
logits (soft targets at temperature T) plus the gold labels, optionally matching hidden states (through a learned
projection for a narrower student), and optionally on unlabeled in-domain text (--unlabeled) that only the
teacher's soft targets label. Each weight and the temperature may follow a schedule over the run.

The teacher's logits on the fixed training set are computed once per feature — the labelled ones the first time
they are trained on, the unlabeled text up front — into a memory-mapped store on disk keyed by the teacher's
weights and the features (logit_cache.py), and reused every epoch and by any later run on the same teacher and
data: that is where a CPU run saves most of its time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from distilkit import losses
from distilkit.data.decontam import Exclusion, build_exclusion
from distilkit.errors import ConfigError, ModelError
from distilkit.models.student import LAYERS_CONFIG_KEY, spread_layers
from distilkit.models.teacher import load_config, load_tokenizer, num_layers
from distilkit.runtime import seed_everything, setup_runtime
from distilkit.tasks.data import TaskData, is_unlabeled, with_unlabeled
from distilkit.tasks.features import IGNORE_INDEX
from distilkit.tasks.heads import build_head_model, forward, head_logits, load_head_model, read_task_info, task_loss
from distilkit.tasks.readers.splits import HUB_PREFIX
from distilkit.tasks.readers.squad import squad_article_split
from distilkit.tasks.readers.unlabeled import read_unlabeled
from distilkit.tasks.registry import TaskSpec
from distilkit.train.augment import augment
from distilkit.train.config import Scheduled, read_schedules
from distilkit.train.finetune import (
    TaskResult,
    TaskTrainConfig,
    check_out,
    data_message,
    evaluate_and_save,
    prepare_data,
    squad_split_info,
)
from distilkit.train.logit_cache import NEG_LOGIT, default_cache_dir, effective_top_k, open_teacher_cache
from distilkit.train.objective import parse_layer_pairs
from distilkit.train.schedule import Schedule
from distilkit.train.setup import load_projection
from distilkit.train.task_recipe import fit

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TaskDistillConfig(TaskTrainConfig):
    teacher: str  # fine-tuned head model (distilkit finetune output or any matching transformers head model)
    student: str  # base encoder (init-student / distill output): its task head is built fresh
    # 0.5/0.5 and T=2: the defaults of HF's run_squad_w_distillation.py (DistilBERT's task distillation). Each
    # weight and the temperature: a number, or a schedule over the run ("4:1", "cosine:4:1"; train/schedule.py).
    alpha_kl: Scheduled = 0.5  # soft targets: KL·T² on the task logits (MSE to the teacher's score for STS-B)
    alpha_hard: Scheduled = 0.5  # gold labels: cross-entropy (MSE for STS-B)
    temperature: Scheduled = 2.0  # softmax temperature of the KL term
    # MSE between mapped hidden states (TinyBERT §3.1), through the student's loss projection W_h when it is
    # narrower (distilkit_projection.safetensors, trained with it, not saved); needs a live teacher pass.
    alpha_hidden: Scheduled = 0.0
    layer_map: str | None = None  # "s:t,..." hidden-state pairs; default: each student layer ↔ its source layer
    cache_dir: str | None = None  # teacher-logit stores; default $DISTILKIT_CACHE_DIR or ~/.cache/distilkit/…
    cache_top_k: int | None = None  # keep each row's K largest teacher logits only (sparse KD); None: all of them
    # Unlabeled in-domain text, labelled by the teacher's soft targets only (Tang et al. 2019; TinyBERT): .txt one
    # input per line (pair tasks: tab-separated), or .csv/.tsv/.jsonl/.parquet with a text column. Sequence tasks.
    unlabeled: str | None = None
    unlabeled_text_column: str | None = None  # its column(s) ("a,b" for a pair); default text/sentence/sentence1
    augment: int = 0  # perturbed copies of each training input, soft targets only (augment.py); sequence tasks
    # Evaluation data to keep out of --unlabeled and --augment rows (GLUE task dirs, files): a row containing one
    # of its texts or sharing an `exclude_ngram`-word run with one is dropped (data/decontam.py).
    exclude: tuple[str, ...] = ()
    exclude_ngram: int = 13  # GPT-3's decontamination n-gram

    def problems(self) -> list[str]:
        problems = super().problems()
        object.__setattr__(self, "exclude", tuple(str(path) for path in self.exclude or ()))
        problems += [f"--exclude path not found: {path}" for path in self.exclude if not Path(path).exists()]
        if self.exclude and not (self.unlabeled or self.augment):
            problems.append("--exclude filters --unlabeled and --augment rows: give one of them")
        schedules = read_schedules(self, (*LOSS_WEIGHTS, "temperature"), problems)
        if all(name in schedules and schedules[name].bounds()[1] == 0 for name in LOSS_WEIGHTS):
            problems.append("every loss weight is 0 — nothing to train")
        try:
            parse_layer_pairs(self.layer_map, "--layer-map")
        except ConfigError as error:
            problems.append(str(error))
        if self.cache_top_k is not None and self.cache_top_k < 2:
            problems.append("--cache-top-k must be ≥ 2 (one logit leaves no distribution to match)")
        if self.augment < 0:
            problems.append("--augment must be ≥ 0 (copies of each training input)")
        for flag, used in (("--unlabeled", self.unlabeled is not None), ("--augment", self.augment > 0)):
            if not used:
                continue
            if "alpha_kl" in schedules and schedules["alpha_kl"].bounds()[1] == 0:
                problems.append(f"{flag} needs --alpha-kl > 0: the teacher's soft targets are its only labels")
            try:
                kind = self.spec.kind
            except ConfigError:
                kind = None  # reported by TaskTrainConfig
            if kind in ("qa", "token-classification"):
                problems.append(f"{flag} supports sequence classification and regression tasks, not {self.task}")
        return problems

    def schedules(self) -> dict[str, Schedule]:
        """Each loss term's weight schedule (kl, hard, hidden) and the temperature's."""
        schedules = read_schedules(self, (*LOSS_WEIGHTS, "temperature"), [])
        return {name.removeprefix("alpha_"): schedule for name, schedule in schedules.items()}


LOSS_WEIGHTS = ("alpha_kl", "alpha_hard", "alpha_hidden")


def soft_loss(
    spec: TaskSpec,
    student: torch.Tensor,
    teacher: torch.Tensor,
    batch: dict,
    temperature: float,
    classes: torch.Tensor | None = None,
) -> torch.Tensor:
    """Soft-target term: KL·T² on class logits (per labelled token for NER; start and end position
    distributions averaged for QA, padding masked); MSE to the teacher's score for regression.

    With `classes` (a top-k cache: teacher (rows, K) holds each row's K largest logits, classes their class ids)
    the KL is between the teacher's and the student's softmax over those K classes only, both renormalised: the
    student's logits are gathered at the teacher's top-k classes (sparse KD; the other classes' probability is
    dropped from both sides rather than guessed)."""
    if spec.kind == "regression":
        return F.mse_loss(student.squeeze(-1).float(), teacher.squeeze(-1).float())
    if spec.kind == "qa":
        student = student.masked_fill(~batch["attention_mask"].bool().unsqueeze(-1), NEG_LOGIT)
        start = losses.soft_target_kl(student[..., 0], teacher[..., 0], temperature)
        return (start + losses.soft_target_kl(student[..., 1], teacher[..., 1], temperature)) / 2
    if spec.kind == "token-classification":
        student = student[batch["labels"] != IGNORE_INDEX]
    if classes is not None:
        student = student.gather(-1, classes)
    return losses.soft_target_kl(student, teacher, temperature)


def hard_loss(spec: TaskSpec, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Gold-label term. Sequence tasks: summed over the batch's labelled rows and divided by all its rows, so an
    unlabeled row (--unlabeled text: label IGNORE_INDEX, NaN score) adds nothing and a labelled one weighs what it
    would in an all-labelled batch — the per-example loss over the union, whose mean equals task_loss when every
    row is labelled. Token and QA tasks: task_loss."""
    if spec.kind not in ("classification", "regression"):
        return task_loss(spec, logits, batch)
    labels, rows = batch["labels"], logits.shape[0]
    if spec.kind == "classification":
        return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX, reduction="sum") / rows
    labelled = ~is_unlabeled(labels, spec.kind)
    errors = (logits.squeeze(-1).float() - labels.float().nan_to_num()).pow(2)
    return torch.where(labelled, errors, 0.0).sum() / rows


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


def training_set(
    config: TaskDistillConfig, train: TaskData, tokenizer: Any, max_len: int
) -> tuple[TaskData, list[TaskData], dict]:
    """(what the student trains on, the parts whose teacher logits are stored apart, counts): the labelled set
    alone, or the labelled features followed by the --unlabeled text and then the --augment copies of the training
    inputs (train.examples: the ones trained on), each without the rows --exclude finds contaminated."""
    exclusion = build_exclusion(config.exclude, config.exclude_ngram)
    unlabeled = (
        read_unlabeled(config.unlabeled, train.has_pair, config.unlabeled_text_column) if config.unlabeled else []
    )
    copies = list(augment(train.examples or [], config.augment, config.seed)) if config.augment > 0 else []
    if exclusion is not None:
        unlabeled = decontaminated(exclusion, str(config.unlabeled), unlabeled) if unlabeled else []
        copies = decontaminated(exclusion, "--augment", copies) if copies else []
    counts = {"unlabeled": len(unlabeled), "augmented": len(copies),
              "excluded": exclusion.record() if exclusion else None,
              "excluded_summary": exclusion.summary() if exclusion else None}  # fmt: skip
    if not unlabeled + copies:
        return train, [train], counts
    union, unlabeled_data = with_unlabeled(train, unlabeled + copies, tokenizer, max_len)
    return union, [train, unlabeled_data], counts


def decontaminated(exclusion: Exclusion, name: str, examples: list) -> list:
    """`examples` without the ones whose text or text pair `exclusion` finds contaminated (counted under `name`)."""
    keep = exclusion.filter(name, [example.text for example in examples], [example.text_pair for example in examples])
    return [example for example, kept in zip(examples, keep, strict=True) if kept]


def task_distill(config: TaskDistillConfig, callback: Callable[[dict], None] | None = None) -> TaskResult:
    """Distil fine-tuned `config.teacher` into `config.student` on `config.task`; saves like `finetune`."""
    emit = callback or (lambda event: None)
    started = time.monotonic()
    check_out(config)
    runtime = setup_runtime(config.device, config.precision)
    if runtime.distributed:  # the teacher-logit cache has one writer
        raise ConfigError("task-distill runs in one process — launch it without torchrun")
    teacher, teacher_spec = load_head_model(config.teacher, config.spec)
    teacher_tokenizer, tokenizer = load_tokenizer(config.teacher), load_tokenizer(config.student)
    check_pair(teacher_tokenizer, tokenizer, teacher, load_config(config.student))
    teacher_info = read_task_info(config.teacher) or {}
    heldout = None
    if teacher_spec.benchmark == "squad" and config.data and not config.data.startswith(HUB_PREFIX):
        split = teacher_info.get("squad_split")  # train on the teacher's articles: no held-out leakage
        heldout = split["heldout_titles"] if split else squad_article_split(
            teacher_spec, Path(config.data), config.squad_dev_fraction, config.seed)  # fmt: skip
    labels = list(teacher_spec.labels) if teacher_spec.labels_from_data else None  # NER tags, own classes
    train, eval_data = prepare_data(config, tokenizer, labels, heldout, keep_text=config.augment > 0)
    spec, max_len = train.spec, config.resolved_max_len(train.spec)
    fit_data, parts, counts = training_set(config, train, tokenizer, max_len)
    message = data_message(train, eval_data)
    if len(fit_data) > len(train):
        parts_text = [f"{counts['unlabeled']:,} unlabeled"] if config.unlabeled else []
        parts_text += [f"{counts['augmented']:,} augmented"] if config.augment else []
        message += f"; {' and '.join(parts_text)} inputs with the teacher's soft targets only"
    if counts["excluded_summary"]:
        message += "; " + counts["excluded_summary"]
    seed_everything(config.seed)  # the new head's init: --seed's, not the process's random start
    student = build_head_model(config.student, spec)
    schedules = config.schedules()
    weights = {name: w for name, w in schedules.items() if name != "temperature" and w.bounds()[1] > 0}
    pairs = hidden_pairs(config, student, teacher) if "hidden" in weights else []
    projection = load_projection(config, teacher, student) if pairs else None  # W_h of a narrower student
    emit({"event": "stage", "stage": "data", "message": message})
    pad_id = tokenizer.pad_token_id or 0
    teacher.to(runtime.device).eval().requires_grad_(False)
    cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    precision = str(runtime.amp_dtype).removeprefix("torch.") if runtime.amp_dtype else "fp32"
    cache = open_teacher_cache(teacher, config.teacher, fit_data, parts, pad_id, cache_dir, max_len,
                               config.cache_top_k, precision)  # fmt: skip
    del parts  # the stores keep what they need of the unlabeled features: their fingerprint and row layout
    for store in cache.stores:
        if store.discarded:
            emit({"event": "note", "message": f"discarded the teacher-logit cache {store.folder}: {store.discarded}"})
    if config.cache_top_k and effective_top_k(spec, config.cache_top_k) is None:
        emit({"event": "note", "message": f"--cache-top-k {config.cache_top_k} keeps every logit of {spec.name}"})

    def step_values(step: int, total_steps: int) -> dict:
        """The step's weights and temperature: applied by the loss, logged in train_log.jsonl."""
        values = {"weights": {name: w.value(step, total_steps) for name, w in weights.items()}}
        return values | ({"temperature": schedules["temperature"].value(step, total_steps)} if "kl" in weights else {})

    def hidden_term(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor) -> torch.Tensor:
        if projection is None:
            return losses.hidden_mse(student_hidden, teacher_hidden)
        return losses.projected_hidden_mse(student_hidden, teacher_hidden, projection.weight)

    def distillation_loss(model: nn.Module, batch: dict[str, torch.Tensor]):
        if pairs:  # hidden-state matching needs the teacher live; its logits then fill the cache for free
            with torch.no_grad():
                teacher_out = forward(teacher, batch, hidden=True)
            cache.remember(batch, head_logits(spec, teacher_out))
        outputs = forward(model, batch, hidden=bool(pairs))
        logits = head_logits(spec, outputs)
        values, terms = batch["step_values"], {}
        if "kl" in weights:
            teacher_logits, classes = cache.batch(batch)
            terms["kl"] = soft_loss(spec, logits, teacher_logits, batch, values["temperature"], classes)
        if "hard" in weights:
            terms["hard"] = hard_loss(spec, logits, batch)
        if pairs:
            tokens = batch["attention_mask"].bool()
            terms["hidden"] = sum(
                hidden_term(outputs.hidden_states[s][tokens], teacher_out.hidden_states[t][tokens]) for s, t in pairs
            ) / len(pairs)
        return losses.weighted_sum(terms, values["weights"]), terms

    unlabeled_info = None
    try:
        if len(fit_data) > len(train):
            labelling, what = time.monotonic(), "unlabeled" if config.unlabeled else "augmented"
            todo = sum(not cache.is_known(index) for index in range(len(train), len(fit_data)))
            if pairs:  # the live teacher pass of hidden-state matching fills the cache as training meets them
                emit({"event": "note", "message": f"teacher logits of the {what} text: {todo:,} computed as "
                      "training reaches them (hidden-state matching runs the teacher anyway)"})  # fmt: skip
            else:
                emit({"event": "stage", "stage": "teacher", "message": f"teacher logits of the {what} text: "
                      f"{len(fit_data) - len(train) - todo:,} cached, computing {todo:,}"})  # fmt: skip
                with runtime.autocast():  # as the teacher runs when it fills the cache during training
                    cache.precompute(range(len(train), len(fit_data)), config.eval_batch_size, runtime.device, emit)
            unlabeled_info = {"file": config.unlabeled, "augment": config.augment, "inputs": len(fit_data) - len(train),
                              "computed": todo, "teacher_seconds": time.monotonic() - labelling,
                              "unlabeled_rows": counts["unlabeled"], "augmented_rows": counts["augmented"],
                              "excluded": counts["excluded"]}  # fmt: skip
        fitted = fit(student, fit_data, distillation_loss, config, runtime, pad_id, emit, eval_data, step_values,
                     projection)  # fmt: skip
    finally:
        cache.close()  # seal the stores (checksums) — also when training fails or is interrupted
    emit({"event": "note", "message": f"teacher logits: {cache.computed} features computed, {cache.reused} reused "
          f"(cache: {cache_dir})"})  # fmt: skip
    if eval_data is not None:
        emit({"event": "stage", "stage": "evaluate", "message": f"scoring the {config.eval_split} split"})
    info = {
        "labels": list(spec.labels), "train_examples": train.num_examples, "train_features": len(train),
        "squad_split": squad_split_info(config, heldout, train), "base_model": config.student,
        "teacher": config.teacher, "teacher_main_score": teacher_info.get("main_score"),
        "distillation": {"weights": {name: str(w) for name, w in weights.items()},
                         "temperature": str(schedules["temperature"]), "hidden_pairs": pairs,
                         "hidden_projection": projection is not None,
                         "teacher_cache": [store.folder.name for store in cache.stores],
                         "teacher_cache_dir": str(cache_dir), "teacher_logits_computed": cache.computed,
                         "teacher_logits_reused": cache.reused, "cache_top_k": cache.stores[0].top_k,
                         "unlabeled": unlabeled_info},
    }  # fmt: skip
    result = evaluate_and_save(config, "task-distill", student, tokenizer, eval_data, runtime, fitted, info)
    result.seconds = time.monotonic() - started
    emit({"event": "done", "out": config.out, "metrics": result.metrics})
    return result
