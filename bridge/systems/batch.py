"""OData ``$batch`` with one change set (pure): build the multipart/mixed request, read the answer.

A change set commits or rolls back as a whole on both systems. Without
``Prefer: odata.continue-on-error`` the service stops at the first failure and answers with that one
response outside any change set: ``raise_for_batch`` turns it into the error hierarchy.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.core.errors import RejectedError
from bridge.systems.http import classify

_STATUS_LINE = re.compile(r"^HTTP/1\.[01][ \t]+(\d{3})")


@dataclass(frozen=True, slots=True)
class BatchOperation:
    method: str  # POST / PATCH / DELETE
    path: str  # relative to the service root: "msdyn_shipvias(<guid>)"
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BatchResult:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON or None
    text: str = ""


def _render(base_url: str, op: BatchOperation, content_id: int) -> list[str]:
    """One request of a batch, as MIME part lines (without its boundary line)."""
    lines = [
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
        f"Content-ID: {content_id}",
        "",
        f"{op.method.upper()} {base_url.rstrip('/')}/{op.path.lstrip('/')} HTTP/1.1",
    ]
    headers = dict(op.headers)
    if op.body is not None:
        headers.setdefault("Content-Type", "application/json; type=entry")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += ["", json.dumps(op.body) if op.body is not None else ""]
    return lines


def build_changeset(base_url: str, operations: Sequence[BatchOperation]) -> tuple[str, bytes]:
    """(Content-Type, body) of a batch holding ``operations`` in one change set."""
    if not operations:
        raise ValueError("a batch needs at least one operation")
    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    lines = [f"--{batch}", f"Content-Type: multipart/mixed; boundary={changeset}", ""]
    for number, op in enumerate(operations, start=1):
        lines += [f"--{changeset}", *_render(base_url, op, number)]
    lines += [f"--{changeset}--", f"--{batch}--", ""]
    return f"multipart/mixed; boundary={batch}", "\r\n".join(lines).encode()


def build_independent(base_url: str, operations: Sequence[BatchOperation]) -> tuple[str, bytes]:
    """(Content-Type, body) of a batch of independent requests: each succeeds or fails on its own
    (send it with ``Prefer: odata.continue-on-error``)."""
    if not operations:
        raise ValueError("a batch needs at least one operation")
    batch = f"batch_{uuid.uuid4()}"
    lines: list[str] = []
    for number, op in enumerate(operations, start=1):
        lines += [f"--{batch}", *_render(base_url, op, number)]
    lines += [f"--{batch}--", ""]
    return f"multipart/mixed; boundary={batch}", "\r\n".join(lines).encode()


def _boundary(content_type: str) -> str | None:
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/mixed":
        return None
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "boundary":
            return value.strip().strip('"')
    return None


def _parts(text: str, boundary: str) -> list[str]:
    """The parts after the first delimiter line, blank ones dropped (RFC 2046: "--boundary" at a line
    start, with the line break before it, then "--" on the closing one, blanks, the line's end).

    Found with plain string search: the boundary is new in every answer, so a regular expression
    would be compiled for each one, and it would try to match at every character of the body."""
    mark = "--" + boundary
    pieces: list[str] = []
    after: int | None = None  # where the last delimiter ended (None: still in the preamble)
    at = text.find(mark)
    while at != -1:
        if at == 0 or text[at - 1] == "\n":
            end = at + len(mark)
            end += 2 if text.startswith("--", end) else 0
            while end < len(text) and text[end] in " \t":
                end += 1
            if end == len(text) or text.startswith(("\n", "\r\n"), end):
                start = at - 2 if at >= 2 and text[at - 2] == "\r" else max(at - 1, 0)
                if after is not None:
                    pieces.append(text[after:start])
                after = end
        at = text.find(mark, at + 1)
    if after is not None:
        pieces.append(text[after:])
    return [p.lstrip("\r\n") for p in pieces if p.strip()]


def _blank_line(block: str) -> tuple[int, int] | None:
    """Where the first empty line's break starts and ends (the leftmost ``\\r?\\n\\r?\\n``), by
    string search from line break to line break."""
    at = block.find("\n")
    while at != -1:
        if block.startswith("\n", at + 1):
            end = at + 2
        elif block.startswith("\r\n", at + 1):
            end = at + 3
        else:
            at = block.find("\n", at + 1)
            continue
        return (at - 1 if at > 0 and block[at - 1] == "\r" else at), end
    return None


def _head(block: str) -> tuple[dict[str, str], str]:
    """Split MIME-style headers (lower-cased names) from what follows the blank line."""
    if block.startswith(("\r\n", "\n")):  # no headers at all: the blank line comes first
        return {}, block.split("\n", 1)[1]
    blank = _blank_line(block)
    head, rest = (block, "") if blank is None else (block[: blank[0]], block[blank[1] :])
    headers: dict[str, str] = {}
    for line in head.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers, rest


def parse_batch_response(content_type: str, text: str) -> list[BatchResult]:
    """Every response in the body, change sets flattened, in order."""
    boundary = _boundary(content_type)
    if boundary is None:
        raise RejectedError(f"$batch answered with {content_type!r}, not multipart/mixed")
    results: list[BatchResult] = []
    for part in _parts(text, boundary):
        mime, rest = _head(part)
        inner = _boundary(mime.get("content-type", ""))
        if inner is not None:
            results.extend(parse_batch_response(mime["content-type"], rest))
            continue
        status_line, _, after = rest.lstrip("\r\n").partition("\n")
        match = _STATUS_LINE.match(status_line.strip())
        if match is None:
            raise RejectedError(f"$batch part without a status line: {status_line[:80]!r}")
        headers, body = _head(after)
        body = body.strip()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        results.append(BatchResult(int(match.group(1)), headers, parsed, body))
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
