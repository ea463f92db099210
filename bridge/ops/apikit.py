"""What every operations-API module shares: the error type, JSON answers, body and query parsing,
and the guard that turns an ``ApiError`` into its JSON answer (``bridge.ops.api`` and the
``api_<area>`` modules beside it)."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from bridge.ops import models as m
from bridge.ops.openapi import Handler

MAX_BODY = 64 * 1024

B = TypeVar("B", bound=BaseModel)


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def ok(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(text=model.model_dump_json(by_alias=True), status=status)


def error(exc: ApiError) -> web.Response:
    body = m.ErrorView(error=exc.error, message=exc.message)
    return web.json_response(text=body.model_dump_json(), status=exc.status)


def describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


async def body(request: web.Request, model: type[B]) -> B:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "too_large", f"body over {MAX_BODY} bytes")
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise ApiError(413, "too_large", f"body over {MAX_BODY} bytes")
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "bad_request", f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, "bad_request", describe(exc)) from None


def query(request: web.Request, model: type[B]) -> B:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise ApiError(400, "bad_request", "query: " + describe(exc)) from None


def guard(handler: Handler) -> Handler:
    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return error(exc)

    run.__name__ = handler.__name__
    return run
