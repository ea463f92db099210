"""OData ``$batch`` for the clients: operations in, results out, on the wire format of
``bridge/wire/batch.py`` (shared with the emulators).

A change set commits or rolls back as a whole on both systems. Without
``Prefer: odata.continue-on-error`` the service stops at the first failure and answers with that one
response outside any change set: ``raise_for_batch`` turns it into the error hierarchy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from bridge.core.errors import RejectedError
from bridge.systems.errors import classify
from bridge.wire.batch import BatchRequest, BatchResponse, ChangeSet, write_requests
from bridge.wire.batch import parse_batch_response as read_answer
from bridge.wire.multipart import MultipartError


@dataclass(frozen=True, slots=True)
class BatchOperation:
    method: str  # POST / PATCH / DELETE
    path: str  # relative to the service root: "msdyn_shipvias(<guid>)"
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BatchResult:
    status: int
    headers: CIMultiDictProxy[str]
    body: Any  # parsed JSON or None
    text: str = ""


def _requests(base_url: str, operations: Sequence[BatchOperation]) -> list[BatchRequest]:
    root = base_url.rstrip("/")
    out = []
    for number, op in enumerate(operations, start=1):
        headers = dict(op.headers)
        body = b""
        if op.body is not None:
            headers.setdefault("Content-Type", "application/json; type=entry")
            body = json.dumps(op.body).encode()
        out.append(BatchRequest(op.method, f"{root}/{op.path.lstrip('/')}", headers, body, str(number)))
    return out


def build_changeset(base_url: str, operations: Sequence[BatchOperation]) -> tuple[str, bytes]:
    """(Content-Type, body) of a batch holding ``operations`` in one change set."""
    if not operations:
        raise ValueError("a batch needs at least one operation")
    return write_requests([ChangeSet(_requests(base_url, operations))])


def build_independent(base_url: str, operations: Sequence[BatchOperation]) -> tuple[str, bytes]:
    """(Content-Type, body) of a batch of independent requests: each succeeds or fails on its own
    (send it with ``Prefer: odata.continue-on-error``)."""
    return write_requests(_requests(base_url, operations))


def _result(part: BatchResponse) -> BatchResult:
    text = part.body.decode("utf-8").strip()
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    return BatchResult(part.status, CIMultiDictProxy(CIMultiDict(part.headers)), parsed, text)


def parse_batch_response(content_type: str, text: str) -> list[BatchResult]:
    """Every response in the body, change sets flattened, in order (read as far as it goes)."""
    try:
        parts = read_answer(text, content_type, lenient=True)
    except MultipartError as exc:
        raise RejectedError(f"unreadable $batch answer ({content_type!r}): {exc}") from exc
    results: list[BatchResult] = []
    for part in parts:
        if isinstance(part, list):
            results.extend(_result(p) for p in part)
        else:
            results.append(_result(part))
    return results


def raise_for_batch(system: str, results: Sequence[BatchResult], expected: int) -> None:
    """Raise the first failure; also fail when fewer answers came back than operations sent."""
    for result in results:
        if not 200 <= result.status < 300:
            raise classify(system, result.status, result.headers, result.body, result.text)
    if len(results) != expected:
        # Not retried: the change set may have committed, and a replay could create rows twice.
        raise RejectedError(
            f"{system}: $batch answered {len(results)} of {expected} operations", system=system
        )
