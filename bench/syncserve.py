"""``python -m bench.syncserve CONFIG TIMINGS``: ``dualwrite serve`` with the sync benchmark's timers.

The bridge runs as ``serve`` runs it (the same settings file, event loop and heap settling, its own
process and core), with two timers attached from outside product code: an aiohttp middleware put
first on the bridge's app times each ``/webhooks/cds`` call (request handed to the app -> answer
ready), and the F&O client's ``http.request`` is wrapped on the instance to time every F&O call.
SIGUSR1 writes what was timed since the last one to ``TIMINGS`` (JSON, replaced atomically) and
starts afresh, so the benchmark can time one phase at a time; SIGINT/SIGTERM stop it as they stop
``serve``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from bridge.app import Bridge, run_until_stopped
from bridge.runtime import run, settle_heap
from bridge.settings import Settings, load_settings
from bridge.telemetry import configure_logging

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Timings:
    webhooks: list[tuple[float, float, int]] = field(default_factory=list)  # start, end, status
    scm_calls: list[tuple[float, float, str]] = field(default_factory=list)  # start, end, method

    def take(self) -> dict[str, Any]:
        """What was timed so far, as JSON; the lists start afresh."""
        taken = {"webhooks": self.webhooks, "scm_calls": self.scm_calls}
        self.webhooks, self.scm_calls = [], []
        return taken


def per_change(timed: dict[str, Any]) -> list[tuple[float, float, float]]:
    """(webhook ms, F&O write ms, F&O read ms) for each webhook call of one phase. A person saves
    records one at a time, so every F&O call falls inside exactly one webhook's window."""
    out = []
    for start, end, _ in timed["webhooks"]:
        inside = [c for c in timed["scm_calls"] if start <= c[0] <= end]
        write = sum(c[1] - c[0] for c in inside if c[2] != "GET")
        read = sum(c[1] - c[0] for c in inside if c[2] == "GET")
        out.append(((end - start) * 1000, write * 1000, read * 1000))
    return out


def instrument(bridge: Bridge, timings: Timings) -> None:
    """Attach both timers; before ``bridge.start()`` (aiohttp freezes the middlewares then)."""

    @web.middleware
    async def timed(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path != "/webhooks/cds":
            return await handler(request)
        start = time.perf_counter()
        response = await handler(request)
        timings.webhooks.append((start, time.perf_counter(), response.status))
        return response

    bridge.app.middlewares.insert(0, timed)
    http = bridge.scm.http
    original = http.request

    async def request(method: str, path: str, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await original(method, path, **kwargs)
        finally:
            timings.scm_calls.append((start, time.perf_counter(), method))

    http.request = request  # type: ignore[method-assign]


def _write(path: Path, timed: dict[str, Any]) -> None:
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(timed), encoding="utf-8")
    os.replace(part, path)


async def _serve(settings: Settings, out: Path) -> int:
    bridge = Bridge(settings)
    timings = Timings()
    instrument(bridge, timings)
    async with bridge:
        settle_heap(settings.gc_gen0_threshold)
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, lambda: _write(out, timings.take()))
        await run_until_stopped()
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bench.syncserve CONFIG TIMINGS", file=sys.stderr)
        return 2
    configure_logging(logging.WARNING)
    settings = load_settings(Path(argv[0]))
    return run(_serve(settings, Path(argv[1])), settings.event_loop)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
