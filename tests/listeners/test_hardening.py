"""Issue 18: the webhook endpoints attacked from outside (raw sockets where a client library would
refuse the request). Unauthenticated calls are refused before a byte of their body is read or
decompressed; authenticated compressed bodies are inflated only up to the size limit."""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bridge.listeners.body import DECOMPRESSED, inflate
from bridge.listeners.handlers import MAX_PROBLEMS, bounded
from tests.listeners.payloads import cds_context, data_event
from tests.listeners.rawhttp import deflate_bomb, gzip_bomb, gzipped, request_bytes, send_raw
from tests.listeners.test_handlers import MAX_BODY, SCM_KEY, FakeSink


class ZlibCalls:
    """Every zlib decompressor made in this process (ours and aiohttp's, which uses the same zlib)."""

    def __init__(self) -> None:
        self.made = 0


@pytest.fixture
def zlib_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[ZlibCalls]:
    calls = ZlibCalls()
    real = zlib.decompressobj

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.made += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(zlib, "decompressobj", counting)
    yield calls


def _where(client: TestClient[Any, Any]) -> tuple[str, int]:
    return str(client.host), int(client.port or 0)


async def _raw(client: TestClient[Any, Any], data: bytes, **kw: Any) -> Any:
    host, port = _where(client)
    return await send_raw(host, port, data, **kw)


@pytest.mark.parametrize("key", [b"\xff\xfe\xfd", b"caf\xc3\xa9-\xe9", b"\x80" * 5000])
async def test_key_header_that_is_not_utf8_is_a_plain_401(
    client: TestClient[Any, Any], sink: FakeSink, key: bytes
) -> None:
    body = json.dumps(data_event("Update")).encode()
    answer = await _raw(client, request_bytes("POST", "/webhooks/scm", [(b"x-dualwrite-key", key)], body))
    assert answer.status == 401
    assert json.loads(answer.body)["error"]["code"] == "unauthorized"
    assert sink.events == []


async def test_key_in_query_that_is_not_utf8_is_a_plain_401(
    client: TestClient[Any, Any], sink: FakeSink
) -> None:
    body = json.dumps(cds_context("Update")).encode()
    for target in ("/webhooks/cds?code=%FF%FE", "/webhooks/cds?code=%ED%A0%80", "/webhooks/cds?code=\xff"):
        answer = await _raw(client, request_bytes("POST", target, [], body))
        assert answer.status in (400, 401), target  # 400: aiohttp refused the request line itself
    assert sink.events == []


async def test_unauthenticated_gzip_bomb_is_refused_unread_and_never_decompressed(
    client: TestClient[Any, Any], sink: FakeSink, zlib_calls: ZlibCalls
) -> None:
    bomb = gzip_bomb(64 << 20)  # 64 MB of zeros in ~64 KB
    before = DECOMPRESSED.bodies
    headers = [(b"x-dualwrite-key", b"wrong-key"), (b"Content-Encoding", b"gzip")]
    answer = await _raw(client, request_bytes("POST", "/webhooks/scm", headers, bomb))
    assert answer.status == 401
    assert answer.closed  # Connection: close, and the server did close (read_answer saw EOF)
    assert zlib_calls.made == 0 and DECOMPRESSED.bodies == before
    assert sink.events == []


async def test_after_a_401_the_rest_of_the_body_is_not_drained(
    client: TestClient[Any, Any], sink: FakeSink
) -> None:
    # 10 MB announced, 1 KB sent: the answer comes at once and the connection is closed, where
    # aiohttp's lingering close would otherwise wait for (and read) the other 10 MB.
    head = request_bytes(
        "POST", "/webhooks/cds?code=wrong", [(b"Content-Length", str(10 << 20).encode())], b"{" * 1024
    )
    answer = await _raw(client, head, then=b"x" * 4096)
    assert answer.status == 401 and answer.closed
    assert sink.events == []


@pytest.mark.parametrize("bomb", [gzip_bomb, deflate_bomb], ids=["gzip", "deflate"])
async def test_authenticated_bomb_is_413_after_inflating_at_most_the_limit(
    client: TestClient[Any, Any], sink: FakeSink, bomb: Any
) -> None:
    encoding = b"gzip" if bomb is gzip_bomb else b"deflate"
    headers = [(b"x-dualwrite-key", SCM_KEY.encode()), (b"Content-Encoding", encoding)]
    before = DECOMPRESSED.bodies
    answer = await _raw(client, request_bytes("POST", "/webhooks/scm", headers, bomb(64 << 20)))
    assert answer.status == 413 and answer.closed
    assert DECOMPRESSED.bodies == before + 1
    assert sink.events == []


def test_inflate_never_produces_more_than_the_limit_plus_one(monkeypatch: pytest.MonkeyPatch) -> None:
    produced: list[int] = []
    real = zlib.decompressobj

    class Watched:
        def __init__(self, wbits: int) -> None:
            self._inner = real(wbits)

        def decompress(self, data: bytes, max_length: int = 0) -> bytes:
            assert max_length > 0  # never unbounded
            out = self._inner.decompress(data, max_length)
            produced.append(len(out))
            return out

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

    monkeypatch.setattr(zlib, "decompressobj", Watched)
    with pytest.raises(Exception, match="once decompressed"):
        inflate(gzip_bomb(32 << 20), "gzip", MAX_BODY)
    assert sum(produced) == MAX_BODY + 1


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzipped),
        ("x-gzip", gzipped),
        ("deflate", zlib.compress),
        ("deflate", lambda d: zlib.compress(d)[2:-4]),  # raw deflate, as some senders do
        ("identity", lambda d: d),
    ],
    ids=["gzip", "x-gzip", "deflate-zlib", "deflate-raw", "identity"],
)
async def test_authenticated_compressed_body_is_decoded_and_submitted(
    client: TestClient[Any, Any], sink: FakeSink, encoding: str, encode: Any
) -> None:
    body = encode(json.dumps(data_event("Update")).encode())
    headers = {"x-dualwrite-key": SCM_KEY, "Content-Encoding": encoding}
    resp = await client.post("/webhooks/scm", data=body, headers=headers)
    assert resp.status == 202, await resp.text()
    assert len(sink.events) == 1


@pytest.mark.parametrize(
    ("encoding", "status"),
    [("br", 415), ("zstd", 415), ("gzip, gzip", 415), ("compress", 415), ("gzip", 400)],
)
async def test_unsupported_or_false_encodings_are_4xx(
    client: TestClient[Any, Any], sink: FakeSink, encoding: str, status: int
) -> None:
    headers = {"x-dualwrite-key": SCM_KEY, "Content-Encoding": encoding}
    resp = await client.post("/webhooks/scm", data=json.dumps(data_event("Update")), headers=headers)
    assert resp.status == status, await resp.text()
    assert sink.events == []


async def test_gzip_with_trailing_garbage_or_cut_short_is_400(
    client: TestClient[Any, Any], sink: FakeSink
) -> None:
    good = gzipped(json.dumps(data_event("Update")).encode())
    headers = {"x-dualwrite-key": SCM_KEY, "Content-Encoding": "gzip"}
    for body in (good + b"garbage!", good[:-10], good + gzipped(b"") * 100):
        resp = await client.post("/webhooks/scm", data=body, headers=headers)
        assert resp.status == 400, await resp.text()
    assert sink.events == []


async def test_a_long_refusal_is_capped_in_the_answer_and_the_log(
    client: TestClient[Any, Any], sink: FakeSink, caplog: pytest.LogCaptureFixture
) -> None:
    # Invalid changes whose first problem quotes back a 25,000-character value.
    items = []
    for i in range(2):
        item = data_event("Update")
        item["EventTimeIso8601"] = f"not-a-time-{i}-" + "x" * 25_000
        items.append(item)
    caplog.set_level(logging.WARNING, logger="bridge.listeners.handlers")
    resp = await client.post("/webhooks/scm", data=json.dumps(items), headers={"x-dualwrite-key": SCM_KEY})
    text = await resp.text()
    assert resp.status == 400
    assert len(text) < 4096
    assert all(len(r.getMessage()) < 4096 for r in caplog.records)
    assert sink.events == []


def test_bounded_names_the_first_problems_then_counts_the_rest() -> None:
    problems = "; ".join(f"[{i}].MessageName: Input should be a valid string" for i in range(1000))
    message = bounded(problems)
    assert message.count("Input should be") == MAX_PROBLEMS
    assert message.endswith(f"; and {1000 - MAX_PROBLEMS} more problems")
    assert bounded("x" * 100_000).endswith("...") and len(bounded("x" * 100_000)) < 400
    assert bounded("one; two") == "one; two"
