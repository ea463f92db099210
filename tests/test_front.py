"""The round-robin front of ``dualwrite demo --replicas`` (bridge/front.py): webhooks spread over the
replicas, a replica that does not answer is passed over, a call lost with a replica is a 502, and
bodies, headers and statuses pass through unchanged."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from bridge.front import RoundRobinFront
from bridge.listeners.body import SERVER_HANDLER_ARGS


def _dead_port() -> int:
    """A port nobody listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _replica(name: str, calls: list[tuple[str, str, bytes, str]]) -> web.AppRunner:
    async def handle(request: web.Request) -> web.Response:
        if request.path == "/webhooks/slow":
            await asyncio.sleep(0.3)
        if request.path == "/webhooks/die":
            assert request.transport is not None
            request.transport.abort()  # the process dies with the call in hand
            await asyncio.sleep(1)
        body = await request.read()
        calls.append((name, request.path_qs, body, request.headers.get("Content-Encoding", "")))
        answer = web.Response(status=202, text=f"{name} took it", headers={"X-Replica": name})
        answer.set_cookie("session", name)
        return answer

    app = web.Application(handler_args=SERVER_HANDLER_ARGS)  # as the bridge's: bodies read raw
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


def _url(runner: web.AppRunner) -> str:
    server = runner.addresses[0]
    return f"http://{server[0]}:{server[1]}"


@pytest.fixture
async def rig() -> AsyncIterator[tuple[RoundRobinFront, list[tuple[str, str, bytes, str]]]]:
    calls: list[tuple[str, str, bytes, str]] = []
    a, b = await _replica("a", calls), await _replica("b", calls)
    front = RoundRobinFront([_url(a), f"http://127.0.0.1:{_dead_port()}", _url(b)])
    await front.start()
    yield front, calls
    await front.stop()
    await a.cleanup()
    await b.cleanup()


async def test_webhooks_go_round_robin_and_pass_over_a_replica_that_does_not_answer(
    rig: tuple[RoundRobinFront, list[tuple[str, str, bytes, str]]],
) -> None:
    front, calls = rig
    async with aiohttp.ClientSession() as http:
        for n in range(6):
            async with http.post(f"{front.url}/webhooks/scm?code=k{n}", data=b'{"n": %d}' % n) as resp:
                assert resp.status == 202
                assert resp.headers["X-Replica"] in ("a", "b")
    names = [name for name, *_ in calls]
    assert names.count("a") >= 2 and names.count("b") >= 2  # both take calls; the dead one's go on
    assert [(path, body) for _, path, body, _ in calls] == [
        (f"/webhooks/scm?code=k{n}", b'{"n": %d}' % n) for n in range(6)
    ]
    assert front.passed_over >= 1  # the dead one was tried, then skipped for a moment


async def test_the_dashboard_stays_on_one_replica_and_bodies_pass_byte_for_byte(
    rig: tuple[RoundRobinFront, list[tuple[str, str, bytes, str]]],
) -> None:
    front, calls = rig
    packed = gzip.compress(b'{"big": true}')
    async with aiohttp.ClientSession() as http:
        for _ in range(3):
            async with http.get(f"{front.url}/api/maps") as resp:
                assert resp.status == 202 and resp.cookies["session"].value == "a"
        async with http.post(
            f"{front.url}/webhooks/cds", data=packed, headers={"Content-Encoding": "gzip"}
        ) as resp:
            assert resp.status == 202
    assert [name for name, *_ in calls[:3]] == ["a", "a", "a"]
    assert calls[3][2:] == (packed, "gzip")  # not decompressed on the way: the replica does that


async def test_a_call_lost_with_its_replica_is_a_502_and_the_next_one_goes_elsewhere(
    rig: tuple[RoundRobinFront, list[tuple[str, str, bytes, str]]],
) -> None:
    front, _ = rig
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{front.url}/webhooks/die", data=b"{}") as resp:
            assert resp.status == 502
            assert "lost the call" in await resp.text()
        async with http.post(f"{front.url}/webhooks/scm", data=b"{}") as resp:
            assert resp.status == 202


async def test_with_no_replica_answering_the_front_says_so() -> None:
    front = RoundRobinFront([f"http://127.0.0.1:{_dead_port()}"])
    await front.start()
    try:
        async with aiohttp.ClientSession() as http, http.post(f"{front.url}/webhooks/scm") as resp:
            assert resp.status == 503
            assert await resp.text() == "no bridge replica answers"
    finally:
        await front.stop()


async def test_the_calls_in_hand_are_shown_with_their_replica(
    rig: tuple[RoundRobinFront, list[tuple[str, str, bytes, str]]],
) -> None:
    front, _ = rig
    async with aiohttp.ClientSession() as http:
        call = asyncio.create_task(http.post(f"{front.url}/webhooks/slow", data=b"{}"))
        for _ in range(100):
            if front.in_flight():
                break
            await asyncio.sleep(0.01)
        [(replica, path, age)] = front.in_flight()
        assert replica in front.upstreams and path == "/webhooks/slow" and age >= 0
        answer = await call
        assert answer.status == 202
        answer.release()
    assert front.in_flight() == []
