"""Attack: how slow ``/healthz`` gets while unauthenticated compression bombs arrive (issue 18).

One ``dualwrite serve`` process. For ``seconds``, ``senders`` connections at once each send gzip bombs
(1 MB on the wire, 1 GB once inflated) back to back, to both webhook endpoints with a wrong key, in
the header or in ``?code=``, over raw sockets; meanwhile ``/healthz`` is asked again and again, one
call at a time. The figure is
the slowest of those answers; beside it, the same with no attack, and the bridge's CPU over the
attack (with aiohttp's automatic decompression each bomb cost ~0.6 s of it, and eight at once
stalled every endpoint for seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from bench.common import percentile, sandbox_config
from bench.live import Keys
from bridge.sandbox.runtime import Sandbox

MB = 1 << 20
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"


@dataclass
class AttackResult:
    healthz_ms_max: float
    healthz_ms_p50: float
    healthz_calls: int
    idle_healthz_ms_max: float
    bombs: int
    bomb_bytes: int
    bomb_expands_to: int
    refused: int  # answered 401
    statuses: dict[int, int]
    bridge_cpu_s: float


def gzip_bomb(expanded_mb: int) -> bytes:
    """A valid gzip body of ``expanded_mb`` MB of zeros, ~1 KB per MB: one 1 MB block compressed
    once, ended by a full flush (so each copy decodes on its own), repeated, then the trailer."""
    block = bytes(MB)
    stream = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    unit = stream.compress(block) + stream.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(expanded_mb):
        crc = zlib.crc32(block, crc)
    trailer = struct.pack("<II", crc, (expanded_mb * MB) & 0xFFFFFFFF)
    return GZIP_HEADER + unit * expanded_mb + stream.flush() + trailer


def _request(url: str, index: int, bomb: bytes) -> bytes:
    endpoint = ("cds", "scm")[index % 2]
    in_query = index % 4 >= 2
    target = f"/webhooks/{endpoint}" + ("?code=not-the-key" if in_query else "")
    lines = [
        f"POST {target} HTTP/1.1",
        f"Host: {urlsplit(url).netloc}",
        "Content-Type: application/json",
        "Content-Encoding: gzip",
        f"Content-Length: {len(bomb)}",
    ]
    if not in_query:
        lines.append("x-dualwrite-key: not-the-key")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + bomb


async def _send_bomb(url: str, index: int, bomb: bytes) -> int:
    """One bomb on its own connection; the answer's status (0: no answer)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        with contextlib.suppress(ConnectionError):  # refused and closed while we still send: fine
            writer.write(_request(url, index, bomb))
            await writer.drain()
        try:
            status_line = await reader.readline()
            return int(status_line.split(b" ")[1]) if status_line else 0
        except (ConnectionError, IndexError, ValueError):
            return 0
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _healthz_times(url: str, until: asyncio.Event | None, at_least: int) -> list[float]:
    """Milliseconds of each ``/healthz`` call, one at a time, until ``until`` is set (and at least
    ``at_least`` calls)."""
    times: list[float] = []
    async with aiohttp.ClientSession() as http:
        while len(times) < at_least or (until is not None and not until.is_set()):
            started = time.perf_counter()
            async with http.get(f"{url}/healthz") as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"/healthz answered {resp.status}")
            times.append((time.perf_counter() - started) * 1000)
    return times


async def run_attack(
    state_dir: Path, workdir: Path, *, keys: Keys, senders: int, seconds: float, expanded_mb: int
) -> AttackResult:
    bomb = gzip_bomb(expanded_mb)
    async with Sandbox(sandbox_config(state_dir)) as sandbox:
        bridge = keys.one_process().bridge(sandbox.info, workdir / "attack-bridge")
        await bridge.start()
        try:
            idle = await _healthz_times(bridge.url, None, at_least=50)
            done = asyncio.Event()
            statuses: Counter[int] = Counter()

            async def sender(lane: int) -> None:
                sent = 0
                while not done.is_set():
                    statuses[await _send_bomb(bridge.url, lane + sent * senders, bomb)] += 1
                    sent += 1

            cpu = bridge.cpu()
            attackers = [asyncio.create_task(sender(lane)) for lane in range(senders)]
            probe = asyncio.create_task(_healthz_times(bridge.url, done, at_least=20))
            await asyncio.sleep(seconds)
            done.set()
            await asyncio.gather(*attackers)
            times = await probe
            cpu_s = bridge.cpu() - cpu
        finally:
            bridge.stop()
    return AttackResult(
        healthz_ms_max=max(times),
        healthz_ms_p50=percentile(times, 50),
        healthz_calls=len(times),
        idle_healthz_ms_max=max(idle),
        bombs=sum(statuses.values()),
        bomb_bytes=len(bomb),
        bomb_expands_to=expanded_mb * MB,
        refused=statuses[401],
        statuses=dict(statuses),
        bridge_cpu_s=cpu_s,
    )
