"""One HTTP session per target system: OData headers, bearer tokens, error classification, retries.

Error classification is a pure function (``classify``) so it is tested without a network:

- 429 and 503 -> ``RetryableError(retry_after=<Retry-After>)`` (seconds or an HTTP date)
- other 5xx, timeouts, connection errors -> ``RetryableError``; except F&O's known duplicate-key 500
  (a write that can never succeed) -> ``RejectedError``
- 400/403/404/409/412/422 and other 4xx -> ``RejectedError`` carrying the system's own message
  (Dataverse ``error.message``; F&O ``error.innererror.message``, falling back to ``error.message``)
- 401 -> the request is retried once with a fresh token, then ``RejectedError``

Retries use tenacity: exponential backoff with jitter, never shorter than the server's Retry-After,
bounded by ``RetryPolicy.attempts`` and by an optional absolute deadline (``deadline_scope``). A
synchronous webhook answer has a budget: when the next wait would end past the deadline, the last
``RetryableError`` is raised at once instead of sleeping. ``RejectedError`` is never retried.
"""

from __future__ import annotations

import json
import logging
import random
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode

import aiohttp
from opentelemetry import trace
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from bridge import telemetry
from bridge.core.deadline import current_deadline, is_urgent
from bridge.core.errors import RejectedError, RetryableError, SyncError

log = logging.getLogger(__name__)

ODATA_HEADERS = {
    "Accept": "application/json",
    "OData-Version": "4.0",
    "OData-MaxVersion": "4.0",
}

# F&O answers a duplicate key with 500 (third-party report; see protocols.md): retrying cannot help.
_DUPLICATE_500 = re.compile(r"already exists|duplicate", re.IGNORECASE)

if TYPE_CHECKING:
    from bridge.systems.coalesce import WriteCoalescer


class TokenSource(Protocol):
    """Bearer tokens for one resource (``bridge.systems.auth.TokenProvider`` implements it)."""

    async def token(self) -> str: ...

    async def refresh(self) -> str: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5  # total tries, first one included
    initial: float = 0.5  # seconds before the second try
    maximum: float = 30.0  # cap of one backoff wait (a longer Retry-After still wins)
    jitter: float = 0.5  # up to this fraction of the wait added at random


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: Any  # parsed JSON, or None for an empty body
    text: str = ""


@dataclass(slots=True)
class _Attempt:
    """State shared by the tries of one logical request."""

    refreshed: bool = False


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header value by case-insensitive name."""
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def error_message(body: Any, text: str = "") -> tuple[str, str | None]:
    """The system's own message and code from an OData error body (both systems' shapes)."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        inner = err.get("innererror")
        code = err.get("code") or None
        if isinstance(inner, dict) and isinstance(inner.get("message"), str) and inner["message"]:
            return inner["message"], code  # F&O: the useful text is here
        if isinstance(err.get("message"), str) and err["message"]:
            return err["message"], code
    return (text.strip()[:500] or "no error message"), None


def classify(system: str, status: int, headers: Mapping[str, str], body: Any, text: str = "") -> SyncError:
    """Turn a non-2xx answer into the error hierarchy (pure)."""
    message, code = error_message(body, text)
    message = f"{system} {status}: {message}"
    if status in (429, 503):
        retry_after = parse_retry_after(header(headers, "Retry-After"))
        return RetryableError(message, system=system, status=status, code=code, retry_after=retry_after)
    if status == 500 and system == "scm" and _DUPLICATE_500.search(message):
        return RejectedError(message, system=system, status=status, code=code or "duplicate")
    if status >= 500:
        return RetryableError(message, system=system, status=status, code=code)
    return RejectedError(message, system=system, status=status, code=code)


def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """Verify servers against ``ca_file`` if given, else the system store. Never unverified."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()


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
    """An aiohttp session for one system (``system`` is "cds" or "scm"), created on first use."""

    def __init__(
        self,
        system: str,
        base_url: str,
        tokens: TokenSource,
        *,
        ca_file: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        coalesce: bool = False,
    ) -> None:
        self.system = system
        self.base_url = base_url.rstrip("/") + "/"
        self._tokens = tokens
        self._ca_file = ca_file
        self._timeout = timeout
        self.retry = retry or RetryPolicy()
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None
        self.requests_sent = 0  # attempts on the wire, for tests and metrics
        # Concurrent writes nobody waits for travel together as one $batch (bridge/systems/coalesce.py).
        self.coalescer: WriteCoalescer | None = None
        if coalesce:
            # Imported here: the coalescer builds on batch.py, which uses this module's classify().
            from bridge.systems.coalesce import WriteCoalescer

            self.coalescer = WriteCoalescer(
                base_url=self.base_url,
                send_one=self._send_one,
                send_batch=self._send_batch,
                classify=lambda status, hdrs, body, text: classify(self.system, status, hdrs, body, text),
                make_response=lambda status, hdrs, body, text: Response(status, dict(hdrs), body, text),
            )

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=ssl_context(self._ca_file))
            # trust_env=False: proxies/CA variables of the environment never redirect our calls.
            self._session = aiohttp.ClientSession(connector=connector, headers=ODATA_HEADERS, trust_env=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

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
                    response: Response = await self.coalescer.write(method, target, json_body, headers or {})
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

    async def _send_one(self, method: str, path: str, body: Any, headers: Mapping[str, str]) -> Response:
        return await self._send_with_retries(method, path, json_body=body, headers=headers)

    async def _send_batch(self, content_type: str, body: bytes) -> tuple[int, Mapping[str, str], str]:
        response = await self._send_with_retries(
            "POST",
            "$batch",
            raw_body=body,
            content_type=content_type,
            headers={"Prefer": "odata.continue-on-error"},
        )
        return response.status, response.headers, response.text

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
        if raw_body is not None:
            headers = {**(headers or {}), "Content-Type": content_type or "application/octet-stream"}
            body: bytes | None = raw_body
        else:
            body = None if json_body is None else json.dumps(json_body).encode()
            if body is not None:
                headers = {**(headers or {}), "Content-Type": "application/json"}
        deadline = current_deadline()
        attempt = _Attempt()
        retrying = AsyncRetrying(
            stop=_Stop(self.retry, deadline),
            wait=_Wait(self.retry, self._rng),
            retry=retry_if_exception_type(RetryableError),
            reraise=True,
        )
        request = _Request(method, path, params, body, headers or {})
        async for tried in retrying:
            with tried:
                return await self._once(request, accept, deadline, attempt)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def _once(
        self, request: _Request, accept: tuple[int, ...], deadline: float | None, attempt: _Attempt
    ) -> Response:
        response = await self._send(request, deadline, await self._tokens.token())
        if response.status == 401 and not attempt.refreshed:
            # An expired or revoked token: one more try with a fresh one, then give up.
            attempt.refreshed = True
            response = await self._send(request, deadline, await self._tokens.refresh())
        if 200 <= response.status < 300 or response.status in accept:
            return response
        raise classify(self.system, response.status, response.headers, response.body, response.text)

    async def _send(self, request: _Request, deadline: float | None, token: str) -> Response:
        budget = self._timeout
        if deadline is not None:
            budget = min(budget, deadline - time.monotonic())
            if budget <= 0:
                raise RetryableError(f"{self.system}: deadline passed before the request", system=self.system)
        self.requests_sent += 1
        try:
            async with self._get_session().request(
                request.method,
                self.url(request.path),
                params=request.params,
                data=request.body,
                headers={"Authorization": f"Bearer {token}", **request.headers},
                timeout=aiohttp.ClientTimeout(total=budget),
            ) as resp:
                text = await resp.text()
                return Response(resp.status, dict(resp.headers), _parse_json(text), text)
        except TimeoutError as exc:
            raise RetryableError(f"{self.system}: timed out after {budget:.1f}s", system=self.system) from exc
        except aiohttp.ClientError as exc:
            raise RetryableError(f"{self.system}: connection failed: {exc}", system=self.system) from exc


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    path: str
    params: Mapping[str, str] | None
    body: bytes | None
    headers: Mapping[str, str]


def _parse_json(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
