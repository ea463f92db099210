"""The frames between ``dualwrite serve`` and its apply processes (pure but for reading one frame
from a stream the caller owns).

A frame is a 4-byte big-endian length, then that many bytes of one JSON object whose ``"t"`` names it.

    serve -> apply process   config (first, once) · ids · apply {id, event} · cancel {id}
    apply process -> serve   ready | fatal {message} · done {id, result, reason} · failed {id, error}
                             · counts {cds, scm}

An apply process answers every ``apply`` with ``done`` (the change's ``Applied``) or ``failed`` (the
error the local applier would have raised, rebuilt on the serve side with its class and fields, so
the engine retries, compensates and records exactly as it does for a change applied in-process).
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

from bridge.core.errors import (
    ConflictError,
    RejectedError,
    RetryableError,
    SyncError,
)
from bridge.core.events import ChangeEvent
from bridge.engine.apply import Applied, Result

LENGTH = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024  # far above any change (webhook bodies are capped well below)

_ERROR_KINDS: tuple[tuple[str, type[SyncError]], ...] = (
    # subclasses first: the first match names the kind
    ("retryable", RetryableError),
    ("rejected", RejectedError),
    ("conflict", ConflictError),
    ("sync", SyncError),
)


class ApplyProcessError(RetryableError):
    """An apply process broke its protocol, exited, or could not be reached: the change is retried."""


def frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return LENGTH.pack(len(body)) + body


def apply_frame(request_id: int, event: ChangeEvent) -> bytes:
    """``apply`` with the event's JSON spliced in (no second encoding of the largest part)."""
    body = b'{"t":"apply","id":%d,"event":%s}' % (request_id, event.model_dump_json().encode())
    return LENGTH.pack(len(body)) + body


def frame_length(header: bytes) -> int:
    (length,) = LENGTH.unpack(header)
    if length > MAX_FRAME:
        raise ApplyProcessError(f"apply process frame of {length} bytes is over the limit of {MAX_FRAME}")
    return int(length)


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any]:
    """The next frame from ``reader``; ``asyncio.IncompleteReadError`` once the other side closed."""
    header = await reader.readexactly(LENGTH.size)
    return parse(await reader.readexactly(frame_length(header)))


def parse(body: bytes) -> dict[str, Any]:
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise ApplyProcessError(f"apply process frame is not JSON: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("t"), str):
        raise ApplyProcessError("apply process frame is not an object with a type")
    return message


def done(request_id: int, applied: Applied) -> dict[str, Any]:
    # Without ``undo``: only a synchronous change is ever undone, and those stay in the serve process.
    return {"t": "done", "id": request_id, "result": applied.result.value, "reason": applied.reason}


def applied_from(message: dict[str, Any]) -> Applied:
    try:
        return Applied(Result(message["result"]), str(message.get("reason") or ""))
    except (KeyError, ValueError) as exc:
        raise ApplyProcessError(f"apply process answer is malformed: {exc!r}") from None


def failed(request_id: int, exc: BaseException) -> dict[str, Any]:
    return {"t": "failed", "id": request_id, "error": error_to_wire(exc)}


def error_to_wire(exc: BaseException) -> dict[str, Any]:
    for kind, cls in _ERROR_KINDS:
        if isinstance(exc, cls):
            return {
                "kind": kind,
                "message": exc.message,
                "system": exc.system,
                "status": exc.status,
                "code": exc.code,
                "retry_after": getattr(exc, "retry_after", None),
            }
    return {"kind": "bug", "message": f"{type(exc).__name__}: {exc}"}


def error_from_wire(error: dict[str, Any]) -> Exception:
    """The error an apply process reported, as the class the engine handles. A bug there stays a bug
    here (a plain exception: the engine logs it and retries the change)."""
    kind = error.get("kind")
    message = str(error.get("message") or "apply process failed without a message")
    fields: dict[str, Any] = {
        "system": error.get("system"),
        "status": error.get("status"),
        "code": error.get("code"),
    }
    for name, cls in _ERROR_KINDS:
        if kind == name:
            if cls is RetryableError:
                return RetryableError(message, retry_after=error.get("retry_after"), **fields)
            return cls(message, **fields)
    return RuntimeError(f"in an apply process: {message}")
