"""Putting the clients together (``bridge.systems.connect``): the coalescer is given to a client by
the composition, and then its concurrent writes travel as one ``$batch`` (canned answers, in memory)."""

from __future__ import annotations

import asyncio
import json

import pytest

from bridge.core.errors import RejectedError
from bridge.settings import Settings
from bridge.systems.connect import client_counts, coalesced, connect_systems
from bridge.systems.fno import FnoClient
from bridge.systems.http import RetryPolicy
from bridge.systems.transport import MockTransport, Request, Response
from bridge.wire.batch import BatchRequest, BatchResponse, parse_batch, write_batch

URL = "https://scm.example/data/"


class Tokens:
    async def token(self) -> str:
        return "t"

    async def refresh(self) -> str:
        return "t"


def _answer(request: Request) -> Response:
    """F&O in a few lines: a created row for each POST, alone or inside a ``$batch``; a too-long
    ModeCode is refused with F&O's error shape."""

    def created(body: bytes) -> tuple[int, bytes]:
        row = json.loads(body)
        if len(row["ModeCode"]) > 10:
            return 400, b'{"error": {"message": "x", "innererror": {"message": "longer than 10"}}}'
        return 201, json.dumps({**row, "@odata.etag": 'W/"1"'}).encode()

    if request.url.endswith("/$batch"):
        parts = parse_batch(request.body or b"", request.headers["Content-Type"])
        answers = []
        for part in parts:
            assert isinstance(part, BatchRequest)
            status, body = created(part.body)
            answers.append(BatchResponse(status, {"Content-Type": "application/json"}, body, part.content_id))
        content_type, payload = write_batch(answers)
        return Response.of(200, {"Content-Type": content_type}, payload.decode())
    status, body = created(request.body or b"")
    return Response.of(status, {"Content-Type": "application/json"}, body.decode())


def _mode(code: str) -> dict[str, str]:
    return {"dataAreaId": "usmf", "ModeCode": code}


async def test_a_coalesced_client_sends_concurrent_writes_as_one_batch_each_with_its_answer() -> None:
    transport = MockTransport(_answer)
    async with coalesced(FnoClient(URL, Tokens(), transport=transport)) as fno:
        codes = ["A", "B", "MUCH-TOO-LONG", "C"]
        first = asyncio.ensure_future(fno.create("DeliveryModesV2", _mode("FIRST")))
        await asyncio.sleep(0)  # it leaves alone; the next ones join while it is out
        results = await asyncio.gather(
            *(fno.create("DeliveryModesV2", _mode(c)) for c in codes), return_exceptions=True
        )
        await first
    assert [r["ModeCode"] for r in results if isinstance(r, dict)] == ["A", "B", "C"]
    assert isinstance(results[2], RejectedError) and "longer than 10" in results[2].message
    assert [r.url.rsplit("/", 1)[1] for r in transport.requests] == ["DeliveryModesV2", "$batch"]
    assert client_counts(fno) == {"requests": 2, "batches": 1, "batched_writes": 4, "batch_fallbacks": 0}


async def test_a_client_without_a_coalescer_sends_every_write_alone() -> None:
    transport = MockTransport(_answer)
    async with FnoClient(URL, Tokens(), transport=transport, retry=RetryPolicy(attempts=1)) as fno:
        assert fno.http.coalescer is None
        await asyncio.gather(*(fno.create("DeliveryModesV2", _mode(c)) for c in "ABCD"))
    assert len(transport.requests) == 4
    assert client_counts(fno) == {"requests": 4, "batches": 0, "batched_writes": 0, "batch_fallbacks": 0}


@pytest.mark.parametrize("coalesce", [True, False])
async def test_connect_systems_gives_both_clients_a_coalescer_when_the_settings_ask(coalesce: bool) -> None:
    system = {"url": URL, "scope": "api://x/.default"}
    settings = Settings.model_validate(
        {
            "cds": system,
            "scm": system,
            "auth": {"authority": "https://login.example/t", "client_id": "id"},
            "sync": {"coalesce_writes": coalesce},
        }
    )
    systems = connect_systems(settings, "secret")
    try:
        assert (systems.cds.http.coalescer is not None) is coalesce
        assert (systems.scm.http.coalescer is not None) is coalesce
    finally:
        await systems.close()
