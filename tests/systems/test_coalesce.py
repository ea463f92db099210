"""Concurrent writes travel together as one $batch; each caller still gets its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.core.deadline import deadline_scope
from bridge.core.errors import RejectedError, RetryableError
from bridge.systems.connect import coalesced
from bridge.systems.dataverse import DataverseClient
from bridge.systems.fno import FnoClient
from bridge.systems.http import RetryPolicy
from bridge.systems.transport import Response
from tests.systems.helpers import tokens_for

FAST = RetryPolicy(attempts=2, initial=0.01, maximum=0.05)


@pytest.fixture
async def fno(sandbox_info: Any) -> AsyncIterator[FnoClient]:
    tokens = tokens_for(sandbox_info, sandbox_info.scm_scope)
    async with coalesced(
        FnoClient(sandbox_info.scm_url, tokens, ca_file=sandbox_info.ca_file, retry=FAST)
    ) as client:
        yield client


def _mode(code: str) -> dict[str, str]:
    return {"dataAreaId": "usmf", "ModeCode": code, "ModeDescription": f"mode {code}"}


async def test_concurrent_writes_go_in_fewer_requests_and_all_apply(fno: FnoClient) -> None:
    await fno.get("DeliveryModesV2", {"dataAreaId": "usmf", "ModeCode": "none"})  # token and connection
    before = fno.http.requests_sent
    rows = await asyncio.gather(*(fno.create("DeliveryModesV2", _mode(f"B{n:02d}")) for n in range(30)))
    assert [r["ModeCode"] for r in rows] == [f"B{n:02d}" for n in range(30)]  # each its own answer
    assert all(r.get("@odata.etag") for r in rows)
    assert fno.http.coalescer is not None and fno.http.coalescer.batches_sent >= 1
    assert fno.http.requests_sent - before < 30
    etags = await asyncio.gather(
        *(
            fno.update(
                "DeliveryModesV2",
                {"dataAreaId": "usmf", "ModeCode": f"B{n:02d}"},
                {"ModeDescription": "changed"},
            )
            for n in range(30)
        )
    )
    assert all(etags)  # the ETag of each part's answer reaches its caller
    stored = await fno.query("DeliveryModesV2", filter="ModeDescription eq 'changed'")
    assert len(stored) == 30


async def test_a_rejected_write_in_a_batch_fails_alone_with_its_own_message(fno: FnoClient) -> None:
    codes = ["OK1", "MUCH-TOO-LONG-CODE", "OK2"]  # ModeCode takes 10 characters on F&O
    results = await asyncio.gather(
        *(fno.create("DeliveryModesV2", _mode(code)) for code in codes), return_exceptions=True
    )
    assert isinstance(results[1], RejectedError) and "10" in results[1].message
    assert not isinstance(results[0], BaseException) and not isinstance(results[2], BaseException)
    assert fno.http.coalescer is not None and fno.http.coalescer.batches_sent == 1


async def test_writes_under_a_deadline_are_never_held_back(fno: FnoClient) -> None:
    await fno.get("DeliveryModesV2", {"dataAreaId": "usmf", "ModeCode": "none"})
    before = fno.http.requests_sent
    with deadline_scope(5.0):  # a synchronous change's writes go straight out
        await asyncio.gather(*(fno.create("DeliveryModesV2", _mode(f"S{n}")) for n in range(5)))
    assert fno.http.requests_sent - before == 5
    assert fno.http.coalescer is not None and fno.http.coalescer.batches_sent == 0


async def test_dataverse_writes_coalesce_too(sandbox_info: Any) -> None:
    tokens = tokens_for(sandbox_info, sandbox_info.cds_scope)
    async with coalesced(
        DataverseClient(sandbox_info.cds_url, tokens, ca_file=sandbox_info.ca_file, retry=FAST)
    ) as cds:
        company = await cds.company_id("USMF")
        made = await asyncio.gather(
            *(
                cds.create_with_etag(
                    "msdyn_shipvias",
                    {"msdyn_name": f"V{n}", "msdyn_company@odata.bind": f"/cdm_companies({company})"},
                    primary_id="msdyn_shipviaid",
                )
                for n in range(10)
            )
        )
        assert len({record_id for record_id, _ in made}) == 10 and all(etag for _, etag in made)
        assert cds.http.coalescer is not None and cds.http.coalescer.batches_sent >= 1


async def test_a_lone_write_goes_at_once_as_a_plain_request(fno: FnoClient) -> None:
    await fno.get("DeliveryModesV2", {"dataAreaId": "usmf", "ModeCode": "none"})
    before = fno.http.requests_sent
    await fno.create("DeliveryModesV2", _mode("ALONE"))
    assert fno.http.requests_sent - before == 1
    assert fno.http.coalescer is not None and fno.http.coalescer.batches_sent == 0


async def test_writes_issued_while_requests_are_in_flight_wait_and_go_together(
    fno: FnoClient, sandbox: Any
) -> None:
    """Self-clocking: no timer; what queues up behind the requests in flight leaves as one batch when
    one of them comes back, however many event-loop turns it took to queue up."""
    coalescer = fno.http.coalescer
    assert coalescer is not None
    await fno.get("DeliveryModesV2", {"dataAreaId": "usmf", "ModeCode": "none"})
    coalescer.max_in_flight = 1
    sandbox.faults["fno"].update(latency_ms=200)  # the first write stays in flight a while
    before = fno.http.requests_sent
    first = asyncio.ensure_future(fno.create("DeliveryModesV2", _mode("FIRST")))
    await asyncio.sleep(0.02)  # it left alone
    later = []
    for wave in range(3):  # three separate loop turns while it is in flight
        later += [
            asyncio.ensure_future(fno.create("DeliveryModesV2", _mode(f"W{wave}{n}"))) for n in range(4)
        ]
        await asyncio.sleep(0.01)
    assert coalescer.batches_sent == 0  # nothing else left yet
    await asyncio.gather(first, *later)
    assert fno.http.requests_sent - before == 2  # the lone first write, then one $batch of 12
    assert coalescer.batches_sent == 1 and coalescer.operations_batched == 12


async def test_a_batch_refused_as_a_whole_is_sent_one_by_one(fno: FnoClient) -> None:
    """A 4xx for the $batch itself says nothing about each write: each goes again alone and its caller
    gets its own answer (here: all applied, and the too-long code refused on its own)."""
    coalescer = fno.http.coalescer
    assert coalescer is not None

    async def refused(content_type: str, body: bytes) -> Response:
        raise RejectedError("The batch body has no closing delimiter", system="scm", status=400)

    coalescer._send_batch = refused  # type: ignore[method-assign]
    codes = ["ONE", "TWO", "MUCH-TOO-LONG-CODE", "THREE"]
    results = await asyncio.gather(
        *(fno.create("DeliveryModesV2", _mode(code)) for code in codes), return_exceptions=True
    )
    assert coalescer.fallbacks == 1
    assert isinstance(results[2], RejectedError) and "10" in results[2].message
    assert [r["ModeCode"] for i, r in enumerate(results) if i != 2] == ["ONE", "TWO", "THREE"]  # type: ignore[index]
    stored = await fno.query("DeliveryModesV2", filter="startswith(ModeDescription, 'mode ')")
    assert {r["ModeCode"] for r in stored} >= {"ONE", "TWO", "THREE"}


async def test_a_batch_failing_with_a_server_error_is_sent_one_by_one(fno: FnoClient) -> None:
    """A 500 for the whole batch (after the client's own retries) may be one write's doing: each
    write goes alone, so the others are not held back by it."""
    coalescer = fno.http.coalescer
    assert coalescer is not None

    async def broken(content_type: str, body: bytes) -> Response:
        raise RetryableError("scm 500: An error has occurred.", system="scm", status=500)

    coalescer._send_batch = broken  # type: ignore[method-assign]
    rows = await asyncio.gather(*(fno.create("DeliveryModesV2", _mode(f"E{n}")) for n in range(3)))
    assert [r["ModeCode"] for r in rows] == ["E0", "E1", "E2"]
    assert coalescer.fallbacks == 1


@pytest.mark.parametrize("status", [429, 503, None])
async def test_a_throttled_or_unreachable_batch_makes_every_write_wait(
    fno: FnoClient, status: int | None
) -> None:
    """429/503 (or no answer at all) after the client's retries: the service asked for less, so no
    write is sent alone; each caller gets the retryable error, Retry-After included."""
    coalescer = fno.http.coalescer
    assert coalescer is not None

    async def wait(content_type: str, body: bytes) -> Response:
        raise RetryableError("scm busy", system="scm", status=status, retry_after=7.0)

    coalescer._send_batch = wait  # type: ignore[method-assign]
    before = fno.http.requests_sent
    results = await asyncio.gather(
        *(fno.create("DeliveryModesV2", _mode(f"T{n}")) for n in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RetryableError) and r.retry_after == 7.0 for r in results)
    assert coalescer.fallbacks == 0 and fno.http.requests_sent == before  # nothing went one by one
