"""ONNX for the ship commands: export a model's graph (dynamic batch and sequence axes), check it against
PyTorch, quantize it to int8, and run it in an ONNX Runtime session. Used by export, bench and serve."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from distilkit.errors import ConfigError, ModelError
from distilkit.ship.kinds import KINDS, max_tokens

ONNX_INSTALL = 'pip install "distilkit[onnx]"'
ONNX_FILE = "model.onnx"  # fp32, dynamic batch and sequence axes
INT8_FILE = "model.int8.onnx"  # dynamic int8 quantization of ONNX_FILE
PARITY_TEXTS = (
    "The student answers in half the time the teacher takes.",
    "Short one.",
    "Distillation keeps most of the quality, and the exported graph must agree with PyTorch to the last digits.",
)


def require_onnx() -> Any:
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError:
        raise ConfigError(f"ONNX export and ONNX Runtime need the onnx extra — {ONNX_INSTALL}") from None
    return onnxruntime


def onnx_path(model_dir: str | Path, int8: bool = True) -> Path | None:
    """The ONNX graph in an export folder (the int8 one first when ``int8``), or None."""
    names = (INT8_FILE, ONNX_FILE) if int8 else (ONNX_FILE,)
    return next((Path(model_dir) / n for n in names if (Path(model_dir) / n).is_file()), None)


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


def onnx_parameters(path: str | Path) -> int:
    """Weights stored in an ONNX graph (an int8 weight and its fp32 original count the same)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return int(sum(np.prod(tensor.dims, dtype=np.int64) for tensor in graph.initializer if len(tensor.dims) >= 1))
