"""The HTTP server: POST /predict, GET /health, GET /info, /openapi.json and /docs, and the demo page at /.

Every request is validated before it reaches a model (`serve.requests`); a bad one gets a 4xx with
{"error": "..."}, and an unexpected failure a 500 with the same shape — the server keeps running either way.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations (Request, imported in
# create_app) at runtime.
import contextlib
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distilkit.errors import ConfigError
from distilkit.ship.serve.backends import BACKENDS
from distilkit.ship.serve.requests import PREDICT_BODY, PREDICT_RESPONSES, ApiError, parse_request, read_json

log = logging.getLogger(__name__)

SERVE_INSTALL = 'pip install "distilkit[serve]"'
STATIC = Path(__file__).resolve().parent / "static"


@dataclass(frozen=True)
class ServeConfig:
    student: str  # a model folder (its int8 export, in it or next to it, is found) or an export folder
    teacher: str | None = None  # shown next to the student on the demo page
    host: str = "127.0.0.1"  # loopback: exposing a model to the network is the user's explicit choice
    port: int = 8000  # TCP port
    backend: str = "auto"  # auto: int8 ONNX export when there is one (and onnxruntime), else PyTorch
    max_len: int = 128  # tokens per text; longer texts are truncated (QA models use 384-token windows)
    max_chars: int = 5000  # longer texts are refused with 422
    max_texts: int = 64  # texts per request
    max_body_bytes: int = 1 << 20  # larger bodies are refused with 413
    max_batch: int = 32  # rows per forward (the batch the bench measures throughput at)
    max_wait_ms: float = 5.0  # how long a batch's first request waits for company (0: never)
    threads: int = 0  # intra-op threads per model (0 = every core)

    def __post_init__(self) -> None:
        problems = []
        if self.backend not in BACKENDS:
            problems.append(f"--backend must be one of {', '.join(BACKENDS)}, got '{self.backend}'")
        if not 0 <= self.port <= 65535:
            problems.append(f"--port must be in 0..65535, got {self.port}")
        for name in ("max_len", "max_chars", "max_texts", "max_body_bytes", "max_batch"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be ≥ 1, got {getattr(self, name)}")
        if not (math.isfinite(self.max_wait_ms) and self.max_wait_ms >= 0):
            problems.append(f"--max-wait-ms must be ≥ 0 (0: never wait for company), got {self.max_wait_ms}")
        if self.threads < 0:
            problems.append(f"--threads must be ≥ 0 (0 = every core), got {self.threads}")
        if problems:
            raise ConfigError("; ".join(problems))


class StartupPhases:
    """Start-up phases and their durations, in order: what `serve` logs at start and /info shows."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - started, 3)

    def summary(self) -> str:
        phases = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.seconds.items())
        return f"{phases} (total {sum(self.seconds.values()):.2f} s)"


def _require_fastapi():
    try:
        import fastapi
    except ImportError:
        raise ConfigError(f"serving needs the serve extra — {SERVE_INSTALL}") from None
    return fastapi


def load_predictors(config: ServeConfig, phases: StartupPhases | None = None) -> dict[str, Any]:
    """name → Predictor for config.student and config.teacher, each loaded and warmed up (timed in ``phases``)."""
    from distilkit.ship.serve.predictor import load_predictor

    phases = phases or StartupPhases()
    predictors = {}
    for name, folder in (("student", config.student), ("teacher", config.teacher)):
        if folder:
            with phases(f"load {name}"):
                predictors[name] = load_predictor(
                    name, folder, config.backend, config.max_len, config.threads, max_rows=config.max_batch
                )
            with phases(f"warm-up {name}"):
                predictors[name].warm_up()
    return predictors


def create_app(config: ServeConfig, predictors: dict[str, Any] | None = None, phases: StartupPhases | None = None):
    """The FastAPI app. ``predictors`` (name → Predictor) defaults to loading config.student and config.teacher."""
    _require_fastapi()
    from fastapi import FastAPI, Request
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException

    from distilkit.ship.serve.batching import MicroBatcher

    phases = phases or StartupPhases()
    if predictors is None:
        predictors = load_predictors(config, phases)
    building = time.perf_counter()
    batchers = {name: MicroBatcher(p.predict, config.max_batch, config.max_wait_ms) for name, p in predictors.items()}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        for batcher in batchers.values():
            await batcher.aclose()

    # /docs is our own page (static/docs.html): Swagger UI from its CDN, a plain endpoint list when offline.
    app = FastAPI(
        title="distilkit", summary="A distilled student (and its teacher) over HTTP.", docs_url=None,
        redoc_url=None, lifespan=lifespan,
    )  # fmt: skip
    app.state.predictors, app.state.batchers, app.state.config = predictors, batchers, config
    app.state.startup = phases
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s", request.url.path)
        return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(STATIC / "docs.html", media_type="text/html")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """The server is up; the models it serves."""
        return {"status": "ok", "models": list(predictors)}

    @app.get("/info")
    async def info() -> dict[str, Any]:
        """Each model (kind, layers, parameters, the backend chosen and why, micro-batch statistics), the
        request limits, and how long start-up took."""
        models = {
            name: {
                **{k: v for k, v in p.info.items() if k not in ("inputs", "dir")},
                "name": Path(p.model_dir).name,
                "batching": batchers[name].stats(),
            }
            for name, p in predictors.items()
        }
        limits = {k: getattr(config, k) for k in ("max_chars", "max_texts", "max_body_bytes", "max_batch")}
        limits["max_wait_ms"] = config.max_wait_ms
        startup = {"seconds": phases.seconds, "total": round(sum(phases.seconds.values()), 3)}
        return {"models": models, "limits": limits, "startup": startup}

    @app.post("/predict", openapi_extra={"requestBody": PREDICT_BODY}, responses=PREDICT_RESPONSES)
    async def predict(request: Request) -> JSONResponse:
        """One text or a list (classification, token classification, embeddings), or question and context (QA)."""
        started = time.perf_counter()
        body = await read_json(request, config.max_body_bytes)
        name, items = parse_request(body, predictors, config.max_texts, config.max_chars)
        try:
            predictions = await batchers[name].submit(items)
        except ConfigError as exc:
            raise ApiError(422, str(exc)) from None
        # A JSONResponse skips FastAPI's generic encoder: the predictions are plain JSON types already.
        return JSONResponse({
            "model": name, "kind": predictors[name].kind, "backend": predictors[name].info["backend"],
            "predictions": predictions, "latency_ms": 1e3 * (time.perf_counter() - started),
        })  # fmt: skip

    phases.seconds["app"] = round(time.perf_counter() - building, 3)
    return app


def process_age() -> float | None:
    """Seconds since this process started (Linux; None elsewhere): the Python and import time before serve()."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat, open("/proc/uptime", encoding="ascii") as uptime:
            started_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
            return float(uptime.read().split()[0]) - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def serve(config: ServeConfig, callback: Callable[[dict], None] | None = None) -> None:
    """Load the models and serve until interrupted (uvicorn, one process: the models live in its memory)."""
    phases = StartupPhases()
    age = process_age()
    if age is not None:
        phases.seconds["python and CLI start-up"] = round(age, 3)
    _require_fastapi()
    emit = callback or (lambda event: None)

    def note(message: str) -> None:
        log.info(message)
        emit({"event": "note", "message": message})

    with phases("imports"):
        import uvicorn

        import distilkit.ship.serve.predictor  # noqa: F401  (torch, transformers: timed on their own)
        from distilkit.ship.bench import torch_threads

    with torch_threads(config.threads or os.cpu_count() or 1):
        app = create_app(config, phases=phases)
        for name, predictor in app.state.predictors.items():
            choice = predictor.info["backend_choice"]
            note(f"{name}: {choice['chosen']} — {choice['reason']} (--backend {choice['asked']})")
        note(f"start-up: {phases.summary()}")
        note(
            f"serving {', '.join(app.state.predictors)} on http://{config.host}:{config.port} "
            f"(API: /docs, /openapi.json; micro-batches of ≤ {config.max_batch}, waiting ≤ {config.max_wait_ms:g} ms)"
        )
        uvicorn.run(app, host=config.host, port=config.port, log_level="warning", access_log=False)
