"""The HTTP client of one target system: OData headers, bearer tokens, retries, spans.

Bytes leave through a ``Transport`` (``bridge/systems/transport.py``: aiohttp by default, an
in-memory one for unit tests); what a status means is ``bridge/systems/errors.py``. A 401 is retried
once with a fresh token, then classified like any other answer.

Retries use tenacity: exponential backoff with jitter, never shorter than the server's Retry-After,
bounded by ``RetryPolicy.attempts`` and by an optional absolute deadline (``deadline_scope``). A
synchronous webhook answer has a budget: when the next wait would end past the deadline, the last
``RetryableError`` is raised at once instead of sleeping. ``RejectedError`` is never retried.

Every failed attempt that is retried logs one line at INFO (system, method, URL, attempt n of m,
the system's answer or the network error, the wait): a change's own retries are logged by the engine
at WARNING (``bridge.engine.outcome``), so an outage shows without a line per request at WARNING.
Every answer, failure and Retry-After waited is counted in ``health`` (``GET /api/systems``).

Writes nobody waits for may travel together as one ``$batch``: the composition gives the client a
``Coalescer`` (``bridge/systems/coalesce.py``, attached in ``bridge/systems/connect.py``).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

from opentelemetry import trace
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from bridge import telemetry
from bridge.core.deadline import current_deadline, is_urgent
from bridge.core.errors import RetryableError, SyncError
from bridge.systems.errors import classify, connection_failed, deadline_passed, timed_out
from bridge.systems.health import SystemHealth
from bridge.systems.transport import AiohttpTransport, Request, Response, Transport, TransportError

log = logging.getLogger(__name__)

ODATA_HEADERS = {
    "Accept": "application/json",
    "OData-Version": "4.0",
    "OData-MaxVersion": "4.0",
}


class TokenSource(Protocol):
    """Bearer tokens for one resource (``bridge.systems.auth.TokenProvider`` implements it)."""

    async def token(self) -> str: ...

    async def refresh(self) -> str: ...


class Coalescer(Protocol):
    """Sends concurrent writes together (``bridge.systems.coalesce.WriteCoalescer``); counts them."""

    batches_sent: int
    operations_batched: int
    fallbacks: int

    async def write(self, method: str, path: str, body: Any, headers: Mapping[str, str]) -> Response: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5  # total tries, first one included
    initial: float = 0.5  # seconds before the second try
    maximum: float = 30.0  # cap of one backoff wait (a longer Retry-After still wins)
    jitter: float = 0.5  # up to this fraction of the wait added at random


@dataclass(slots=True)
class _Attempt:
    """State shared by the tries of one logical request."""

    refreshed: bool = False


@dataclass(frozen=True, slots=True)
class _Call:
    """One logical request, before the token and the time budget of an attempt are added."""

    method: str
    url: str
    params: Mapping[str, str] | None
    body: bytes | None
    headers: Mapping[str, str]


class _Wait:
    """Exponential backoff with jitter, but never shorter than the server's Retry-After."""

    def __init__(self, policy: RetryPolicy, rng: random.Random) -> None:
        self._policy = policy
        self._rng = rng

    def __call__(self, state: RetryCallState) -> float:
        p = self._policy
        base: float = min(p.maximum, p.initial * 2.0 ** (state.attempt_number - 1))
        wait: float = base * (1 + p.jitter * self._rng.random())
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableError) and exc.retry_after is not None:
            wait = max(wait, exc.retry_after)
        return wait


class _Stop:
    """Stop after the attempt budget, or when the next wait would end past the deadline."""

    def __init__(self, policy: RetryPolicy, deadline: float | None) -> None:
        self._policy = policy
        self._deadline = deadline

    def __call__(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self._policy.attempts:
            return True
        return self._deadline is not None and time.monotonic() + state.upcoming_sleep >= self._deadline


class HttpClient:
    """Requests to one system (``system`` is "cds" or "scm") through ``transport`` (default: aiohttp,
    verifying TLS against ``ca_file`` or the system store)."""

    def __init__(
        self,
        system: str,
        base_url: str,
        tokens: TokenSource,
        *,
        transport: Transport | None = None,
        ca_file: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.system = system
        self.base_url = base_url.rstrip("/") + "/"
        self._tokens = tokens
        self.transport: Transport = transport or AiohttpTransport(ca_file=ca_file)
        self._timeout = timeout
        self.retry = retry or RetryPolicy()
        self._rng = rng or random.Random()
        self.requests_sent = 0  # attempts on the wire, for tests and metrics
        self.health = SystemHealth(system)  # answers, throttling, network errors (GET /api/systems)
        self.coalescer: Coalescer | None = None  # set by the composition (bridge/systems/connect.py)

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path.lstrip("/")

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        accept: tuple[int, ...] = (),
        raw_body: bytes | None = None,
        content_type: str | None = None,
    ) -> Response:
        """Send with retries; 2xx (and any status in ``accept``) is returned, the rest raised.

        ``raw_body``/``content_type`` send a non-JSON body (``$batch``)."""
        # One span per logical call (retries included), inside the change's trace.
        name = telemetry.SPAN_READ if method == "GET" else telemetry.SPAN_WRITE
        with (
            telemetry.tracer().start_as_current_span(
                name,
                kind=trace.SpanKind.CLIENT,
                attributes={"dualwrite.system": self.system, "http.request.method": method, "url.path": path},
            )
            if telemetry.tracing_enabled()
            else telemetry.NO_SPAN
        ) as span:
            try:
                if (
                    self.coalescer is not None
                    and method in ("POST", "PATCH")
                    and raw_body is None
                    and not accept
                    and not is_urgent()  # a synchronous change is never held back
                ):
                    target = path + ("?" + urlencode(params) if params else "")
                    response = await self.coalescer.write(method, target, json_body, headers or {})
                else:
                    response = await self._send_with_retries(
                        method,
                        path,
                        params=params,
                        json_body=json_body,
                        headers=headers,
                        accept=accept,
                        raw_body=raw_body,
                        content_type=content_type,
                    )
                span.set_attribute("http.response.status_code", response.status)
                return response
            except SyncError as exc:
                span.set_attribute("http.response.status_code", exc.status or 0)
                span.set_status(trace.Status(trace.StatusCode.ERROR, exc.message[:200]))
                raise

    async def send_one(self, method: str, path: str, body: Any, headers: Mapping[str, str]) -> Response:
        """One JSON write on its own, with retries (the coalescer's single request)."""
        return await self._send_with_retries(method, path, json_body=body, headers=headers)

    async def send_batch(self, content_type: str, body: bytes) -> Response:
        """A ``$batch`` of independent requests, with retries (the coalescer's batch)."""
        return await self._send_with_retries(
            "POST",
            "$batch",
            raw_body=body,
            content_type=content_type,
            headers={"Prefer": "odata.continue-on-error"},
        )

    async def _send_with_retries(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        accept: tuple[int, ...] = (),
        raw_body: bytes | None = None,
        content_type: str | None = None,
    ) -> Response:
        sent = {**ODATA_HEADERS, **(headers or {})}
        if raw_body is not None:
            sent["Content-Type"] = content_type or "application/octet-stream"
            body: bytes | None = raw_body
        else:
            body = None if json_body is None else json.dumps(json_body).encode()
            if body is not None:
                sent["Content-Type"] = "application/json"
        deadline = current_deadline()
        attempt = _Attempt()
        call = _Call(method, self.url(path), params, body, sent)
        retrying = AsyncRetrying(
            stop=_Stop(self.retry, deadline),
            wait=_Wait(self.retry, self._rng),
            retry=retry_if_exception_type(RetryableError),
            before_sleep=lambda state: self._before_retry(call, state),
            reraise=True,
        )
        async for tried in retrying:
            with tried:
                return await self._once(call, accept, deadline, attempt)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    def _before_retry(self, call: _Call, state: RetryCallState) -> None:
        """One line per failed attempt that will be retried; the Retry-After waited is counted."""
        exc = state.outcome.exception() if state.outcome else None
        wait = state.upcoming_sleep
        if isinstance(exc, RetryableError) and exc.retry_after is not None:
            self.health.waited_retry_after(wait)
        log.info(
            "%s: %s %s attempt %d of %d failed: %s; next attempt in %.1fs",
            self.system,
            call.method,
            call.url,
            state.attempt_number,
            self.retry.attempts,
            exc.message if isinstance(exc, RetryableError) else exc,
            wait,
        )

    async def _once(
        self, call: _Call, accept: tuple[int, ...], deadline: float | None, attempt: _Attempt
    ) -> Response:
        response = await self._send(call, deadline, await self._tokens.token())
        if response.status == 401 and not attempt.refreshed:
            # An expired or revoked token: one more try with a fresh one, then give up.
            attempt.refreshed = True
            response = await self._send(call, deadline, await self._tokens.refresh())
        if 200 <= response.status < 300 or response.status in accept:
            return response
        error = classify(self.system, response.status, response.headers, response.body, response.text)
        if isinstance(error, RetryableError):
            self.health.failed(error.message, answered=True)
        raise error

    async def _send(self, call: _Call, deadline: float | None, token: str) -> Response:
        budget = self._timeout
        if deadline is not None:
            budget = min(budget, deadline - time.monotonic())
            if budget <= 0:
                raise deadline_passed(self.system)
        self.requests_sent += 1
        headers = {"Authorization": f"Bearer {token}", **call.headers}
        try:
            response = await self.transport.send(
                Request(call.method, call.url, call.params, headers, call.body, budget)
            )
        except TimeoutError as exc:
            error = timed_out(self.system, budget)
            self.health.failed(error.message, answered=False)
            raise error from exc
        except TransportError as exc:
            error = connection_failed(self.system, exc)
            self.health.failed(error.message, answered=False)
            raise error from exc
        self.health.answered(response.status)
        return response
