"""How the Dataverse client asks for rows: ``$top`` and ``odata.maxpagesize`` never together.

powerapps-docs, powerapps-docs/developer/data-platform/webapi/query/page-results.md: "Don't use $top
with odata.maxpagesize" — Dataverse ignores ``$top`` when the page size is also asked for.
"""

from __future__ import annotations

from typing import Any

from bridge.systems.dataverse import DataverseClient
from bridge.systems.transport import MockTransport, Request, Response

URL = "https://org.example/api/data/v9.2/"


class _Tokens:
    async def token(self) -> str:
        return "t"

    async def refresh(self) -> str:
        return "t"


def _pages(rows: int, page: int) -> MockTransport:
    """A service holding ``rows`` rows, in pages of ``page`` linked by ``@odata.nextLink``."""

    def answer(request: Request) -> Response:
        start = int(request.url.rsplit("skip=", 1)[1]) if "skip=" in request.url else 0
        chunk = [{"n": i} for i in range(start, min(start + page, rows))]
        body: dict[str, Any] = {"value": chunk}
        if start + page < rows:
            body["@odata.nextLink"] = f"{URL}things?skip={start + page}"
        return Response(200, {}, body)

    return MockTransport(answer)


async def test_a_small_top_is_sent_alone() -> None:
    transport = _pages(rows=10, page=10)
    async with DataverseClient(URL, _Tokens(), transport=transport) as client:
        rows = await client.query("things", top=1)
    [sent] = transport.requests
    assert (sent.params or {}).get("$top") == "1"
    assert not any(k.lower() == "prefer" for k in sent.headers)
    assert len(rows) == 1


async def test_beyond_a_page_pages_are_read_until_top_rows_without_sending_top() -> None:
    transport = _pages(rows=25, page=10)
    async with DataverseClient(URL, _Tokens(), transport=transport) as client:
        rows = await client.query("things", top=15, page_size=10)
    assert [r["n"] for r in rows] == list(range(15))
    first = transport.requests[0]
    assert "$top" not in (first.params or {})
    assert {k.lower(): v for k, v in first.headers.items()}["prefer"] == "odata.maxpagesize=10"
    assert len(transport.requests) == 2  # stopped once it had 15


async def test_without_top_every_page_is_read() -> None:
    transport = _pages(rows=25, page=10)
    async with DataverseClient(URL, _Tokens(), transport=transport) as client:
        rows = await client.query("things", page_size=10)
    assert len(rows) == 25 and len(transport.requests) == 3
