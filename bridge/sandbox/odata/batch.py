"""OData ``$batch`` (multipart/mixed) bodies: parsing requests, writing responses.

A batch is a list of parts; a part is one ``BatchRequest`` or a ``ChangeSet`` of requests (which the
service runs atomically). Accepts CRLF or LF line ends, as hand-written clients send both.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus

_HEADER = re.compile(r"^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$")
_REQUEST_LINE = re.compile(r"^([A-Z]+)[ \t]+(\S+)(?:[ \t]+HTTP/1\.[01])?[ \t]*$")
MAX_OPERATIONS = 1000


class BatchSyntaxError(ValueError):
    """A ``$batch`` body that is not a well-formed multipart/mixed OData batch."""


@dataclass
class BatchRequest:
    method: str
    url: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    content_id: str | None = None


@dataclass
class ChangeSet:
    requests: list[BatchRequest] = field(default_factory=list)


@dataclass
class BatchResponse:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    content_id: str | None = None


def boundary_of(content_type: str) -> str:
    """The ``boundary`` parameter of a multipart/mixed Content-Type."""
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/mixed":
        raise BatchSyntaxError("The content type of a $batch request must be multipart/mixed.")
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "boundary" and value.strip():
            return value.strip().strip('"')
    raise BatchSyntaxError("The multipart/mixed content type has no boundary.")


def _split(text: str, boundary: str) -> list[str]:
    """The parts between delimiter lines, up to the closing one. A delimiter is "--boundary" at a line
    start, taking the line break before it, then "--" on the closing one, blanks, and the line's
    break (or the end). Found by plain string search: the boundary is new in every batch, so a
    regular expression would be compiled for each one and tried at every character."""
    mark = "--" + boundary
    parts: list[str] = []
    start: int | None = None
    taken = 0  # delimiters do not overlap: a line break one of them took cannot start the next
    at = text.find(mark)
    while at != -1:
        begin = at - 2 if at >= 2 and text[at - 2 : at] == "\r\n" else max(at - 1, 0)
        if (at == 0 or text[at - 1] == "\n") and begin >= taken:
            end = at + len(mark)
            closing = text.startswith("--", end)
            end += 2 if closing else 0
            while end < len(text) and text[end] in " \t":
                end += 1
            line_break = 2 if text.startswith("\r\n", end) else 1 if text.startswith("\n", end) else 0
            if line_break or end == len(text):
                if start is not None:
                    parts.append(text[start:begin])
                if closing:
                    return parts
                start = taken = end + line_break
        at = text.find(mark, at + 1)
    raise BatchSyntaxError(f"The batch body has no closing delimiter '--{boundary}--'.")


def _headers_and_body(text: str) -> tuple[dict[str, str], str]:
    """Header lines up to the first empty line, then the rest as the body."""
    headers: dict[str, str] = {}
    pos = 0
    while True:
        nl = text.find("\n", pos)
        line = text[pos : nl if nl >= 0 else len(text)].rstrip("\r")
        if not line:
            return headers, (text[nl + 1 :] if nl >= 0 else "")
        hm = _HEADER.match(line)
        if hm is None:
            raise BatchSyntaxError(f"Malformed header line in batch part: '{line}'.")
        headers[hm.group(1).lower()] = hm.group(2)
        if nl < 0:
            return headers, ""
        pos = nl + 1


def _request(part: str) -> BatchRequest:
    mime, http = _headers_and_body(part)
    if mime.get("content-type", "").split(";")[0].strip().lower() != "application/http":
        raise BatchSyntaxError("Each batch operation must have Content-Type: application/http.")
    http = http.lstrip("\r\n")
    line, _, rest = http.partition("\n")
    rm = _REQUEST_LINE.match(line.rstrip("\r"))
    if rm is None:
        raise BatchSyntaxError(f"Malformed request line in batch part: '{line.strip()}'.")
    headers, body = _headers_and_body(rest)
    body = re.sub(r"(?:\r?\n)+$", "", body)
    return BatchRequest(rm.group(1), rm.group(2), headers, body.encode(), mime.get("content-id"))


def parse_batch(body: bytes, content_type: str) -> list[BatchRequest | ChangeSet]:
    """Parse a ``$batch`` body; raises ``BatchSyntaxError`` with a message fit for the client."""
    boundary = boundary_of(content_type)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BatchSyntaxError("The batch body is not valid UTF-8.") from exc
    parts: list[BatchRequest | ChangeSet] = []
    count = 0
    for raw in _split(text, boundary):
        mime, inner = _headers_and_body(raw)
        ctype = mime.get("content-type", "")
        if ctype.lower().startswith("multipart/mixed"):
            changeset = ChangeSet()
            for sub in _split(inner, boundary_of(ctype)):
                sub_mime, _ = _headers_and_body(sub)
                if sub_mime.get("content-type", "").lower().startswith("multipart/"):
                    raise BatchSyntaxError("A change set cannot contain another change set.")
                req = _request(sub)
                if req.method == "GET":
                    raise BatchSyntaxError("GET requests are not allowed within change sets.")
                changeset.requests.append(req)
            parts.append(changeset)
            count += len(changeset.requests)
        else:
            parts.append(_request(raw))
            count += 1
    if count > MAX_OPERATIONS:
        raise BatchSyntaxError(f"The batch contains {count} requests; at most {MAX_OPERATIONS} are allowed.")
    return parts


def _response_part(resp: BatchResponse) -> str:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if resp.content_id is not None:
        lines.append(f"Content-ID: {resp.content_id}")
    reason = HTTPStatus(resp.status).phrase if resp.status in HTTPStatus._value2member_map_ else ""
    lines += ["", f"HTTP/1.1 {resp.status} {reason}".rstrip()]
    lines += [f"{k}: {v}" for k, v in resp.headers.items()]
    lines += ["", resp.body.decode("utf-8")]
    return "\r\n".join(lines)


def write_batch(
    results: Sequence[BatchResponse | list[BatchResponse]], boundary: str | None = None
) -> tuple[str, bytes]:
    """(Content-Type, body) of a batch response. A list is a change set's responses; a failed change
    set is given as its single error ``BatchResponse``."""
    boundary = boundary or f"batchresponse_{uuid.uuid4()}"
    chunks: list[str] = []
    for item in results:
        if isinstance(item, list):
            inner = f"changesetresponse_{uuid.uuid4()}"
            body = "".join(f"--{inner}\r\n{_response_part(r)}\r\n" for r in item) + f"--{inner}--"
            chunks.append(
                f"--{boundary}\r\nContent-Type: multipart/mixed; boundary={inner}\r\n\r\n{body}\r\n"
            )
        else:
            chunks.append(f"--{boundary}\r\n{_response_part(item)}\r\n")
    chunks.append(f"--{boundary}--\r\n")
    return f"multipart/mixed; boundary={boundary}", "".join(chunks).encode("utf-8")


def parse_batch_response(body: bytes, content_type: str) -> list[BatchResponse | list[BatchResponse]]:
    """Read a batch response back (tests and clients in this repository use it)."""
    out: list[BatchResponse | list[BatchResponse]] = []
    text = body.decode("utf-8")
    for raw in _split(text, boundary_of(content_type)):
        mime, inner = _headers_and_body(raw)
        if mime.get("content-type", "").lower().startswith("multipart/mixed"):
            sub = _split(inner, boundary_of(mime["content-type"]))
            out.append([_response(s) for s in sub])
        else:
            out.append(_response(raw))
    return out


def _response(part: str) -> BatchResponse:
    mime, http = _headers_and_body(part)
    http = http.lstrip("\r\n")
    line, _, rest = http.partition("\n")
    status = int(line.split()[1])
    headers, body = _headers_and_body(rest)
    return BatchResponse(status, headers, re.sub(r"(?:\r?\n)+$", "", body).encode(), mime.get("content-id"))


def header(headers: Mapping[str, str], name: str) -> str | None:
    return headers.get(name.lower())
