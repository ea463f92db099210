"""Backlog: changes queued while a map is paused, then resumed. Peak memory of the bridge (in one
process, its default) as the backlog grows, and the catch-up rate.

The backlog is fed through the bridge's real F&O webhook endpoint, as arrays of 1,000 data events
per body (F&O bodies may be arrays). The events are copies of one data event the emulator really
sent, each with its own EventId and record key, so every one is a distinct change of a distinct record.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import sandbox_config
from bench.live import Keys, record
from bench.procs import BridgeProcess
from bench.record import Note
from bridge.sandbox.runtime import Sandbox

BATCH = 1000
FEED_LANES = 4


@dataclass
class BacklogResult:
    idle_rss_mb: float
    feed_per_s: float
    rss_at: dict[int, float] = field(default_factory=dict)  # backlog size -> RSS (MB) once queued
    depth_at: dict[int, int] = field(default_factory=dict)
    catchup_per_s: float = 0.0
    catchup_applied: int = 0
    catchup_seconds: float = 0.0
    catchup_rss_max_mb: float = 0.0
    peak_rss_mb: float = 0.0


def _template(note: Note) -> str:
    """The recorded event as text with placeholders for what must differ per event."""
    event = json.loads(note.body)
    key = next(
        a["value"] for a in event["InputParameters"][0]["value"]["Attributes"] if a["key"] == "mserp_modecode"
    )
    text = json.dumps(event, separators=(",", ":"))
    return (
        text.replace(event["EventId"], "@EID@")
        .replace(f'"{key}"', '"@KEY@"')
        .replace(
            f'"ContextRecordSubject":"{event["ContextRecordSubject"]}"', '"ContextRecordSubject":"@KEY@"'
        )
    )


def _body(template: str, start: int, count: int) -> bytes:
    items = (
        template.replace("@EID@", f"00000000-0000-4000-8000-{n:012d}").replace("@KEY@", f"B{n:07d}")
        for n in range(start, start + count)
    )
    return ("[" + ",".join(items) + "]").encode()


async def _feed(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], template: str, start: int, end: int
) -> None:
    batches = list(range(start, end, BATCH))

    async def lane(mine: list[int]) -> None:
        for first in mine:
            body = _body(template, first, min(BATCH, end - first))
            async with http.post(url, data=body, headers=headers) as resp:
                if resp.status >= 300:
                    raise RuntimeError(f"feeding the backlog: {resp.status} {await resp.text()}")

    await asyncio.gather(*(lane(batches[i::FEED_LANES]) for i in range(FEED_LANES)))


async def run_backlog(
    state_dir: Path, workdir: Path, sizes: list[int], *, keys: Keys, catchup_window_s: float
) -> BacklogResult:
    sample = await record(state_dir, "scm", 1, 0, "BT", keys)
    template = _template(sample.creates[0])
    async with Sandbox(sandbox_config(state_dir)) as sandbox:
        # The bridge's default, one process: its memory is what holds the backlog (an apply process
        # adds its own ~55 MB, flat; docs/performance.md).
        bridge = keys.one_process().bridge(sandbox.info, workdir / "backlog-bridge")
        await bridge.start()
        try:
            result = BacklogResult(idle_rss_mb=bridge.rss()[0], feed_per_s=0.0)
            await bridge.ops("POST", "/api/maps/ship_via/pause", {"reason": "backlog benchmark"})
            headers = {"Content-Type": "application/json", "x-dualwrite-key": keys.scm}
            url = f"{bridge.url}/webhooks/scm"
            fed, feeding = 0, 0.0
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
                for size in sizes:
                    started = time.perf_counter()
                    await _feed(http, url, headers, template, fed, size)
                    feeding += time.perf_counter() - started
                    fed = size
                    result.rss_at[size] = bridge.rss()[0]
                    view = await bridge.ops("GET", "/api/maps/ship_via")
                    result.depth_at[size] = int(view["queue_depth"])
                    rss, depth = result.rss_at[size], result.depth_at[size]
                    print(f"  backlog {size:>9,}: RSS {rss:.0f} MB, depth {depth:,}")
            result.feed_per_s = fed / feeding
            await _catch_up(sandbox, bridge, fed, catchup_window_s, result)
            result.peak_rss_mb = bridge.rss()[1]
        finally:
            bridge.stop()
    return result


async def _catch_up(
    sandbox: Any, bridge: BridgeProcess, total: int, window: float, result: BacklogResult
) -> None:
    log = sandbox.dataverse.write_log
    base = len(log)
    await bridge.ops("POST", "/api/maps/ship_via/resume", {"mode": "catch-up"})
    started = time.perf_counter()
    rss_max = 0.0
    while time.perf_counter() - started < window and len(log) - base < total:
        rss_max = max(rss_max, bridge.rss()[0])
        await asyncio.sleep(0.25)
    result.catchup_seconds = time.perf_counter() - started
    result.catchup_applied = len(log) - base
    result.catchup_per_s = result.catchup_applied / result.catchup_seconds
    result.catchup_rss_max_mb = max(rss_max, bridge.rss()[0])
