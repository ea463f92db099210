"""Raw HTTP/1.1 over a socket, for requests a client library refuses to send (header bytes that are
not ASCII, a body that lies about its encoding, a sender that stops half-way)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class RawAnswer:
    status: int  # 0: the connection was closed without an answer
    headers: dict[str, str]
    body: bytes
    closed: bool  # the server closed the connection after answering


def request_bytes(
    method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes = b"", *, chunked: bool = False
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
    lines += [name + b": " + value for name, value in headers]
    if chunked:
        lines.append(b"Transfer-Encoding: chunked")
        chunks = [body[i : i + 4096] for i in range(0, len(body), 4096)]
        framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
        return b"\r\n".join(lines) + b"\r\n\r\n" + framed
    if not any(name.lower() == b"content-length" for name, _ in headers):
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def read_answer(reader: asyncio.StreamReader) -> RawAnswer:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return RawAnswer(0, {}, b"", True)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    closed = headers.get("connection", "").lower() == "close"
    if closed:
        try:
            rest = await reader.read()  # the server must close: EOF, not a hang
        except ConnectionError:
            rest = b""
        assert rest == b"", rest[:200]
    return RawAnswer(int(status_line.split(" ")[1]), headers, body, closed)


async def send_raw(host: str, port: int, data: bytes, *, then: bytes | None = None) -> RawAnswer:
    """Send ``data``, read the answer; ``then`` (more body) is sent only after it, if the server
    still listens (a slow sender whose first bytes were already refused)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        try:
            writer.write(data)
            await writer.drain()
        except ConnectionError:
            pass  # the server answered and closed while we were still sending: read what it said
        answer = await read_answer(reader)
        if then is not None and not answer.closed:
            writer.write(then)
            await writer.drain()
        return answer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def gzip_bomb(expanded: int) -> bytes:
    """A gzip body of ``expanded`` zero bytes (about a thousandth of that on the wire)."""
    stream = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    parts = [
        stream.compress(block[: min(len(block), expanded - done)]) for done in range(0, expanded, len(block))
    ]
    return b"".join(parts) + stream.flush()


def deflate_bomb(expanded: int) -> bytes:
    return zlib.compress(bytes(expanded), 9)


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data)
