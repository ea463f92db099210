"""Faults on demand, per system: slow or refused API calls and misbehaving notifications.

API faults (applied by ``Faults.middleware`` to the OData routes, never to ``/_sandbox/``):
added latency, 429 with ``Retry-After`` and 503, each for the next N calls or at a rate.
Notification faults (applied by the notifiers): drop, duplicate, reorder, and a webhook call
treated as timed out. Rates draw from a seeded ``random.Random`` so a run can be repeated. Every
fault applied is logged with time, system, kind and request, so tests can assert on it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import BaseModel, ConfigDict, Field

from bridge.sandbox.contracts import SystemName
from bridge.wire.batch import BatchSyntaxError, ChangeSet, parse_batch

FaultKind = Literal["latency", "throttle", "unavailable", "drop", "duplicate", "reorder", "webhook_timeout"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Rate = Field(default=0.0, ge=0.0, le=1.0)
Count = Field(default=0, ge=0)


class FaultSettings(BaseModel):
    """The knobs (``PUT /_sandbox/faults`` replaces them all; omitted knobs are off)."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: int = Field(default=0, ge=0, le=120_000)
    throttle_next: int = Count
    throttle_rate: float = Rate
    retry_after: int = Field(default=1, ge=0, le=3600)  # seconds, sent in Retry-After with each 429
    unavailable_next: int = Count
    unavailable_rate: float = Rate
    drop_next: int = Count
    drop_rate: float = Rate
    duplicate_next: int = Count
    duplicate_rate: float = Rate
    reorder_next: int = Count
    reorder_rate: float = Rate
    reorder_hold_ms: int = Field(default=2000, ge=0, le=600_000)  # a held notification goes out by then
    webhook_timeout_next: int = Count
    webhook_timeout_rate: float = Rate
    seed: int | None = None  # reseed the random source (repeatable rates)


@dataclass(frozen=True, slots=True)
class FaultEvent:
    at: str
    monotonic: float  # for interval assertions (e.g. a client waited Retry-After)
    system: SystemName
    kind: FaultKind
    request: str
    detail: str = ""
    # For a $batch: its requests ("PATCH /api/data/v9.2/msdyn_shipvias(…)"), so a test can follow one
    # write from a refused batch to the batch that carried it again.
    parts: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Faults:
    def __init__(self, system: SystemName, *, seed: int = 0) -> None:
        self.system = system
        self._seed = seed
        self.rng = random.Random(seed)
        self.settings = FaultSettings()
        self.log: deque[FaultEvent] = deque(maxlen=10_000)

    # ------------------------------------------------------------------ configuration
    def configure(self, settings: FaultSettings) -> None:
        self.settings = settings.model_copy()
        if settings.seed is not None:
            self.rng.seed(settings.seed)

    def update(self, **knobs: Any) -> FaultSettings:
        """Change some knobs, keep the others (for tests in-process)."""
        self.configure(FaultSettings.model_validate({**self.settings.model_dump(), **knobs}))
        return self.settings

    def clear(self) -> None:
        self.settings = FaultSettings()
        self.rng.seed(self._seed)

    def clear_log(self) -> None:
        self.log.clear()

    # ------------------------------------------------------------------ decisions
    def record(self, kind: FaultKind, request: str, detail: str = "", parts: tuple[str, ...] = ()) -> None:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self.log.append(FaultEvent(now, time.monotonic(), self.system, kind, request, detail, parts))

    def _take(self, kind: str) -> bool:
        s = self.settings
        remaining: int = getattr(s, f"{kind}_next")
        if remaining > 0:
            setattr(s, f"{kind}_next", remaining - 1)
            return True
        rate: float = getattr(s, f"{kind}_rate")
        return rate > 0 and self.rng.random() < rate

    def request_fault(
        self, request: str, parts: tuple[str, ...] = ()
    ) -> Literal["throttle", "unavailable"] | None:
        if self._take("throttle"):
            self.record("throttle", request, f"429 Retry-After: {self.settings.retry_after}", parts)
            return "throttle"
        if self._take("unavailable"):
            self.record("unavailable", request, "503", parts)
            return "unavailable"
        return None

    def notification_fault(self, description: str) -> Literal["drop", "duplicate", "reorder"] | None:
        for kind in ("drop", "duplicate", "reorder"):
            if self._take(kind):
                self.record(kind, description)
                return kind
        return None

    def webhook_timeout(self, description: str) -> bool:
        if self._take("webhook_timeout"):
            self.record("webhook_timeout", description)
            return True
        return False

    # ------------------------------------------------------------------ HTTP
    def middleware(self, *, skip_prefixes: tuple[str, ...] = ("/_sandbox/",)) -> Middleware:
        @web.middleware
        async def faults_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path.startswith(skip_prefixes):
                return await handler(request)
            described = f"{request.method} {request.path_qs}"
            s = self.settings
            faulty = (
                s.latency_ms or s.throttle_next or s.throttle_rate or s.unavailable_next or s.unavailable_rate
            )
            parts = await batch_parts(request) if faulty else ()
            if self.settings.latency_ms:
                self.record("latency", described, f"{self.settings.latency_ms} ms", parts)
                await asyncio.sleep(self.settings.latency_ms / 1000)
            fault = self.request_fault(described, parts)
            if fault == "throttle":
                return throttled(self.system, self.settings.retry_after)
            if fault == "unavailable":
                return unavailable(self.system)
            return await handler(request)

        return faults_middleware


async def batch_parts(request: web.Request) -> tuple[str, ...]:
    """The requests inside a ``$batch`` body ("METHOD /path"); () for any other request, or for a
    body the batch handler will refuse. The body stays readable for the handler (aiohttp keeps what
    was read)."""
    if request.method != "POST" or not request.path.endswith("/$batch"):
        return ()
    try:
        parsed = parse_batch(await request.read(), request.headers.get("Content-Type", ""))
    except BatchSyntaxError:
        return ()
    requests = [r for p in parsed for r in (p.requests if isinstance(p, ChangeSet) else [p])]
    return tuple(f"{r.method} {_path_of(r.url)}" for r in requests)


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def throttled(system: SystemName, retry_after: int) -> web.Response:
    """429 as each system sends it (Dataverse: service protection error JSON)."""
    headers = {"Retry-After": str(retry_after)}
    if system == "dataverse":
        body = {
            "error": {
                "code": "0x80072322",
                "message": "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
            }
        }
    else:
        body = _fno_body("The request was throttled. Retry after the time given in the Retry-After header.")
    return web.json_response(body, status=429, headers=headers)


def unavailable(system: SystemName) -> web.Response:
    if system == "dataverse":
        body: dict[str, Any] = {
            "error": {
                "code": "0x80040216",
                "message": "The service is temporarily unavailable. Try again later.",
            }
        }
    else:
        body = _fno_body("The service is temporarily unavailable. Try again later.")
    return web.json_response(body, status=503)


def _fno_body(message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": "",
            "message": "An error has occurred.",
            "innererror": {"message": message, "type": "System.Web.HttpException", "stacktrace": ""},
        }
    }
