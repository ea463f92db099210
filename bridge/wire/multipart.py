"""``multipart/mixed`` (RFC 2046) as OData ``$batch`` uses it: the boundary of a Content-Type, the
parts between delimiter lines, the header block of a part, and the body written back.

Hand-written rather than the standard library's ``email`` parser or aiohttp's ``MultipartReader``:
both are several times slower on a 60-part batch (``python -m bench.multipart``; figures in
docs/performance.md), and this runs for every ``$batch`` on both sides of the link. Delimiters are
found with plain string search: the boundary is new in every body, so a regular expression would be
compiled for each one and tried at every character.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

# RFC 9110 token characters: what a header name may be made of.
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class MultipartError(ValueError):
    """A body that is not well-formed multipart/mixed; the message is fit for the client."""


def boundary_of(content_type: str) -> str:
    """The ``boundary`` parameter of a multipart/mixed Content-Type."""
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/mixed":
        raise MultipartError("The content type of a $batch request must be multipart/mixed.")
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "boundary" and value.strip():
            return value.strip().strip('"')
    raise MultipartError("The multipart/mixed content type has no boundary.")


def new_boundary(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4()}"


def _delimiter(text: str, at: int, mark: str) -> tuple[int, int, int, bool] | None:
    """The delimiter line whose ``mark`` ("--boundary") is at ``at``, if it is one: (where it starts,
    taking the line break before it; where its dashes and blanks end; the length of the line break
    after it, 0 at the end of the text; whether it is the closing one). None when ``mark`` is not at
    a line start or more than "--" and blanks follow it on its line."""
    if at and text[at - 1] != "\n":
        return None
    begin = at - 2 if at >= 2 and text[at - 2] == "\r" else max(at - 1, 0)
    end = at + len(mark)
    closing = text.startswith("--", end)
    end += 2 if closing else 0
    while end < len(text) and text[end] in " \t":
        end += 1
    line_break = 2 if text.startswith("\r\n", end) else 1 if text.startswith("\n", end) else 0
    if not line_break and end != len(text):
        return None
    return begin, end, line_break, closing


def split(text: str, boundary: str) -> list[str]:
    """The parts between delimiter lines, up to the closing one (a request: anything else is
    refused). A delimiter takes the line break before it and the one after it, so two delimiters
    never share one."""
    mark = "--" + boundary
    parts: list[str] = []
    start: int | None = None
    taken = 0  # a line break the last delimiter took cannot start the next one
    at = text.find(mark)
    while at != -1:
        found = _delimiter(text, at, mark)
        if found is not None and found[0] >= taken:
            begin, end, line_break, closing = found
            if start is not None:
                parts.append(text[start:begin])
            if closing:
                return parts
            start = taken = end + line_break
        at = text.find(mark, at + 1)
    raise MultipartError(f"The batch body has no closing delimiter '--{boundary}--'.")


def split_lenient(text: str, boundary: str) -> list[str]:
    """The non-blank parts after the first delimiter line, leading line breaks dropped (an answer:
    read as far as it goes, a missing closing delimiter or text after it tolerated; the grammar is
    ``(?:^|\\r?\\n)--boundary(?:--)?[ \\t]*(?=\\r?\\n|$)``)."""
    mark = "--" + boundary
    pieces: list[str] = []
    after: int | None = None  # where the last delimiter ended (None: still in the preamble)
    at = text.find(mark)
    while at != -1:
        found = _delimiter(text, at, mark)
        if found is not None:
            if after is not None:
                pieces.append(text[after : found[0]])
            after = found[1]
        at = text.find(mark, at + 1)
    if after is not None:
        pieces.append(text[after:])
    return [p.lstrip("\r\n") for p in pieces if p.strip()]


def read_headers(text: str, *, strict: bool = True) -> tuple[dict[str, str], str]:
    """Header lines (names lower-cased) up to the first empty line (CRs only), and the text after
    it. A line that is no ``name: value`` header is refused, or skipped when not ``strict``."""
    # Fast path: the block ends at the first "\n\n" or "\n\r\n", its lines read after one split.
    # Anything else (no such end, a line of CRs inside the block) goes line by line.
    crlf = text.find("\n\r\n")
    lf = text.find("\n\n", 0, len(text) if crlf == -1 else crlf + 1)
    end = crlf if lf == -1 else lf
    if end == -1 or text[0] in "\r\n":
        return _read_headers_by_line(text, strict)
    headers: dict[str, str] = {}
    for raw in text[:end].split("\n"):
        line = raw.rstrip("\r")
        name, sep, value = line.partition(":")
        if sep and name and _TOKEN.issuperset(name):
            headers[name.lower()] = value.strip(" \t")
        elif not line:
            return _read_headers_by_line(text, strict)
        elif strict:
            raise MultipartError(f"Malformed header line in batch part: '{line}'.")
    return headers, text[end + (2 if end == lf else 3) :]


def _read_headers_by_line(text: str, strict: bool) -> tuple[dict[str, str], str]:
    headers: dict[str, str] = {}
    pos = 0
    while True:
        nl = text.find("\n", pos)
        line = text[pos : nl if nl >= 0 else len(text)].rstrip("\r")
        if not line:
            return headers, (text[nl + 1 :] if nl >= 0 else "")
        _add_header(headers, line, strict)
        if nl < 0:
            return headers, ""
        pos = nl + 1


def _add_header(headers: dict[str, str], line: str, strict: bool) -> None:
    name, sep, value = line.partition(":")
    if sep and name and _TOKEN.issuperset(name):
        headers[name.lower()] = value.strip(" \t")
    elif strict:
        raise MultipartError(f"Malformed header line in batch part: '{line}'.")


def trim_line_breaks(text: str) -> str:
    """``text`` without the line breaks (CRLF or LF) at its end; a stray CR stays."""
    while text.endswith("\n"):
        text = text[:-2] if text.endswith("\r\n") else text[:-1]
    return text


def join(boundary: str, parts: Iterable[str]) -> str:
    """The parts, each after a delimiter line, then the closing delimiter (no line break after it)."""
    return "".join(f"--{boundary}\r\n{part}\r\n" for part in parts) + f"--{boundary}--"


def headers_text(headers: Iterable[tuple[str, str]]) -> str:
    """Header lines, each ending with CRLF."""
    return "".join(f"{name}: {value}\r\n" for name, value in headers)
