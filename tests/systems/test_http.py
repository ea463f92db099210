"""The HTTP client: retries, tokens and deadlines against canned answers (``MockTransport``: no
server, no TLS), and the aiohttp transport against a tiny real server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from bridge.core.deadline import deadline_scope
from bridge.core.errors import RejectedError, RetryableError
from bridge.systems.dataverse import DataverseClient
from bridge.systems.fno import FnoClient
from bridge.systems.http import HttpClient, RetryPolicy
from bridge.systems.transport import AiohttpTransport, MockTransport, Request, Response

FAST = RetryPolicy(attempts=4, initial=0.01, maximum=0.05, jitter=0.1)


# ---------------------------------------------------------------- retries against canned answers
class FakeTokens:
    def __init__(self) -> None:
        self.tokens = 0
        self.refreshes = 0

    async def token(self) -> str:
        self.tokens += 1
        return "old"

    async def refresh(self) -> str:
        self.refreshes += 1
        return "fresh"


class Script:
    """Answers requests with scripted (status, body, headers, delay) in turn; the last one repeats.
    ``transport`` hands them to a client without any server (``MockTransport``)."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, Any, dict[str, str], float]] = []
        self.transport = MockTransport(self.answer)

    @property
    def seen(self) -> list[Request]:
        return self.transport.requests

    @property
    def auth(self) -> list[str]:
        return [r.headers.get("Authorization", "") for r in self.seen]

    def then(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None, delay: float = 0.0
    ) -> None:
        self.steps.append((status, body, headers or {}, delay))

    async def answer(self, request: Request) -> Response:
        status, body, headers, delay = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if delay:
            await asyncio.sleep(delay)
        return Response.json(status, body, headers)


URL = "https://cds.example/api/"


@pytest.fixture
def script() -> Script:
    return Script()


def client(script: Script, system: str = "cds", **options: Any) -> HttpClient:
    return HttpClient(system, URL, FakeTokens(), transport=script.transport, retry=FAST, **options)


async def test_a_request_reaches_the_transport_whole(script: Script) -> None:
    """What leaves the process: absolute URL, query, the bearer token, OData headers, the JSON body."""
    script.then(201, {"id": 1}, {"etag": 'W/"7"'})
    async with client(script) as http:
        resp = await http.request("POST", "things", params={"a": "1"}, json_body={"n": 1}, headers={"X": "y"})
    [sent] = script.seen
    assert (sent.method, sent.url, sent.params, sent.body) == (
        "POST",
        URL + "things",
        {"a": "1"},
        b'{"n": 1}',
    )
    assert sent.headers["Authorization"] == "Bearer old" and sent.headers["OData-Version"] == "4.0"
    assert sent.headers["Content-Type"] == "application/json" and sent.headers["X"] == "y"
    assert resp.status == 201 and resp.body == {"id": 1}
    assert resp.headers.get("ETag") == 'W/"7"'  # response headers are case-insensitive


async def test_retryable_answers_are_retried_waiting_at_least_retry_after(script: Script) -> None:
    script.then(429, {"error": {"message": "slow down"}}, {"Retry-After": "0.3"})
    script.then(200, {"value": []})
    async with client(script) as http:
        started = time.monotonic()
        resp = await http.request("GET", "things")
        assert resp.status == 200 and len(script.seen) == 2
        assert time.monotonic() - started >= 0.3


async def test_rejections_are_never_retried(script: Script) -> None:
    script.then(400, {"error": {"code": "0x80040203", "message": "msdyn_name is too long"}})
    async with client(script) as http:
        with pytest.raises(RejectedError, match="too long") as info:
            await http.request("POST", "things", json_body={"a": 1})
    assert len(script.seen) == 1 and info.value.status == 400


async def test_401_retries_once_with_a_fresh_token_then_rejects(script: Script) -> None:
    script.then(401)
    script.then(200, {"ok": True})
    tokens = FakeTokens()
    async with HttpClient("cds", URL, tokens, transport=script.transport, retry=FAST) as http:
        assert (await http.request("GET", "x")).status == 200
        assert script.auth == ["Bearer old", "Bearer fresh"] and tokens.refreshes == 1
        script.steps.clear()
        script.then(401)
        script.then(401)
        with pytest.raises(RejectedError) as info:
            await http.request("GET", "x")
    assert info.value.status == 401 and tokens.refreshes == 2 and len(script.seen) == 4


async def test_attempts_are_bounded(script: Script) -> None:
    script.then(500, {"error": {"message": "boom"}})
    async with client(script, "scm") as http:
        with pytest.raises(RetryableError, match="boom"):
            await http.request("GET", "x")
    assert len(script.seen) == FAST.attempts


async def test_deadline_stops_instead_of_waiting_past_it(script: Script) -> None:
    script.then(503, None, {"Retry-After": "5"})
    async with client(script, "scm") as http:
        started = time.monotonic()
        with deadline_scope(0.5), pytest.raises(RetryableError) as info:
            await http.request("GET", "x")
    assert time.monotonic() - started < 0.5 and len(script.seen) == 1
    assert info.value.retry_after == 5.0


async def test_request_timeout_is_bounded_by_the_deadline(script: Script) -> None:
    script.then(200, {"ok": True}, delay=0.6)
    async with client(script, "scm", timeout=10) as http:
        started = time.monotonic()
        with deadline_scope(0.3), pytest.raises(RetryableError, match="timed out"):
            await http.request("GET", "x")
    assert time.monotonic() - started < 1.0
    assert 0 < script.seen[0].timeout <= 0.3  # the transport was given what was left


async def test_query_follows_next_links(script: Script) -> None:
    script.then(200, {"value": [{"n": 1}], "@odata.nextLink": URL + "things?$skiptoken=2"})
    script.then(200, {"value": [{"n": 2}]})
    async with DataverseClient(URL, FakeTokens(), retry=FAST, transport=script.transport) as cds:
        assert await cds.query("things", filter="n gt 0") == [{"n": 1}, {"n": 2}]
    first, second = script.seen
    assert first.params is not None and first.params["$filter"] == "n gt 0"
    assert first.headers["Prefer"].startswith("odata.maxpagesize=")
    assert second.url == URL + "things?$skiptoken=2" and second.params is None


async def test_etags_are_read_whatever_the_case_of_their_header(script: Script) -> None:
    script.then(204, None, {"etag": 'W/"9"'})
    async with FnoClient(URL, FakeTokens(), retry=FAST, transport=script.transport) as fno:
        assert await fno.update("Things", {"dataAreaId": "usmf", "Id": "1"}, {"a": 1}) == 'W/"9"'


# ---------------------------------------------------------------- the aiohttp transport, over real HTTP
class Server:
    """A tiny HTTP server: answers ``answer`` (or waits ``delay`` first) and keeps what it saw."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.delay = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.method, request.path_qs, dict(request.headers), await request.read()))
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.json_response({"ok": True}, status=201, headers={"ETag": 'W/"1"'})


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, str]]:
    fake = Server()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield fake, f"http://127.0.0.1:{port}/api/"
    await runner.cleanup()


async def test_the_aiohttp_transport_sends_the_request_and_reads_the_answer(
    server: tuple[Server, str],
) -> None:
    fake, url = server
    async with HttpClient("cds", url, FakeTokens(), retry=FAST) as http:
        assert isinstance(http.transport, AiohttpTransport)
        resp = await http.request("PATCH", "things(1)", params={"$select": "a"}, json_body={"a": 1})
    [(method, path, headers, body)] = fake.seen
    assert (method, path, body) == ("PATCH", "/api/things(1)?$select=a", b'{"a": 1}')
    assert headers["Authorization"] == "Bearer old" and headers["OData-MaxVersion"] == "4.0"
    assert resp.status == 201 and resp.body == {"ok": True} and resp.headers.get("etag") == 'W/"1"'


async def test_a_slow_server_is_a_retryable_timeout(server: tuple[Server, str]) -> None:
    fake, url = server
    fake.delay = 0.6
    async with HttpClient("scm", url, FakeTokens(), timeout=10, retry=FAST) as http:
        with deadline_scope(0.3), pytest.raises(RetryableError, match="timed out"):
            await http.request("GET", "x")


async def test_connection_refused_is_retryable() -> None:
    async with HttpClient(
        "cds", "http://127.0.0.1:9/", FakeTokens(), retry=RetryPolicy(attempts=2, initial=0.01)
    ) as http:
        with pytest.raises(RetryableError, match="connection failed"):
            await http.request("GET", "x")
