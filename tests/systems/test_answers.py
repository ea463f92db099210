"""The counting transport behind ``dualwrite_system_*_total``: calls, 429s, other error answers and
calls with no answer, each counted once per attempt on the wire."""

from __future__ import annotations

import pytest

from bridge.systems.answers import CountingTransport
from bridge.systems.transport import MockTransport, Request, Response, TransportError

STATUSES = iter([200, 429, 503, 404, 201])


def _answer(request: Request) -> Response:
    if request.url.endswith("/down"):
        raise TransportError("connection refused")
    return Response.json(next(STATUSES))


async def test_counts_each_kind_of_answer() -> None:
    counting = CountingTransport(MockTransport(_answer))
    for _ in range(5):
        await counting.send(Request("GET", "https://x/data/Things", None, {}, None, 5.0))
    with pytest.raises(TransportError):
        await counting.send(Request("GET", "https://x/down", None, {}, None, 5.0))
    assert counting.counts == {"calls": 6, "throttled": 1, "errors": 2, "no_answer": 1}
    await counting.close()
