"""Reading a webhook body after its caller is authenticated: the raw bytes, capped, decompressed here.

aiohttp's own decompression is off for the bridge's server (``SERVER_HANDLER_ARGS``): with it on, the
parser inflates a body as its bytes arrive, before any handler has checked a key, so a 1 MB gzip body
that expands to 1 GB cost ~0.6 s of CPU even when answered 401. Here the body is read raw (still
compressed), at most ``limit`` bytes of it, and inflated incrementally with zlib's ``max_length``, so
at most ``limit + 1`` bytes are ever produced: past that the answer is 413.

``lingering_time=0``: after a handler answers without reading the whole body (401, 413), aiohttp would
otherwise read and discard the rest of it for up to 10 s; with 0 it closes the connection instead.
"""

from __future__ import annotations

import zlib
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from bridge.core.errors import PayloadError

# For web.Application(handler_args=...): every server built from the app gets them.
SERVER_HANDLER_ARGS: dict[str, Any] = {"auto_decompress": False, "lingering_time": 0}
READ_CHUNK = 64 * 1024
GZIP_WBITS = 16 + zlib.MAX_WBITS
MAX_GZIP_MEMBERS = 64  # concatenated gzip members are legal; thousands of empty ones are an attack


class BodyTooLarge(PayloadError):
    """More than the limit, compressed or once decompressed (-> 413)."""


class BodyNotDecodable(PayloadError):
    """A Content-Encoding the body does not match (-> 400)."""


class EncodingNotSupported(PayloadError):
    """A Content-Encoding other than identity, gzip or deflate (-> 415)."""


class DecompressionCount:
    """How many bodies were decompressed (tests check that no unauthenticated body ever is)."""

    def __init__(self) -> None:
        self.bodies = 0


DECOMPRESSED = DecompressionCount()


def _encoding(request: web.Request) -> str:
    values = [v.strip().lower() for v in request.headers.getall("Content-Encoding", [])]
    codings = [c.strip() for v in values for c in v.split(",") if c.strip() and c.strip() != "identity"]
    if not codings:
        return "identity"
    if len(codings) > 1 or codings[0] not in ("gzip", "x-gzip", "deflate"):
        raise EncodingNotSupported(
            f"Content-Encoding {', '.join(codings)!r} is not supported (identity, gzip or deflate)"
        )
    return "gzip" if codings[0] == "x-gzip" else codings[0]


async def _raw(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(f"body of {request.content_length} bytes; at most {limit} bytes accepted")
    body = bytearray()
    try:
        while chunk := await request.content.read(READ_CHUNK):
            body += chunk
            if len(body) > limit:  # chunked bodies carry no Content-Length
                raise BodyTooLarge(f"body of more than {limit} bytes; at most {limit} bytes accepted")
    except (web.RequestPayloadError, HttpProcessingError) as exc:  # e.g. broken chunked framing
        raise BodyNotDecodable(f"<body>: cannot be read: {exc}") from None
    return bytes(body)


def _deflate_wbits(data: bytes) -> int:
    """'deflate' is meant to be zlib-wrapped (RFC 9110) but some senders send raw deflate."""
    if len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0:
        return zlib.MAX_WBITS
    return -zlib.MAX_WBITS


def inflate(data: bytes, encoding: str, limit: int) -> bytes:
    """Decompress ``data`` producing at most ``limit`` bytes; more is ``BodyTooLarge``."""
    DECOMPRESSED.bodies += 1
    wbits = GZIP_WBITS if encoding == "gzip" else _deflate_wbits(data)
    out = bytearray()
    pending, members = data, 0
    try:
        while pending:
            members += 1
            if members > MAX_GZIP_MEMBERS:
                raise BodyNotDecodable(f"<body>: more than {MAX_GZIP_MEMBERS} gzip members")
            stream = zlib.decompressobj(wbits)
            while pending and not stream.eof:
                out += stream.decompress(pending, limit + 1 - len(out))
                if len(out) > limit:
                    raise BodyTooLarge(f"body of more than {limit} bytes once decompressed; at most {limit}")
                pending = stream.unconsumed_tail
            if not stream.eof:
                raise BodyNotDecodable(f"<body>: {encoding} data ends early")
            pending = stream.unused_data
            if encoding != "gzip" and pending:
                raise BodyNotDecodable(f"<body>: {len(pending)} bytes after the {encoding} data")
    except zlib.error as exc:
        raise BodyNotDecodable(f"<body>: cannot be decoded ({encoding}): {exc}") from None
    return bytes(out)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, decoded per its Content-Encoding, at most ``limit`` bytes both before and after.
    Call only once the caller is authenticated."""
    encoding = _encoding(request)  # before reading: an unsupported coding is refused unread
    raw = await _raw(request, limit)
    return raw if encoding == "identity" else inflate(raw, encoding, limit)
