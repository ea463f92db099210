"""OData ``$batch`` bodies, both ways: requests (written by the bridge, read by the emulators) and
responses (written by the emulators, read by the bridge). Pure: strings and bytes in and out.

A batch is a list of parts; a part is one ``BatchRequest`` or a ``ChangeSet`` of requests (which the
service runs atomically). Requests are read strictly (a malformed one is refused with a message fit
for the client); answers can be read leniently (as far as they go). CRLF and LF line ends are both
accepted, as hand-written clients send both. Shapes: "Execute batch operations using the Web API"
(MicrosoftDocs/powerapps-docs,
powerapps-docs/developer/data-platform/webapi/execute-batch-operations-using-web-api.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus

from bridge.wire.multipart import (
    MultipartError,
    boundary_of,
    headers_text,
    join,
    new_boundary,
    read_headers,
    split,
    split_lenient,
    trim_line_breaks,
)

BatchSyntaxError = MultipartError  # what a malformed $batch raises
_REQUEST_LINE = re.compile(r"^([A-Z]+)[ \t]+(\S+)(?:[ \t]+HTTP/1\.[01])?[ \t]*$")
_STATUS_LINE = re.compile(r"^HTTP/1\.[01][ \t]+(\d{3})")
_PHRASES = {s.value: s.phrase for s in HTTPStatus}
MAX_OPERATIONS = 1000  # both services refuse a batch of more requests
_PART_HEAD = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"


@dataclass(slots=True)
class BatchRequest:
    method: str
    url: str
    headers: dict[str, str]  # lower-cased names when read
    body: bytes
    content_id: str | None = None


@dataclass(slots=True)
class ChangeSet:
    requests: list[BatchRequest] = field(default_factory=list)


@dataclass(slots=True)
class BatchResponse:
    status: int
    headers: dict[str, str]  # lower-cased names when read
    body: bytes = b""
    content_id: str | None = None


def _is_multipart(content_type: str) -> bool:
    return content_type.lower().startswith("multipart/mixed")


# ---------------------------------------------------------------- requests
def _request_part(req: BatchRequest) -> str:
    cid = f"Content-ID: {req.content_id}\r\n" if req.content_id is not None else ""
    head = "".join(f"{name}: {value}\r\n" for name, value in req.headers.items())
    return f"{_PART_HEAD}{cid}\r\n{req.method.upper()} {req.url} HTTP/1.1\r\n{head}\r\n{req.body.decode()}"


def _changeset_part(requests: Sequence[BatchRequest]) -> str:
    inner = new_boundary("changeset")
    body = join(inner, (_request_part(r) for r in requests))
    return f"Content-Type: multipart/mixed; boundary={inner}\r\n\r\n{body}"


def write_requests(parts: Sequence[BatchRequest | ChangeSet]) -> tuple[str, bytes]:
    """(Content-Type, body) of a batch request."""
    if not parts:
        raise ValueError("a batch needs at least one operation")
    boundary = new_boundary("batch")
    chunks = (_changeset_part(p.requests) if isinstance(p, ChangeSet) else _request_part(p) for p in parts)
    return f"multipart/mixed; boundary={boundary}", (join(boundary, chunks) + "\r\n").encode("utf-8")


def _read_request(mime: dict[str, str], http: str) -> BatchRequest:
    """One request of a batch from its MIME headers and what follows them."""
    if mime.get("content-type", "").split(";")[0].strip().lower() != "application/http":
        raise BatchSyntaxError("Each batch operation must have Content-Type: application/http.")
    http = http.lstrip("\r\n")
    line, _, rest = http.partition("\n")
    rm = _REQUEST_LINE.match(line.rstrip("\r"))
    if rm is None:
        raise BatchSyntaxError(f"Malformed request line in batch part: '{line.strip()}'.")
    headers, body = read_headers(rest)
    return BatchRequest(
        rm.group(1), rm.group(2), headers, trim_line_breaks(body).encode(), mime.get("content-id")
    )


def parse_batch(body: bytes, content_type: str) -> list[BatchRequest | ChangeSet]:
    """Read a batch request; raises ``BatchSyntaxError`` with a message fit for the client."""
    boundary = boundary_of(content_type)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BatchSyntaxError("The batch body is not valid UTF-8.") from exc
    parts: list[BatchRequest | ChangeSet] = []
    count = 0
    for raw in split(text, boundary):
        mime, inner = read_headers(raw)
        ctype = mime.get("content-type", "")
        if _is_multipart(ctype):
            changeset = ChangeSet()
            for sub in split(inner, boundary_of(ctype)):
                sub_mime, sub_http = read_headers(sub)
                if sub_mime.get("content-type", "").lower().startswith("multipart/"):
                    raise BatchSyntaxError("A change set cannot contain another change set.")
                req = _read_request(sub_mime, sub_http)
                if req.method == "GET":
                    raise BatchSyntaxError("GET requests are not allowed within change sets.")
                changeset.requests.append(req)
            parts.append(changeset)
            count += len(changeset.requests)
        else:
            parts.append(_read_request(mime, inner))
            count += 1
    if count > MAX_OPERATIONS:
        raise BatchSyntaxError(f"The batch contains {count} requests; at most {MAX_OPERATIONS} are allowed.")
    return parts


# ---------------------------------------------------------------- responses
def _response_part(resp: BatchResponse) -> str:
    head = _PART_HEAD + (f"Content-ID: {resp.content_id}\r\n" if resp.content_id is not None else "")
    status = f"HTTP/1.1 {resp.status} {_PHRASES.get(resp.status, '')}".rstrip()
    return f"{head}\r\n{status}\r\n{headers_text(resp.headers.items())}\r\n{resp.body.decode('utf-8')}"


def write_batch(
    results: Sequence[BatchResponse | list[BatchResponse]], boundary: str | None = None
) -> tuple[str, bytes]:
    """(Content-Type, body) of a batch response. A list is a change set's responses; a failed change
    set is given as its single error ``BatchResponse``."""
    boundary = boundary or new_boundary("batchresponse")
    chunks: list[str] = []
    for item in results:
        if isinstance(item, list):
            inner = new_boundary("changesetresponse")
            body = join(inner, (_response_part(r) for r in item))
            chunks.append(f"Content-Type: multipart/mixed; boundary={inner}\r\n\r\n{body}")
        else:
            chunks.append(_response_part(item))
    return f"multipart/mixed; boundary={boundary}", (join(boundary, chunks) + "\r\n").encode("utf-8")


def _read_response(mime: dict[str, str], http: str, strict: bool) -> BatchResponse:
    line, _, rest = http.lstrip("\r\n").partition("\n")
    match = _STATUS_LINE.match(line.strip())
    if match is None:
        raise BatchSyntaxError(f"$batch part without a status line: {line[:80]!r}")
    headers, body = read_headers(rest, strict=strict)
    return BatchResponse(
        int(match.group(1)), headers, trim_line_breaks(body).encode(), mime.get("content-id")
    )


def parse_batch_response(
    body: bytes | str, content_type: str, *, lenient: bool = False
) -> list[BatchResponse | list[BatchResponse]]:
    """Read a batch response; a list is a change set's responses. ``lenient`` reads an answer as far
    as it goes (no closing delimiter needed, odd header lines skipped, blank parts dropped)."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    return _responses(text, boundary_of(content_type), lenient)


def _responses(text: str, boundary: str, lenient: bool) -> list[BatchResponse | list[BatchResponse]]:
    out: list[BatchResponse | list[BatchResponse]] = []
    for raw in split_lenient(text, boundary) if lenient else split(text, boundary):
        mime, inner = read_headers(raw, strict=not lenient)
        ctype = mime.get("content-type", "")
        if _is_multipart(ctype):
            out.append([r for r in _responses(inner, boundary_of(ctype), lenient) if not isinstance(r, list)])
        else:
            out.append(_read_response(mime, inner, not lenient))
    return out
