"""The one seam where the clients' bytes leave the process (like httpx's ``_transports``).

``HttpClient`` builds a ``Request`` (absolute URL, every header, encoded body, time budget) and a
``Transport`` sends it: ``AiohttpTransport`` over the network (the default), ``MockTransport`` to a
function in the same process (unit tests: canned answers, no server, no TLS). A transport answers
with a ``Response`` of any status, or raises ``TimeoutError`` when the budget ran out or
``TransportError`` when no answer came; retries, tokens and the meaning of a status are the
client's business.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy


class TransportError(Exception):
    """No answer: the connection was refused, reset, or its TLS handshake failed."""


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    url: str  # absolute
    params: Mapping[str, str] | None
    headers: Mapping[str, str]
    body: bytes | None
    timeout: float  # seconds for this one attempt


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: CIMultiDictProxy[str]
    body: Any  # parsed JSON, or None for an empty or non-JSON body
    text: str = ""

    @classmethod
    def of(cls, status: int, headers: Mapping[str, str] | None = None, text: str = "") -> Response:
        """An answer as it came off the wire: its body parsed here when it is JSON."""
        return cls(status, CIMultiDictProxy(CIMultiDict(headers or {})), _parse_json(text), text)

    @classmethod
    def json(cls, status: int, body: Any = None, headers: Mapping[str, str] | None = None) -> Response:
        """A JSON answer (``body`` None: an empty one), e.g. from a ``MockTransport`` handler."""
        if body is None:
            return cls.of(status, headers)
        return cls.of(status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body))


class Transport(Protocol):
    async def send(self, request: Request) -> Response: ...

    async def close(self) -> None: ...


def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """Verify servers against ``ca_file`` if given, else the system store. Never unverified."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()


class AiohttpTransport:
    """One aiohttp session (and connection pool), created on first use."""

    def __init__(self, *, ca_file: str | None = None) -> None:
        self._ca_file = ca_file
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=ssl_context(self._ca_file))
            # trust_env=False: proxies/CA variables of the environment never redirect our calls.
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._session

    async def send(self, request: Request) -> Response:
        try:
            async with self._get_session().request(
                request.method,
                request.url,
                params=request.params,
                data=request.body,
                headers=request.headers,
                timeout=aiohttp.ClientTimeout(total=request.timeout),
            ) as resp:
                text = await resp.text()
                return Response(resp.status, resp.headers, _parse_json(text), text)
        except TimeoutError:
            raise  # aiohttp's ServerTimeoutError is a ClientError too: it stays a timeout
        except aiohttp.ClientError as exc:
            raise TransportError(str(exc)) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


Handler = Callable[[Request], Response | Awaitable[Response]]


class MockTransport:
    """Answers every request with ``handler(request)`` (a plain or an async function), within the
    request's time budget like the network would. ``requests`` keeps what was sent, in order."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[Request] = []

    async def send(self, request: Request) -> Response:
        self.requests.append(request)
        async with asyncio.timeout(request.timeout):
            answer = self._handler(request)
            return await answer if inspect.isawaitable(answer) else answer

    async def close(self) -> None:
        pass


def _parse_json(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
