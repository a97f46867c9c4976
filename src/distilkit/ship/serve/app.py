"""The HTTP server: POST /predict, GET /health, GET /info, and the side-by-side demo page at /.

Every request is validated before it reaches a model (size, UTF-8, JSON shape, empty or over-long text); a
bad one gets a 4xx with {"error": "..."}, and an unexpected failure a 500 with the same shape — the server
keeps running either way.
"""

import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distilkit.errors import ConfigError

log = logging.getLogger(__name__)

SERVE_INSTALL = 'pip install "distilkit[serve]"'
STATIC = Path(__file__).resolve().parent / "static"
BACKENDS = ("auto", "torch", "onnx")


@dataclass(frozen=True)
class ServeConfig:
    student: str
    teacher: str | None = None  # shown next to the student on the demo page
    host: str = "127.0.0.1"  # loopback: exposing a model to the network is the user's explicit choice
    port: int = 8000
    backend: str = "auto"  # auto: ONNX Runtime (int8 first) for an export folder, else PyTorch
    max_len: int = 128  # tokens per text; longer texts are truncated (QA models use 384-token windows)
    max_chars: int = 5000  # longer texts are refused with 422
    max_texts: int = 64  # texts per request
    max_body_bytes: int = 1 << 20  # larger bodies are refused with 413
    max_batch: int = 32  # micro-batch size (the batch the bench measures throughput at)
    max_wait_ms: float = 5.0  # how long a batch's first request waits for company
    threads: int = 0  # intra-op threads per model (0 = every core)

    def __post_init__(self) -> None:
        problems = []
        if self.backend not in BACKENDS:
            problems.append(f"--backend must be one of {', '.join(BACKENDS)}")
        if not 0 <= self.port <= 65535:
            problems.append("--port must be in 0..65535")
        if min(self.max_len, self.max_chars, self.max_texts, self.max_body_bytes, self.max_batch) < 1:
            problems.append("--max-len, --max-chars, --max-texts, --max-body-bytes and --max-batch must be ≥ 1")
        if self.max_wait_ms < 0 or self.threads < 0:
            problems.append("--max-wait-ms and --threads must be ≥ 0")
        if problems:
            raise ConfigError("; ".join(problems))


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _require_fastapi():
    try:
        import fastapi
    except ImportError:
        raise ConfigError(f"serving needs the serve extra — {SERVE_INSTALL}") from None
    return fastapi


def create_app(config: ServeConfig, predictors: dict[str, Any] | None = None):
    """The FastAPI app. ``predictors`` (name → Predictor) defaults to loading config.student and config.teacher."""
    _require_fastapi()
    from fastapi import FastAPI, Request
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException

    from distilkit.ship.serve.batching import MicroBatcher
    from distilkit.ship.serve.predictor import load_predictor

    if predictors is None:
        predictors = {
            "student": load_predictor("student", config.student, config.backend, config.max_len, config.threads)
        }
        if config.teacher:
            predictors["teacher"] = load_predictor(
                "teacher", config.teacher, config.backend, config.max_len, config.threads
            )
    batchers = {name: MicroBatcher(p.predict, config.max_batch, config.max_wait_ms) for name, p in predictors.items()}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        for batcher in batchers.values():
            await batcher.aclose()

    app = FastAPI(title="distilkit", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.predictors, app.state.batchers, app.state.config = predictors, batchers, config
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

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": list(predictors)}

    @app.get("/info")
    async def info() -> dict[str, Any]:
        models = {
            name: {
                **{k: v for k, v in p.info.items() if k not in ("inputs", "dir")},
                "name": Path(p.model_dir).name,
                "batching": batchers[name].stats(),
            }
            for name, p in predictors.items()
        }
        limits = {k: getattr(config, k) for k in ("max_chars", "max_texts", "max_body_bytes", "max_batch")}
        return {"models": models, "limits": limits}

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        started = time.perf_counter()
        body = await read_json(request, config.max_body_bytes)
        name, items = parse_request(body, predictors, config)
        try:
            predictions = await batchers[name].submit(items)
        except ConfigError as exc:
            raise ApiError(422, str(exc)) from None
        # A JSONResponse skips FastAPI's generic encoder: the predictions are plain JSON types already.
        return JSONResponse({
            "model": name, "kind": predictors[name].kind, "backend": predictors[name].info["backend"],
            "predictions": predictions, "latency_ms": 1e3 * (time.perf_counter() - started),
        })  # fmt: skip

    return app


async def read_json(request, limit: int) -> Any:
    """The request body as JSON: 413 above ``limit`` bytes (declared or streamed), 400 for non-UTF-8 or bad JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise ApiError(413, f"request body over the {limit}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body over the {limit}-byte limit")
        chunks.append(chunk)
    if not size:
        raise ApiError(400, 'empty body — send JSON such as {"text": "..."}')
    try:
        text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"body is not valid UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise ApiError(400, "body is nested too deeply") from None


FIELDS = {"model", "text", "texts", "question", "context", "inputs"}


def parse_request(body: Any, predictors: dict[str, Any], config: ServeConfig) -> tuple[str, list[Any]]:
    """(model name, items) from a /predict body, or ApiError 422 naming the first problem."""
    if not isinstance(body, dict):
        raise ApiError(422, 'body must be a JSON object such as {"text": "..."} or {"texts": ["...", "..."]}')
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise ApiError(422, f"unknown field {unknown[0]!r} — use {', '.join(sorted(FIELDS))}")
    name = body.get("model", "student")
    if name not in predictors:
        raise ApiError(422, f"model {name!r} is not loaded here (loaded: {', '.join(predictors)})")
    qa = predictors[name].kind == "qa"
    given = [key for key in ("text", "texts", "inputs", "question") if key in body]
    if len(given) != 1 or ("context" in body) != ("question" in body):
        shapes = (
            '{"question": "...", "context": "..."} or {"inputs": [...]}' if qa else '{"text": ...} or {"texts": [...]}'
        )
        raise ApiError(422, f"give exactly one input: {shapes}")
    if qa and given[0] in ("text", "texts"):
        raise ApiError(422, "this is a question-answering model: send question and context")
    if not qa and given[0] in ("question", "inputs"):
        raise ApiError(422, 'this model takes text: send {"text": "..."} or {"texts": [...]}')
    if given[0] in ("text", "question"):
        raw = [body["text"]] if given[0] == "text" else [{"question": body["question"], "context": body["context"]}]
    else:
        raw = body[given[0]]
        if not isinstance(raw, list) or not raw:
            raise ApiError(422, f"{given[0]} must be a non-empty list")
        if len(raw) > config.max_texts:
            raise ApiError(422, f"{len(raw)} inputs in one request; the limit is {config.max_texts}")
    items = [_item(value, index, qa, config.max_chars) for index, value in enumerate(raw)]
    for index, item in enumerate(items):
        problem = predictors[name].check(item)
        if problem:
            raise ApiError(422, f"input {index}: {problem}")
    return name, items


def _text(value: Any, what: str, max_chars: int) -> str:
    if not isinstance(value, str):
        raise ApiError(422, f"{what} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ApiError(422, f"{what} is empty")
    if len(value) > max_chars:
        raise ApiError(422, f"{what} has {len(value)} characters; the limit is {max_chars}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(422, f"{what} is not valid Unicode (a lone surrogate escape)") from None
    return value


def _item(value: Any, index: int, qa: bool, max_chars: int) -> Any:
    if not qa:
        return _text(value, f"text {index}", max_chars)
    if not isinstance(value, dict) or set(value) != {"question", "context"}:
        raise ApiError(422, f'input {index} must be {{"question": "...", "context": "..."}}')
    return (
        _text(value["question"], f"question {index}", max_chars),
        _text(value["context"], f"context {index}", max_chars),
    )


def serve(config: ServeConfig, callback=None) -> None:
    """Load the models and serve until interrupted (uvicorn, one process: the models live in its memory)."""
    _require_fastapi()
    import uvicorn

    from distilkit.ship.bench import torch_threads

    emit = callback or (lambda event: None)
    with torch_threads(config.threads or os.cpu_count() or 1):
        app = create_app(config)
        emit(
            {
                "event": "note",
                "message": f"serving {', '.join(app.state.predictors)} on http://{config.host}:{config.port}",
            }
        )
        uvicorn.run(app, host=config.host, port=config.port, log_level="warning", access_log=False)
