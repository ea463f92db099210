"""Synchronous changes whose caller is gone: after a restart of the bridge, or a pause.

A synchronous change in the queue that no caller waits for any more (its HTTP call died with an
earlier run of the bridge) belongs to a Dataverse transaction that rolled back: it must never be
applied, and if it was written just before the crash, the write is undone from the undo journal."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest

from bridge.core.events import ChangeEvent, Operation, SyncMode, System
from bridge.core.ledger import LedgerEntry
from bridge.engine.outcome import UNCONFIRMED
from bridge.queue.base import QueuedEvent
from bridge.sandbox.faults import FaultSettings
from tests.e2e.harness import Harness, eventually


def _sync_create(code: str) -> ChangeEvent:
    return ChangeEvent(
        event_id=f"cds:{uuid.uuid4()}",
        source=System.CDS,
        entity="ship_via",
        company="USMF",
        key=code,
        operation=Operation.CREATE,
        mode=SyncMode.SYNC,
        record_id=str(uuid.uuid4()),
        image={"msdyn_name": code, "msdyn_description": "from an earlier run"},
        changed={"msdyn_name": code},
    )


async def _written_by_an_earlier_run(env: Harness, code: str, description: str) -> None:
    """The F&O write an earlier run of the bridge made (with the bridge's own client)."""
    made = await env.request(
        "scm",
        "POST",
        "DeliveryModesV2",
        {"dataAreaId": "usmf", "ModeCode": code, "ModeDescription": description},
        client="bridge",
    )
    assert made.status == 201


async def _failures(env: Harness) -> list[str]:
    return [f.kind for f in await env.bridge.state.failures()]


async def test_a_sync_change_left_by_an_earlier_run_is_never_applied(env: Harness) -> None:
    event = _sync_create("Orphan")
    assert await env.bridge.queue.enqueue(event)  # as if received just before a crash
    env.bridge.engine.kick()
    await env.settle()
    assert await env.scm_find("DeliveryModesV2", "ModeCode", "Orphan") is None
    assert "timeout" in await _failures(env)
    assert env.writes("scm", entity_set="DeliveryModesV2") == 0


async def test_a_sync_write_made_just_before_a_crash_is_undone(env: Harness) -> None:
    event = _sync_create("Undone")
    # The earlier run journalled, then wrote to F&O, then died before answering Dataverse.
    await env.bridge.state.put_journal(
        event.event_id, {"target": "scm", "before": None, "ledger_before": None, "deleted": False}
    )
    await _written_by_an_earlier_run(env, "Undone", "x")
    assert await env.bridge.queue.enqueue(event)
    env.bridge.engine.kick()
    await env.settle()
    assert await env.scm_find("DeliveryModesV2", "ModeCode", "Undone") is None  # reverted
    assert await env.bridge.state.get_journal(event.event_id) is None


async def test_a_sync_write_recorded_before_a_crash_is_kept_and_reported_unconfirmed(env: Harness) -> None:
    event = _sync_create("Kept")
    # The earlier run wrote to F&O and recorded it (the undo entry went with the ledger entry), then
    # died with the event still queued: whether Dataverse had the answer is unknown.
    await _written_by_an_earlier_run(env, "Kept", "from an earlier run")
    await env.bridge.state.put_ledger(
        LedgerEntry(
            record_key=event.record_key,
            entity=event.entity,
            company=event.company,
            key=event.key,
            cds_id=event.record_id,
            cds_image={"msdyn_name": "Kept", "msdyn_description": "from an earlier run"},
            scm_image={"ModeCode": "Kept", "ModeDescription": "from an earlier run"},
            last_event_id=event.event_id,
        )
    )
    assert await env.bridge.queue.enqueue(event)
    env.bridge.engine.kick()
    await env.settle()
    row = await env.scm_find("DeliveryModesV2", "ModeCode", "Kept")
    assert row is not None and row["ModeDescription"] == "from an earlier run"  # not reverted
    assert env.writes("scm", entity_set="DeliveryModesV2") == 1  # nor written again
    [failure] = await env.bridge.state.failures()
    assert failure.kind == "timeout" and failure.target_message == UNCONFIRMED
    assert await env.bridge.queue.depth() == 0


async def test_the_answer_to_a_sync_save_does_not_wait_for_the_queue_bookkeeping(
    env: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the write is recorded, the save is answered; taking the event off the queue follows."""
    queue = env.bridge.queue
    complete_many, release = queue.complete_many, asyncio.Event()

    async def held_complete_many(items: Sequence[QueuedEvent]) -> list[bool]:
        await release.wait()
        return await complete_many(items)

    monkeypatch.setattr(queue, "complete_many", held_complete_many)
    created = await env.cds_create("msdyn_shipvias", {"msdyn_name": "Quick", "msdyn_description": "a"})
    assert created.status == 201  # answered while the event is still on the queue
    assert await queue.depth() == 1
    row = await env.scm_find("DeliveryModesV2", "ModeCode", "Quick")
    assert row is not None and row["ModeDescription"] == "a"
    release.set()
    await env.settle()
    assert await queue.depth() == 0 and await env.bridge.state.failures() == []


async def test_a_sync_change_accepted_while_paused_is_applied_on_resume(env: Harness) -> None:
    assert (await env.ops("POST", "/api/maps/ship_via/pause", {"reason": "maintenance"})).status == 200
    created = await env.cds_create("msdyn_shipvias", {"msdyn_name": "Later", "msdyn_description": "queued"})
    assert created.status == 201  # acknowledged once durable: the save is not held while paused
    assert await env.scm_find("DeliveryModesV2", "ModeCode", "Later") is None
    assert (await env.ops("POST", "/api/maps/ship_via/resume", {"mode": "catch-up"})).status == 200
    await env.settle()
    row = await env.scm_find("DeliveryModesV2", "ModeCode", "Later")
    assert row is not None and row["ModeDescription"] == "queued"


async def test_a_sync_write_whose_caller_left_meanwhile_is_undone_under_a_journal_guard(
    env: Harness,
) -> None:
    """The originator disconnects while the F&O write is on its way: the write lands, is recorded,
    and is then undone; from the moment it is recorded until it is undone an undo entry stands in the
    journal, so a crash at any point of the undo finishes it after the restart."""
    env.sandbox.faults["fno"].configure(FaultSettings(latency_ms=300))
    event = _sync_create("Left")
    call = asyncio.create_task(env.bridge.engine.submit(event))
    await asyncio.sleep(0.1)  # the write is on its way
    call.cancel()  # the originator disconnects (its transaction rolls back)
    state = env.bridge.state
    guarded = False

    async def undone() -> bool:
        nonlocal guarded
        ledger = await state.get_ledger(event.record_key)
        recorded = ledger is not None and ledger.last_event_id == event.event_id
        if recorded and await state.get_journal(event.event_id) is not None:
            guarded = True
        return "timeout" in await _failures(env)

    await eventually(undone, what="the write undone")
    env.sandbox.faults["fno"].configure(FaultSettings())
    assert guarded
    assert await env.scm_find("DeliveryModesV2", "ModeCode", "Left") is None
    [failure] = await state.failures()
    assert failure.source_message == "reverted on the target"
    assert await state.get_journal(event.event_id) is None
