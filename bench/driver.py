"""The load driver, in its own process: sends prepared HTTP requests in lanes.

A lane is sent in order, one request at a time; the lanes run concurrently. Every record belongs to
one lane, so the changes of one record arrive in the order they were made (as one system's
notifications of one record do), while different records go in parallel.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import ssl
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import aiohttp


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None


@dataclass(frozen=True, slots=True)
class DriverResult:
    seconds: float
    statuses: dict[int, int]
    errors: list[str]


async def _send_lanes(lanes: list[list[Call]], ca_file: str | None, conn: Connection) -> DriverResult:
    ssl_ctx: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else False
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    connector = aiohttp.TCPConnector(ssl=ssl_ctx, limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as http:

        async def lane(calls: list[Call]) -> None:
            for call in calls:
                try:
                    async with http.request(
                        call.method, call.url, data=call.body, headers=dict(call.headers)
                    ) as resp:
                        await resp.read()
                        statuses[resp.status] += 1
                        if resp.status >= 400 and len(errors) < 5:
                            errors.append(f"{call.method} {call.url} -> {resp.status} {await resp.text()}")
                except aiohttp.ClientError as exc:
                    statuses[0] += 1
                    if len(errors) < 5:
                        errors.append(f"{call.method} {call.url}: {exc}")

        conn.send("ready")
        conn.recv()  # "go": the parent starts its clock now
        started = time.perf_counter()
        await asyncio.gather(*(lane(calls) for calls in lanes if calls))
        return DriverResult(time.perf_counter() - started, dict(statuses), errors)


def _child(lanes: list[list[Call]], ca_file: str | None, conn: Connection) -> None:
    conn.send(asyncio.run(_send_lanes(lanes, ca_file, conn)))


class Driver:
    """``async with Driver(lanes, ca_file) as d: t0 = d.go(); result = await d.result()``"""

    def __init__(self, lanes: list[list[Call]], ca_file: str | None = None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_child, args=(lanes, ca_file, child), daemon=True)

    async def __aenter__(self) -> Driver:
        self._proc.start()
        await self._recv()  # "ready"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._proc.is_alive():
            self._proc.terminate()
        self._proc.join(10)

    async def _recv(self) -> Any:
        while not self._conn.poll():
            if not self._proc.is_alive():
                raise RuntimeError("the load driver died")
            await asyncio.sleep(0.01)
        return self._conn.recv()

    def go(self) -> float:
        self._conn.send("go")
        return time.perf_counter()

    async def result(self) -> DriverResult:
        result: DriverResult = await self._recv()
        return result


def lanes_by_record(calls: list[tuple[int, Call]], count: int) -> list[list[Call]]:
    """Spread (record number, call) pairs over ``count`` lanes, keeping each record in one lane."""
    lanes: list[list[Call]] = [[] for _ in range(count)]
    for record, call in calls:
        lanes[record % count].append(call)
    return lanes
