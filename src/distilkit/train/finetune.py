"""Fine-tune an encoder on a GLUE, SQuAD v1.1 or CoNLL-2003 task: the config (shared with task distillation), the
data preparation and the save of a plain transformers head model; the training loop is train/task_recipe.py.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from distilkit.errors import ConfigError
from distilkit.io import atomic_dir, atomic_write_text, write_json
from distilkit.models.teacher import load_tokenizer
from distilkit.runtime import Runtime, seed_everything, setup_runtime, shutdown_runtime
from distilkit.tasks.data import TaskData, encode, encode_split
from distilkit.tasks.heads import build_head_model, forward, head_logits, save_task_model, task_loss
from distilkit.tasks.predict import headline, predict, predictions_name, render_predictions, score
from distilkit.tasks.readers.ner import build_label_list
from distilkit.tasks.readers.own_data import OwnData, OwnDataFlags, source_problems
from distilkit.tasks.readers.splits import HUB_PREFIX, SELECTION, read_split, subsample
from distilkit.tasks.readers.squad import squad_article_split
from distilkit.tasks.registry import TaskSpec, head_task, task_spec
from distilkit.train.checkpoint import Checkpointer
from distilkit.train.config import settings_problems
from distilkit.train.setup import versions
from distilkit.train.task_recipe import CHECKPOINTS, Fitted, checkpoint_root, fit

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TaskTrainConfig(OwnDataFlags):
    """Flags shared by `finetune` and `task-distill`. Defaults: BERT's GLUE/SQuAD fine-tuning recipe
    (Devlin et al. 2019, §4 and App. A.3) as the transformers examples run it, unless noted."""

    # A benchmark (sst2, squad, conll2003, ...) or, for your own data, the problem type: classification,
    # regression, token-classification or qa
    task: str
    data: str | None = None  # benchmark folder (GLUE task dir or root, SQuAD folder/JSON, CoNLL folder) or hf:NAME
    out: str  # the fine-tuned model: save_pretrained dir + distilkit_task.json + predictions
    # Your own data instead of --data: --train plus OwnDataFlags (--dev, --test, --dataset, columns); files are
    # csv, tsv, jsonl, parquet (CoNLL columns for token-classification, SQuAD JSON for qa): tasks/readers/own_data.py.
    train: str | None = None
    # token-classification: iob1, iob2 (BIO), bioes or plain (POS-like tags, scored by word accuracy/macro-F1);
    # None: the task record's (conll2003, chunk: IOB; pos: plain), else detected from the training tags
    tag_scheme: str | None = None
    max_len: int | None = None  # tokens per feature; None: 128 (GLUE, CoNLL) or 384 (SQuAD)
    stride: int = 128  # SQuAD: tokens shared by consecutive windows of a long context (BERT doc_stride)
    batch_size: int = 32  # training batch size (BERT/DistilBERT GLUE)
    lr: float = 5e-5  # peak learning rate: BERT's GLUE grid {5e-5, 4e-5, 3e-5, 2e-5}; 5e-5 is run_glue's default
    epochs: float = 3.0  # passes over the training data, fractions allowed (BERT GLUE/CoNLL; SQuAD used 2-3)
    weight_decay: float = 0.01  # AdamW weight decay (BERT)
    warmup_ratio: float = 0.1  # fraction of steps warming up (BERT SQuAD; run_glue uses 0, a warm-up rarely hurts)
    max_grad_norm: float = 1.0  # gradient clipping norm, 0 = off (BERT / transformers Trainer)
    max_steps: int | None = None  # optimizer steps; overrides epochs (bounds CPU cost)
    time_budget: float | None = None  # seconds of training; stop early (the model is saved) when exceeded
    max_train_samples: int | None = None  # train on a seeded sample of this many examples (CPU budget)
    max_eval_samples: int | None = None  # evaluate on a seeded sample of this many examples
    eval_split: str = "dev"  # evaluated after training; "none" skips. SQuAD "dev": the held-out articles
    # Hold out this fraction of train as the "selection" split (--eval-split selection scores it): choose
    # epochs, lr and the rest there, and score the reported split once per pinned configuration. Benchmark data.
    selection_fraction: float = 0.0
    selection_seed: int = 0  # fixed apart from --seed, so every training seed holds out the same examples
    eval_every_epoch: bool = False  # score --eval-split after every epoch too: the learning curve (train_log.jsonl)
    squad_dev_fraction: float = 0.2  # SQuAD without a train file: fraction of dev articles held out
    seed: int = 42  # random seed (the transformers examples')
    eval_batch_size: int = 64  # batch size when scoring
    log_every: int = 10  # keep every N-th step in train_log.jsonl
    max_bad_steps: int = 5  # stop after this many non-finite steps in a row
    grad_accum: int = 1  # micro-batches of --batch-size per optimizer step: a larger batch in the same memory
    save_every: int = 500  # optimizer steps between checkpoints in OUT/checkpoints (as distill); gone once OUT is saved
    keep: int = 3  # newest checkpoints kept (as distill): an older one is the fallback if the newest is damaged
    resume: bool = False  # continue from the newest good checkpoint in OUT/checkpoints, bit-identical (a fresh budget)
    device: str = "auto"  # auto, cpu or cuda
    precision: str = "auto"  # fp32 on CPU, bf16 autocast on a GPU that has it
    overwrite: bool = False  # replace a non-empty output folder

    @cached_property
    def spec(self) -> TaskSpec:
        """The task record --task names (with --tag-scheme), resolved once (ConfigError listing the valid tasks, or
        schemes, when unknown)."""
        return task_spec(self.task).with_scheme(self.tag_scheme)

    def problems(self) -> list[str]:
        spec, problems = head_task(self.task, self.tag_scheme)
        kind = spec.kind if spec else None
        if self.tag_scheme is not None and kind not in (None, "token-classification"):
            problems.append(f"--tag-scheme applies to token classification, not to --task {self.task}")
        positive = ("eval_batch_size", "max_len", "max_train_samples", "max_eval_samples")
        too_small = [name for name in positive if getattr(self, name) is not None and getattr(self, name) < 1]
        problems += [f"--{name.replace('_', '-')} must be ≥ 1" for name in too_small]
        if self.max_len is not None and self.max_len < 8:
            problems.append("--max-len must be ≥ 8")
        if kind == "qa" and not 0 <= self.stride < (self.max_len or 384):
            problems.append("--stride must be in [0, --max-len)")
        if self.epochs <= 0:
            problems.append("--epochs must be > 0")
        problems += settings_problems(self)
        if not 0 < self.squad_dev_fraction < 1:
            problems.append("--squad-dev-fraction must be in (0, 1)")
        if self.eval_split == "train":
            problems.append("--eval-split train would score the training data — use dev, test or none")
        if not 0 <= self.selection_fraction < 1:
            problems.append("--selection-fraction must be in [0, 1)")
        if self.selection_fraction and (self.data is None or str(self.data).startswith(HUB_PREFIX)):
            problems.append("--selection-fraction carves benchmark data (--data); with your own files give a "
                            "--dev file carved from your training data")  # fmt: skip
        if self.eval_split == SELECTION and not self.selection_fraction:
            problems.append("--eval-split selection needs --selection-fraction")
        splits = ["train"] + ([self.eval_split] if self.eval_split not in ("none", "train", SELECTION) else [])
        return problems + source_problems(self, spec, splits)

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ConfigError("; ".join(problems))

    def resolved_max_len(self, spec: TaskSpec) -> int:
        return self.max_len or spec.default_max_len

    @property
    def selection(self) -> tuple[float, int] | None:
        return (self.selection_fraction, self.selection_seed) if self.selection_fraction else None


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig(TaskTrainConfig):
    model: str  # encoder to fine-tune: base model dir (teacher, init-student or distill output) or pip name


@dataclass
class TaskResult:
    """What a finetune/task-distill run produced."""

    out: Path
    task: str
    metrics: dict[str, float]
    main_score: float | None
    steps: int
    stopped_early: bool
    seconds: float
    train_features: int
    planned_steps: int


def check_out(config: TaskTrainConfig) -> None:
    """Before any work, refuse a non-empty output folder (io.atomic_dir would, but only after training) — unless
    --overwrite — and a --resume with no checkpoint to resume from."""
    path = Path(config.out)
    if config.resume:
        if Checkpointer(checkpoint_root(path)).latest_good() is None:
            raise ConfigError(f"no complete checkpoint in {checkpoint_root(path)} to resume — run without --resume")
    elif path.is_dir() and any(path.iterdir()) and not config.overwrite:
        hint = "pass --resume to continue that run or --overwrite" if only_checkpoints(path) else "pass --overwrite"
        raise ConfigError(f"{path} is not empty — choose another --out or {hint}")


def only_checkpoints(path: Path) -> bool:
    """`path` holds nothing but the checkpoints of an unfinished run (the final save may replace them)."""
    return path.is_dir() and all(entry.name == CHECKPOINTS for entry in path.iterdir())


def prepare_data(
    config: TaskTrainConfig,
    tokenizer: Any,
    labels: list[str] | None,
    heldout: list[str] | None,
    keep_text: bool = False,
) -> tuple[TaskData, TaskData | None]:
    """Train features (seeded sample) and evaluation features of the task. Token tags (and own-data classes) come
    from `labels` (a teacher's) or from the whole training file; a tag outside them is a DataError naming it; the
    tags' scheme is the task's (forced, or detected from the training tags: readers/schemes.py).
    keep_text: a streamed training file keeps its examples too (task-distill --augment perturbs them)."""
    own = OwnData.of(config)
    if own is not None:
        return prepare_own_data(config, own, tokenizer, labels, keep_text)
    selection = config.selection
    train_examples = read_split(config.spec, config.data, "train", heldout, selection)
    if config.spec.labels_from_data and labels is None:  # the whole training file's tags: a rare tag may fall in
        whole = read_split(config.spec, config.data, "train", heldout, None) if selection else train_examples
        labels = build_label_list(whole)  # the selection split alone (CoNLL chunking's I-INTJ)
    spec = config.spec.with_labels(labels)
    max_len = config.resolved_max_len(spec)
    train_examples = subsample(train_examples, config.max_train_samples, config.seed)
    train = encode(spec, train_examples, tokenizer, max_len, config.stride, train=True)
    if config.eval_split == "none":
        return train, None
    eval_examples = read_split(spec, config.data, config.eval_split, heldout, selection)
    eval_examples = subsample(eval_examples, config.max_eval_samples, config.seed)
    return train, encode(spec, eval_examples, tokenizer, max_len, config.stride, train=False)


def prepare_own_data(
    config: TaskTrainConfig, own: OwnData, tokenizer: Any, labels: list[str] | None, keep_text: bool = False
) -> tuple[TaskData, TaskData | None]:
    """prepare_data for --train/--dev/--test files or --dataset: the label set from `labels` or the training
    split, each split streamed into flat feature arrays."""
    found = labels is None and config.spec.labels_from_data  # the training split's label set, found by encoding
    spec = config.spec.with_labels(None if found else labels)
    source = ("training" if found else "teacher's") if spec.labels_from_data else spec.name
    max_len = config.resolved_max_len(spec)
    common = {"tokenizer": tokenizer, "max_len": max_len, "stride": config.stride, "seed": config.seed,
              "label_source": source}  # fmt: skip
    train = encode_split(spec, own, "train", train=True, sample=config.max_train_samples, keep=keep_text, **common)
    if config.eval_split == "none":
        return train, None
    scored = encode_split(train.spec, own, config.eval_split, train=False, sample=config.max_eval_samples, **common)
    return train, scored


def data_message(train: TaskData, eval_data: TaskData | None) -> str:
    scored = f", scoring {eval_data.num_examples} examples" if eval_data is not None else ""
    return f"training on {train.num_examples} {train.spec.name} examples ({len(train)} features){scored}"


def evaluate_and_save(
    config: TaskTrainConfig,
    command: str,
    model: nn.Module,
    tokenizer: Any,
    eval_data: TaskData | None,
    runtime: Runtime,
    fitted: Fitted,
    info: dict[str, Any],
    extra_files: tuple[Callable[[Path], None], ...] = (),
) -> TaskResult:
    """Score the trained model on the evaluation split, then write the output folder atomically: the model
    (save_pretrained + tokenizer), distilkit_task.json, metrics.json, predictions_<split> and train_log.jsonl."""
    metrics: dict[str, float] = {}
    predictions = None
    if eval_data is not None:
        outputs = predict(model, eval_data, runtime, tokenizer.pad_token_id or 0, config.eval_batch_size)
        metrics, predictions = score(eval_data, outputs)
    spec = eval_data.spec if eval_data is not None else config.spec.with_labels(info.get("labels"))
    main = headline(spec, metrics)
    info = {
        **info, "task": spec.name, "kind": spec.kind, "labels": list(spec.labels),
        "tag_scheme": info.get("tag_scheme") or spec.tag_scheme,
        "max_len": config.resolved_max_len(spec), "stride": config.stride, "eval_split": config.eval_split,
        "selection": {"fraction": config.selection_fraction, "seed": config.selection_seed}
        if config.selection else None,
        "eval_examples": len(eval_data.examples) if eval_data is not None else 0, "metrics": metrics,
        "main_score": main, "training": {"steps": fitted.steps, "planned_steps": fitted.planned_steps,
                                          "stopped_early": fitted.stopped_early},
        "learning_curve": [{"epoch": r["epoch"], "step": r["step"], "main_score": r["main_score"]}
                           for r in fitted.records if r.get("event") == "epoch_eval"]
        + ([{"epoch": fitted.steps / max(1, fitted.per_epoch), "step": fitted.steps, "main_score": main}]
           if main is not None else []),
        "command": command, "config": asdict(config), "versions": versions(),
    }  # fmt: skip
    if runtime.is_main:  # every process scored the model alike; one writes the folder
        write_out(config, model, tokenizer, eval_data, predictions, fitted, info, extra_files)
    runtime.barrier()
    return TaskResult(
        out=Path(config.out), task=spec.name, metrics=metrics, main_score=main, steps=fitted.steps,
        planned_steps=fitted.planned_steps, stopped_early=fitted.stopped_early, seconds=0.0,
        train_features=info["train_features"],
    )  # fmt: skip


def write_out(
    config: TaskTrainConfig, model: nn.Module, tokenizer: Any, eval_data: TaskData | None, predictions: Any,
    fitted: Fitted, info: dict[str, Any], extra_files: tuple[Callable[[Path], None], ...],
) -> None:  # fmt: skip
    """The output folder, atomically; it replaces the checkpoints of the run (OUT/checkpoints)."""
    with atomic_dir(config.out, overwrite=config.overwrite or only_checkpoints(Path(config.out))) as tmp:
        save_task_model(model.cpu(), tokenizer, tmp, info)
        atomic_write_text(tmp / "train_log.jsonl", "".join(json.dumps(record) + "\n" for record in fitted.records))
        if eval_data is not None:
            write_json(tmp / "metrics.json", info["metrics"])
            name = predictions_name(eval_data, config.eval_split)
            atomic_write_text(tmp / name, render_predictions(eval_data, predictions))
        if info.get("squad_split"):
            write_json(tmp / "squad_split.json", info["squad_split"])
        for write in extra_files:  # e.g. task-distill's teacher-logit cache
            write(tmp)


def squad_split_info(config: TaskTrainConfig, heldout: list[str] | None, train: TaskData) -> dict[str, Any] | None:
    """The article split a SQuAD model was trained with (None with a real train file), saved with the model so
    evaluate scores the held-out articles only."""
    if heldout is None:
        return None
    train_titles = sorted({example.title for example in train.examples})
    return {"source": "dev-v1.1.json article split", "dev_fraction": config.squad_dev_fraction,
            "seed": config.seed, "heldout_titles": heldout, "train_titles": train_titles}  # fmt: skip


def finetune(config: FinetuneConfig, callback: Callable[[dict], None] | None = None) -> TaskResult:
    """Fine-tune `config.model` on `config.task` and save it to `config.out`; see FinetuneConfig. Under torchrun
    or `accelerate launch` each process trains on its share of every batch (DDP)."""
    check_out(config)
    runtime = setup_runtime(config.device, config.precision)
    try:
        return _finetune(config, runtime, callback or (lambda event: None))
    finally:
        shutdown_runtime(runtime)


def _finetune(config: FinetuneConfig, runtime: Runtime, emit: Callable[[dict], None]) -> TaskResult:
    started = time.monotonic()
    tokenizer = load_tokenizer(config.model)
    heldout = None
    if config.spec.benchmark == "squad" and config.data and not config.data.startswith(HUB_PREFIX):
        heldout = squad_article_split(config.spec, Path(config.data), config.squad_dev_fraction, config.seed)
    train, eval_data = prepare_data(config, tokenizer, None, heldout)
    seed_everything(config.seed)  # the new head's init: --seed's, not the process's random start
    model = build_head_model(config.model, train.spec)
    emit({"event": "stage", "stage": "data", "message": data_message(train, eval_data)})

    def hard_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss = task_loss(train.spec, head_logits(train.spec, forward(model, batch)), batch)
        return loss, {"hard": loss}

    fitted = fit(model, train, hard_loss, config, runtime, tokenizer.pad_token_id or 0, emit, eval_data=eval_data)
    if eval_data is not None:
        emit({"event": "stage", "stage": "evaluate", "message": f"scoring the {config.eval_split} split"})
    info = {"labels": list(train.spec.labels), "train_examples": train.num_examples, "train_features": len(train),
            "squad_split": squad_split_info(config, heldout, train), "base_model": config.model,
            "tag_scheme": train.spec.tag_scheme}  # fmt: skip
    result = evaluate_and_save(config, "finetune", model, tokenizer, eval_data, runtime, fitted, info)
    result.seconds = time.monotonic() - started
    emit({"event": "done", "out": config.out, "metrics": result.metrics})
    return result
