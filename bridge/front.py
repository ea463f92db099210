"""A small round-robin front for several bridge replicas (``dualwrite demo --replicas N``, tests).

Not a production load balancer (use the platform's: Azure Container Apps' ingress, a Kubernetes
Service, nginx): it shows what the bridge expects of one. Every request goes to the next replica in
turn; a replica that does not accept the connection is passed over (and skipped for a moment), so
killing one leaves the address working. The body is streamed, not read first: the replica still
authenticates a call before its body is read (docs/architecture.md), and a replica that refuses a
connection has read nothing, so the call can go to the next. A replica that dies with a call in
hand ends that call with 502, as a load balancer would: Dataverse and F&O send it again (each
webhook's event id makes the repeat harmless).

Webhooks (``/webhooks/*``) are spread over the replicas; everything else (dashboard, ``/api/``)
goes to the first replica that answers, so a dashboard session stays on one replica.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence

import aiohttp
from aiohttp import web

from bridge.listeners.body import SERVER_HANDLER_ARGS

log = logging.getLogger(__name__)

# Headers of one hop only (RFC 9110, section 7.6.1), never passed on.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
SKIP_AFTER_FAILURE_S = 1.0  # a replica that refused a connection is tried last for this long
ANSWER_TIMEOUT_S = 75.0  # above Dataverse's 60 s webhook timeout: the replica's answer decides


class RoundRobinFront:
    """``upstreams`` (``http://host:port`` each) behind one address."""

    def __init__(self, upstreams: Sequence[str], *, host: str = "127.0.0.1", port: int = 0) -> None:
        if not upstreams:
            raise ValueError("a front needs at least one replica")
        self.upstreams = [u.rstrip("/") for u in upstreams]
        self.host, self.port = host, port
        self._turn = itertools.count()
        self._down_until: dict[str, float] = {}
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.passed_over = 0  # calls that went to another replica because one did not answer
        self._in_flight: dict[int, tuple[str, str, float]] = {}  # id -> (replica, path, since)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=ANSWER_TIMEOUT_S, sock_connect=2.0)
        # auto_decompress off: bodies pass through byte for byte, Content-Encoding and all.
        self._session = aiohttp.ClientSession(timeout=timeout, auto_decompress=False, trust_env=False)
        # The bridge's own server arguments: no decompression here either (the bytes go on as sent).
        app = web.Application(client_max_size=0, handler_args=SERVER_HANDLER_ARGS)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        log.info("front on %s for %s", self.url, ", ".join(self.upstreams))

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def in_flight(self) -> list[tuple[str, str, float]]:
        """The calls a replica has in hand now: (replica, path, seconds so far), for whoever wants
        to see (or, in tests, kill) the replica that holds a given call."""
        now = time.monotonic()
        return [(replica, path, now - since) for replica, path, since in self._in_flight.values()]

    def order(self, path: str) -> list[str]:
        """The replicas to try for ``path``, in order: webhooks round-robin, the rest the first
        replica; the ones that just refused a connection last."""
        n = len(self.upstreams)
        start = next(self._turn) % n if path.startswith("/webhooks/") else 0
        ring = self.upstreams[start:] + self.upstreams[:start]
        now = time.monotonic()
        return sorted(ring, key=lambda u: self._down_until.get(u, 0.0) > now)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["X-Forwarded-For"] = request.remote or ""
        headers["X-Forwarded-Host"] = request.host
        body = request.content if request.body_exists else None
        for upstream in self.order(request.path):
            self._in_flight[id(request)] = (upstream, request.path, time.monotonic())
            try:
                async with self._session.request(
                    request.method,
                    upstream + request.path_qs,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                ) as answer:
                    return await self._relay(request, answer)
            except aiohttp.ClientConnectorError as exc:
                # Nothing was sent (the connection was refused): the next replica takes the call.
                self._down_until[upstream] = time.monotonic() + SKIP_AFTER_FAILURE_S
                self.passed_over += 1
                log.warning("front: replica %s does not answer (%s): passed over", upstream, exc)
            except (aiohttp.ClientError, TimeoutError) as exc:
                # The replica took the call and died (or stalled) with it: the caller sends it again.
                self._down_until[upstream] = time.monotonic() + SKIP_AFTER_FAILURE_S
                log.warning("front: replica %s lost a call (%s)", upstream, exc)
                return web.Response(status=502, text=f"replica {upstream} lost the call: {exc}")
            finally:
                self._in_flight.pop(id(request), None)
        return web.Response(status=503, text="no bridge replica answers")

    async def _relay(self, request: web.Request, answer: aiohttp.ClientResponse) -> web.StreamResponse:
        out = web.StreamResponse(status=answer.status, reason=answer.reason)
        for key, value in answer.headers.items():
            if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                out.headers.add(key, value)
        if answer.content_length is not None:
            out.content_length = answer.content_length
        await out.prepare(request)
        async for chunk in answer.content.iter_any():
            await out.write(chunk)
        await out.write_eof()
        return out
