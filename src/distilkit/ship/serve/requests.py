"""The POST /predict request: its JSON schema (for /openapi.json and /docs) and its validation.

Every request is checked before it reaches a model (size, UTF-8, JSON, shape, types, empty or over-long text);
a bad one raises ApiError, which the app answers with a 4xx and {"error": "<one line>"}.
"""

from __future__ import annotations

import json
from typing import Any


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


FIELDS = {"model", "text", "texts", "question", "context", "inputs"}
_STRING = {"type": "string", "minLength": 1}
_QA_INPUT = {
    "type": "object", "properties": {"question": _STRING, "context": _STRING}, "required": ["question", "context"],
    "additionalProperties": False,
}  # fmt: skip
PREDICT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "additionalProperties": False,
                "description": "Exactly one input: text or texts (embedding, classification, token classification), "
                "question with context, or inputs (question answering).",
                "properties": {
                    "model": {"type": "string", "default": "student", "description": "student, or teacher"},
                    "text": _STRING,
                    "texts": {"type": "array", "items": _STRING, "minItems": 1},
                    "question": _STRING,
                    "context": _STRING,
                    "inputs": {"type": "array", "items": _QA_INPUT, "minItems": 1},
                },
            },
            "examples": {
                "one text": {"value": {"text": "A gripping, beautifully acted film."}},
                "several texts, the teacher": {"value": {"texts": ["Great fun.", "Dull."], "model": "teacher"}},
                "question answering": {"value": {"question": "Where?", "context": "The house by the sea."}},
            },
        }
    },
}
ERROR = {"application/json": {"schema": {"type": "object", "properties": {"error": {"type": "string"}}}}}
PREDICT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "One prediction per input, in order, with the model, its backend and the latency."},
    400: {"description": "Empty body, not UTF-8, or not JSON.", "content": ERROR},
    413: {"description": "Body over --max-body-bytes.", "content": ERROR},
    422: {"description": "Wrong shape or types, an empty or over-long text, too many texts.", "content": ERROR},
    500: {"description": "An unexpected failure (the server keeps serving).", "content": ERROR},
}


async def read_json(request, limit: int) -> Any:
    """The request body as JSON: 413 above ``limit`` bytes (declared or streamed), 400 for non-UTF-8 or bad JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and not declared.isdigit():
        raise ApiError(400, f"Content-Length is not a number: {declared[:40]!r}")
    if declared is not None and int(declared) > limit:
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
    except ValueError as exc:  # an integer over Python's 4,300-digit conversion limit
        raise ApiError(400, f"body is not usable JSON ({str(exc).splitlines()[0][:120]})") from None


def parse_request(body: Any, predictors: dict[str, Any], max_texts: int, max_chars: int) -> tuple[str, list[Any]]:
    """(model name, items) from a /predict body, or ApiError 422 naming the first problem."""
    if not isinstance(body, dict):
        raise ApiError(422, 'body must be a JSON object such as {"text": "..."} or {"texts": ["...", "..."]}')
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise ApiError(422, f"unknown field {unknown[0][:80]!r} — use {', '.join(sorted(FIELDS))}")
    name = body.get("model", "student")
    if not isinstance(name, str):
        raise ApiError(422, f"model must be a string, got {type(name).__name__}")
    if name not in predictors:
        raise ApiError(422, f"model {name[:80]!r} is not loaded here (loaded: {', '.join(predictors)})")
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
        if len(raw) > max_texts:
            raise ApiError(422, f"{len(raw)} inputs in one request; the limit is {max_texts}")
    items = [_item(value, index, qa, max_chars) for index, value in enumerate(raw)]
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
