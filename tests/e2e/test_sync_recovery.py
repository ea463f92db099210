"""Synchronous changes whose caller is gone: after a restart of the bridge, or a pause.

A synchronous change in the queue that no caller waits for any more (its HTTP call died with an
earlier run of the bridge) belongs to a Dataverse transaction that rolled back: it must never be
applied, and if it was written just before the crash, the write is undone from the undo journal."""

from __future__ import annotations

import uuid

from bridge.core.events import ChangeEvent, Operation, SyncMode, System
from tests.e2e.harness import Harness


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
    made = await env.request(
        "scm",
        "POST",
        "DeliveryModesV2",
        {"dataAreaId": "usmf", "ModeCode": "Undone", "ModeDescription": "x"},
        client="bridge",
    )
    assert made.status == 201
    assert await env.bridge.queue.enqueue(event)
    env.bridge.engine.kick()
    await env.settle()
    assert await env.scm_find("DeliveryModesV2", "ModeCode", "Undone") is None  # reverted
    assert await env.bridge.state.get_journal(event.event_id) is None


async def test_a_sync_change_accepted_while_paused_is_applied_on_resume(env: Harness) -> None:
    assert (await env.ops("POST", "/api/maps/ship_via/pause", {"reason": "maintenance"})).status == 200
    created = await env.cds_create("msdyn_shipvias", {"msdyn_name": "Later", "msdyn_description": "queued"})
    assert created.status == 201  # acknowledged once durable: the save is not held while paused
    assert await env.scm_find("DeliveryModesV2", "ModeCode", "Later") is None
    assert (await env.ops("POST", "/api/maps/ship_via/resume", {"mode": "catch-up"})).status == 200
    await env.settle()
    row = await env.scm_find("DeliveryModesV2", "ModeCode", "Later")
    assert row is not None and row["ModeDescription"] == "queued"
