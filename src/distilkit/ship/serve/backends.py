"""Which backend serves a model folder, and why: its PyTorch weights, or an ONNX graph that `distilkit export`
wrote into the folder itself, into its ``export/`` subfolder, or into an ``export/`` folder next to it.

``auto`` serves the int8 graph when there is one (and onnxruntime is installed): `bench` measures it fastest on
CPUs and `export --eval-task` guards its accuracy. Otherwise PyTorch; a folder that holds only an fp32 graph
(`export --format onnx`) is served with ONNX Runtime.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from distilkit.errors import ConfigError

# Only the standard library at import time: ServeConfig checks --backend against BACKENDS, and a bad flag is
# reported before torch (seconds on a busy machine) is imported.
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
EXPORT_DIR = "export"  # where `serve` looks for an export of a model folder: inside it, or next to it
GRAPHS = {"onnx-int8": "model.int8.onnx", "onnx": "model.onnx"}  # onnx_graph.INT8_FILE and ONNX_FILE


@dataclass(frozen=True)
class BackendChoice:
    backend: str  # torch | onnx | onnx-int8
    folder: Path  # where the weights or graph, the tokenizer and the config are read
    graph: Path | None  # the ONNX graph (onnx backends)
    reason: str  # one line for the start-up log and /info


def export_folders(model_dir: Path) -> list[Path]:
    """Folders that may hold ``model_dir``'s ONNX export, in the order they are searched: the folder itself, its
    ``export/`` subfolder, and an ``export/`` folder next to it whose export.json names ``model_dir`` as source
    (a sibling can belong to another model of the same run, e.g. the teacher)."""
    if not model_dir.is_dir():  # a hub id
        return []
    folders = [model_dir, model_dir / EXPORT_DIR]
    sibling = model_dir.parent / EXPORT_DIR
    if sibling.resolve() != model_dir.resolve() and exported_from(sibling, model_dir):
        folders.append(sibling)
    return [folder for folder in folders if folder.is_dir()]


def exported_from(folder: Path, model_dir: Path) -> bool:
    """Whether ``folder/export.json`` records ``model_dir`` as its source: the same absolute path, or a relative
    path (as given to `export --model`) that ends ``model_dir``'s absolute path."""
    try:
        source = json.loads((folder / "export.json").read_text(encoding="utf-8")).get("source")
    except (OSError, ValueError, AttributeError):
        return False
    if not isinstance(source, str) or not source:
        return False
    recorded, target = Path(source), model_dir.resolve()
    if recorded.is_absolute():
        return recorded.resolve() == target
    parts = tuple(part for part in recorded.parts if part != ".")
    return ".." not in parts and bool(parts) and target.parts[-len(parts) :] == parts


def find_graph(model_dir: Path, backend: str) -> Path | None:
    """The first ``GRAPHS[backend]`` file among ``export_folders(model_dir)``, or None."""
    for folder in export_folders(model_dir):
        if (folder / GRAPHS[backend]).is_file():
            return folder / GRAPHS[backend]
    return None


def weights(model_dir: Path) -> list[Path]:
    from distilkit.models.teacher import WEIGHT_FILES

    return [model_dir / name for name in WEIGHT_FILES if (model_dir / name).is_file()]


def stale(graph: Path, model_dir: Path) -> bool:
    """Whether the model's weights were written after the graph was exported (the export no longer matches)."""
    return any(path.stat().st_mtime > graph.stat().st_mtime for path in weights(model_dir))


def has_onnxruntime() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def _shown(graph: Path, model_dir: Path) -> str:
    """The graph's path as the log shows it: relative to the model folder where it can be."""
    try:
        return str(graph.relative_to(model_dir)) if graph.parent != model_dir else graph.name
    except ValueError:
        return f"{graph.parent.name}/{graph.name}"


def choose_backend(model_dir: str | Path, asked: str) -> BackendChoice:
    """The backend that serves ``model_dir`` under ``--backend asked``, with the reason; ConfigError when the asked
    graph is missing or onnxruntime is not installed."""
    from distilkit.ship.onnx_graph import ONNX_INSTALL

    path = Path(model_dir)
    if asked == "torch":
        return BackendChoice("torch", path, None, "PyTorch fp32, as --backend torch asks")
    if asked in GRAPHS:
        graph = find_graph(path, asked)
        if graph is None:
            fmt = "int8" if asked == "onnx-int8" else "onnx"
            raise ConfigError(
                f"--backend {asked}: no {GRAPHS[asked]} in {path} or {path / EXPORT_DIR} (nor in an {EXPORT_DIR}/ "
                f"folder next to it exported from it) — make one with "
                f"`distilkit export --model {path} --format {fmt} --out {path / EXPORT_DIR}`"
            )
        if not has_onnxruntime():
            raise ConfigError(f"--backend {asked} needs ONNX Runtime — {ONNX_INSTALL}")
        note = " (older than the weights: re-export it)" if stale(graph, path) else ""
        return BackendChoice(asked, graph.parent, graph, f"{_shown(graph, path)}, as --backend {asked} asks{note}")
    if asked != "auto":
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got '{asked}'")
    int8 = find_graph(path, "onnx-int8")
    if int8 is not None and has_onnxruntime() and not stale(int8, path):
        return BackendChoice("onnx-int8", int8.parent, int8, f"int8 ONNX export found ({_shown(int8, path)})")
    if int8 is None:
        why = f"no int8 ONNX export ({GRAPHS['onnx-int8']}) in the folder or an {EXPORT_DIR}/ folder"
    elif not has_onnxruntime():
        why = f"{_shown(int8, path)} found but onnxruntime is not installed ({ONNX_INSTALL})"
    else:
        why = f"{_shown(int8, path)} is older than the weights (re-export it)"
    fp32 = find_graph(path, "onnx")
    if path.is_dir() and not weights(path) and fp32 is not None and has_onnxruntime():
        return BackendChoice("onnx", fp32.parent, fp32, f"{why}; the folder holds only {_shown(fp32, path)}")
    return BackendChoice("torch", path, None, f"PyTorch fp32: {why}")
