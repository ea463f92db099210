"""What webhook and data-event delivery share: the job log, background tasks, the HTTP poster and
the notification fault gate (drop / duplicate / reorder)."""

from __future__ import annotations

import asyncio
import itertools
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp

from bridge.sandbox.faults import Faults

JobStatus = Literal["waiting", "in_progress", "succeeded", "failed", "dropped"]
ZERO_GUID = "00000000-0000-0000-0000-000000000000"


def dotnet_date(when: datetime, *, offset: bool = False) -> str:
    """The WCF JSON date form Dataverse and business events use: ``/Date(ms)/`` (UTC).

    ``offset``: the form .NET writes for a local-time value, ``/Date(ms+0000)/`` (the offset of a
    server on UTC), as in ``OperationCreatedOn`` of the published RemoteExecutionContext sample
    (powerapps-docs, use-webhooks.md: ``/Date(1506409448000-0700)/``)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return f"/Date({int(when.timestamp() * 1000)}{'+0000' if offset else ''})/"


def iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def strip_query(url: str) -> str:
    """The URL as shown in errors and logs: secrets travel in the query string, so drop it."""
    return url.split("?", 1)[0]


@dataclass(slots=True)
class Attempt:
    at: str
    status: int | None  # HTTP status, None when no answer (timeout, connection error)
    error: str | None
    duration_ms: float


@dataclass(slots=True)
class DeliveryJob:
    """One notification to one receiver, like a Dataverse system job (asyncoperation)."""

    id: int
    system: Literal["dataverse", "fno"]
    kind: Literal["webhook", "dataevent"]
    mode: Literal["sync", "async"]
    target: str  # step name / data event endpoint name
    url: str  # without query string
    message: str
    entity: str
    record_id: str
    correlation_id: str
    initiating_client_id: str
    initiating_user_id: str  # Dataverse systemuser id (InitiatingUserId)
    initiating_object_id: str  # Entra oid (InitiatingUserAADObjectId)
    event_id: str | None = None
    status: JobStatus = "waiting"
    created_at: str = field(default_factory=iso_now)
    finished_at: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)

    def finish(self, status: JobStatus) -> None:
        self.status = status
        self.finished_at = iso_now()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class JobLog:
    """Bounded in-memory log of deliveries (newest kept), readable through the admin API."""

    def __init__(self, maxlen: int = 10_000) -> None:
        self._jobs: deque[DeliveryJob] = deque(maxlen=maxlen)
        self._ids = itertools.count(1)

    def new(self, **fields: Any) -> DeliveryJob:
        job = DeliveryJob(id=next(self._ids), **fields)
        self._jobs.append(job)
        return job

    def __iter__(self) -> Iterator[DeliveryJob]:
        return iter(list(self._jobs))

    def __len__(self) -> int:
        return len(self._jobs)

    def clear(self) -> None:
        self._jobs.clear()

    def to_json(self) -> list[dict[str, Any]]:
        return [j.to_json() for j in self._jobs]


class Background:
    """Tracks fire-and-forget delivery tasks so tests and shutdown can wait for them."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        async def run() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)


@dataclass(frozen=True, slots=True)
class PostResult:
    status: int | None
    reason: str
    error: str | None
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class HttpPoster:
    """One reused aiohttp session for every delivery (the bridge's sync benchmark times these)."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def _get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True, limit=200)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._session

    async def post(
        self,
        url: str,
        body: bytes,
        *,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        seconds: float,
    ) -> PostResult:
        started = time.perf_counter()
        try:
            async with self._get().post(
                url,
                data=body,
                headers=dict(headers),
                params=dict(params) if params else None,
                timeout=aiohttp.ClientTimeout(total=seconds),
                allow_redirects=False,
            ) as resp:
                # The content is never looked at (as on the real systems); it is drained only so the
                # pooled connection can be reused.
                await resp.read()
                return PostResult(resp.status, resp.reason or "", None, _ms(started))
        except TimeoutError:
            return PostResult(None, "", f"timed out after {seconds:g} seconds", _ms(started))
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return PostResult(None, "", f"{type(exc).__name__}: {exc}", _ms(started))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def attempt_of(result: PostResult) -> Attempt:
    error = result.error
    if error is None and not result.ok:
        error = f"{result.status} {result.reason}".rstrip()
    return Attempt(at=iso_now(), status=result.status, error=error, duration_ms=result.duration_ms)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


Send = Callable[[list[str]], Awaitable[None]]


class DeliveryGate:
    """Applies the notification faults to after-commit deliveries before they leave.

    ``submit(description, send)``: drop skips it; duplicate sends it twice; reorder holds it back
    and sends it after the next delivery (or after ``reorder_hold_ms`` if none comes). ``send``
    receives the list of faults applied, so the job log can show them."""

    def __init__(self, faults: Faults, background: Background) -> None:
        self.faults = faults
        self.background = background
        self._held: tuple[Send, list[str]] | None = None
        self._release: asyncio.TimerHandle | None = None

    def submit(self, description: str, send: Send, on_drop: Callable[[], None]) -> None:
        kind = self.faults.notification_fault(description)
        if kind == "drop":
            on_drop()
            return
        if kind == "reorder" and self._held is None:
            self._held = (send, ["reorder"])
            hold = self.faults.settings.reorder_hold_ms / 1000
            self._release = asyncio.get_running_loop().call_later(hold, self._release_held)
            return
        applied: list[str] = [kind] if kind else []
        first = self.background.spawn(send(applied))
        if kind == "duplicate":
            self.background.spawn(_after(first, send, ["duplicate"]))
        if self._held is not None:
            held, held_faults = self._held
            self._held = None
            if self._release is not None:
                self._release.cancel()
            self.background.spawn(_after(first, held, held_faults))

    def _release_held(self) -> None:
        if self._held is not None:
            held, held_faults = self._held
            self._held = None
            self.background.spawn(held(held_faults))

    def flush(self) -> None:
        if self._release is not None:
            self._release.cancel()
        self._release_held()

    def clear(self) -> None:
        if self._release is not None:
            self._release.cancel()
        self._held = None


async def _after(first: asyncio.Task[None], send: Send, applied: list[str]) -> None:
    # Let the first delivery's first attempt go out before this one, so the order is deterministic.
    await asyncio.wait({first})
    await send(applied)
