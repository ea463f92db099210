"""What a change costs on the other system: one call when the ledger knows the record's ETag."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.queue.base import QueuedEvent
from bridge.sandbox.faults import FaultSettings
from tests.e2e.harness import Harness, eventually


async def test_an_update_costs_one_call_on_the_other_system_in_both_directions(env: Harness) -> None:
    created = await env.cds_create("msdyn_shipvias", {"msdyn_name": "One", "msdyn_description": "a"})
    assert created.status == 201
    record_id = created.body["msdyn_shipviaid"]
    await env.settle()

    scm_calls = env.bridge.scm.http.requests_sent
    assert (await env.cds_update("msdyn_shipvias", record_id, {"msdyn_description": "b"})).status == 204
    await env.settle()
    assert env.bridge.scm.http.requests_sent - scm_calls == 1  # a PATCH with If-Match, no read first

    cds_calls = env.bridge.cds.http.requests_sent
    assert (
        await env.scm_update("DeliveryModesV2", "ModeCode", "One", {"ModeDescription": "c"})
    ).status == 204

    async def synced() -> bool:
        row = await env.cds_find("msdyn_shipvias", "msdyn_name", "One")
        return row is not None and row["msdyn_description"] == "c"

    await eventually(synced, what="F&O's change in Dataverse")
    await env.settle()
    # The harness's own reads go through its own session; the bridge made exactly one call.
    assert env.bridge.cds.http.requests_sent - cds_calls == 1


async def test_a_stale_etag_makes_the_bridge_read_and_decide(env: Harness) -> None:
    assert (
        await env.scm_create("DeliveryModesV2", {"ModeCode": "Two", "ModeDescription": "a"})
    ).status == 201
    await eventually(lambda: env.cds_find("msdyn_shipvias", "msdyn_name", "Two"), what="synced")
    await env.settle()
    # Dataverse changes without the bridge hearing of it (its notification is dropped) ...
    env.sandbox.faults["dataverse"].configure(FaultSettings(drop_next=1))
    row = await env.cds_find("msdyn_shipvias", "msdyn_name", "Two")
    assert row is not None
    await env.request("cds", "PATCH", f"msdyn_shipvias({row['msdyn_shipviaid']})", {"msdyn_name": "Two"})
    await env.settle()
    # ... so the F&O change meets a stale ETag: 412, then a read, then the write (newer wins: F&O).
    calls = env.bridge.cds.http.requests_sent
    assert (
        await env.scm_update("DeliveryModesV2", "ModeCode", "Two", {"ModeDescription": "b"})
    ).status == 204

    async def synced() -> bool:
        found = await env.cds_find("msdyn_shipvias", "msdyn_name", "Two")
        return found is not None and found["msdyn_description"] == "b"

    await eventually(synced, what="F&O's change in Dataverse")
    await env.settle()
    assert env.bridge.cds.http.requests_sent - calls == 3  # PATCH (412), GET, PATCH


async def test_many_asynchronous_changes_travel_in_batches_and_are_counted(env: Harness) -> None:
    """F&O changes arrive as asynchronous data events: their Dataverse writes queue up behind the
    requests in flight and leave as $batch requests, which the metrics count per system."""
    before = env.bridge.metrics.request_counts()["cds"]
    codes = [f"B{n:02d}" for n in range(40)]
    made = await asyncio.gather(
        *(env.scm_create("DeliveryModesV2", {"ModeCode": c, "ModeDescription": "batched"}) for c in codes)
    )
    assert {r.status for r in made} == {201}

    async def all_synced() -> bool:
        resp = await env.request("cds", "GET", "msdyn_shipvias?$filter=msdyn_description eq 'batched'")
        return len(resp.body["value"]) == len(codes)

    await eventually(all_synced, what="40 F&O creates in Dataverse")
    after = env.bridge.metrics.request_counts()["cds"]
    assert after.batches > before.batches  # some went together
    assert after.batched_writes - before.batched_writes >= 2
    assert after.requests - before.requests < len(codes)  # fewer requests than writes


async def test_a_synchronous_change_to_an_idle_record_goes_straight_from_the_queue_to_its_apply(
    env: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leased in the enqueue's own transaction, journalled with one statement: the database hops a
    synchronous save waits for are as few as its guarantees allow."""
    queue, state = env.bridge.queue, env.bridge.state
    leased_by_worker: list[str] = []
    journal_reads: list[str] = []
    lease, get_journal = queue.lease, state.get_journal

    async def spy_lease(*args: Any, **kwargs: Any) -> list[QueuedEvent]:
        items = await lease(*args, **kwargs)
        leased_by_worker.extend(i.event.event_id for i in items)
        return items

    async def spy_get_journal(event_id: str) -> dict[str, Any] | None:
        journal_reads.append(event_id)
        return await get_journal(event_id)

    monkeypatch.setattr(queue, "lease", spy_lease)
    monkeypatch.setattr(state, "get_journal", spy_get_journal)
    created = await env.cds_create("msdyn_shipvias", {"msdyn_name": "Fast", "msdyn_description": "a"})
    assert created.status == 201
    record_id = created.body["msdyn_shipviaid"]
    assert (await env.cds_update("msdyn_shipvias", record_id, {"msdyn_description": "b"})).status == 204
    row = await env.scm_find("DeliveryModesV2", "ModeCode", "Fast")
    assert row is not None and row["ModeDescription"] == "b"  # applied before the save returned
    await env.settle()
    assert not [i for i in leased_by_worker if i.startswith("cds:")]  # never waited for the worker
    assert journal_reads == []  # the undo entry is written unless there, in one statement
    assert await queue.depth() == 0 and await state.journal_ids() == []
