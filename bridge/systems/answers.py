"""How each system answered the bridge's calls: a ``Transport`` that counts what passes through it.

Installed around each client's transport by the composition (``count_answers``); ``/metrics``
exposes the figures as ``dualwrite_system_*_total``. Counts are this process's calls (apply
processes, when configured, count their own and are not added here).
"""

from __future__ import annotations

from collections.abc import Callable

from bridge.systems.connect import Systems
from bridge.systems.transport import Request, Response, Transport, TransportError

# The counters' names, in the order /metrics lists them.
ANSWER_KEYS = ("calls", "throttled", "errors", "no_answer")


class CountingTransport:
    """Sends through ``inner`` and counts calls, 429 answers, other 4xx/5xx answers, and calls that
    got no answer (timed out, refused, reset)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.counts = dict.fromkeys(ANSWER_KEYS, 0)

    async def send(self, request: Request) -> Response:
        self.counts["calls"] += 1
        try:
            response = await self.inner.send(request)
        except (TimeoutError, TransportError):
            self.counts["no_answer"] += 1
            raise
        if response.status == 429:
            self.counts["throttled"] += 1
        elif response.status >= 400:
            self.counts["errors"] += 1
        return response

    async def close(self) -> None:
        await self.inner.close()


def count_answers(systems: Systems) -> Callable[[], dict[str, dict[str, int]]]:
    """Count both clients' answers from now on; returns the reader (system -> counter -> value)."""
    counters: dict[str, CountingTransport] = {}
    for system, client in (("cds", systems.cds), ("scm", systems.scm)):
        counting = CountingTransport(client.http.transport)
        client.http.transport = counting
        counters[system] = counting
    return lambda: {system: dict(c.counts) for system, c in counters.items()}
