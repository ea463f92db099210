"""The emulated Dataverse holds the saved row while a synchronous step runs.

A synchronous step (the notifier's webhook call) runs in ``before_commit``, inside the save's
transaction (MicrosoftDocs/powerapps-docs, powerapps-docs/developer/data-platform/event-framework.md,
"Event execution pipeline": code "at any synchronous stage within the database transaction"); another
write into the row waits until the save commits or rolls back, then runs against the row as it is
then. docs/sandbox-rules.md, "Transactions and synchronous steps"."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bridge.sandbox.contracts import HookFailed, RecordChange
from bridge.sandbox.dataverse.service import DataverseService, sandbox_id
from tests.sandbox.test_odata_harness import AS_BRIDGE, RecordingHooks, serve

B = "/api/data/v9.2/"
USMF = sandbox_id("cdm_company", "USMF")
Client = TestClient[web.Request, web.Application]


@pytest.fixture
def hooks() -> RecordingHooks:
    return RecordingHooks()


@pytest.fixture
async def client(hooks: RecordingHooks) -> AsyncIterator[Client]:
    async with serve(DataverseService(hooks=hooks)) as c:
        yield c


async def _warehouse(client: Client) -> tuple[str, str]:
    body = {"msdyn_warehouseidentifier": "W1", "msdyn_name": "W1"}
    body["msdyn_company@odata.bind"] = f"/cdm_companies({USMF})"
    r = await client.post(B + "msdyn_warehouses", json=body, headers={"Prefer": "return=representation"})
    assert r.status == 201, await r.text()
    row = await r.json()
    return f"{B}msdyn_warehouses({row['msdyn_warehouseid']})", str(row["@odata.etag"])


async def _save_meeting_a_write(
    client: Client, hooks: RecordingHooks, url: str, etag: str, *, refuse: bool
) -> tuple[int, list[str], int]:
    """A person's save whose synchronous step is still running when the bridge writes into the same
    row (with the ETag from before the save); the step accepts or refuses the save. Returns (the
    save's status, the order of what happened, the bridge's write's status)."""
    order: list[str] = []
    other: list[asyncio.Task[Any]] = []
    refusal = HookFailed("Webhook call to https://x/hook failed: 409 Conflict")

    async def step(change: RecordChange) -> None:
        hooks.fail = None
        if other or change.principal.client_id != "sandbox-user":
            return  # the bridge's own write: accepted
        headers = {**AS_BRIDGE, "If-Match": etag}
        other.append(asyncio.create_task(client.patch(url, json={"msdyn_name": "theirs"}, headers=headers)))
        await asyncio.sleep(0.3)  # every chance for the other write to overtake the open transaction
        order.append("step answered")
        hooks.fail = refusal if refuse else None

    hooks.during = step
    saved = await client.patch(url, json={"msdyn_name": "mine"})
    order.append("save done")
    written = await other[0]
    order.append("other write done")
    return saved.status, order, written.status


async def test_a_write_into_the_row_waits_for_the_synchronous_step_and_then_finds_it_changed(
    client: Client, hooks: RecordingHooks
) -> None:
    url, etag = await _warehouse(client)
    saved, order, written = await _save_meeting_a_write(client, hooks, url, etag, refuse=False)
    assert saved == 204
    assert order == ["step answered", "save done", "other write done"]
    assert written == 412  # it ran after the commit: the ETag it carried is from before the save
    assert (await (await client.get(url)).json())["msdyn_name"] == "mine"


async def test_a_write_that_waited_for_a_rolled_back_save_applies_to_the_row_as_before(
    client: Client, hooks: RecordingHooks
) -> None:
    url, etag = await _warehouse(client)
    saved, order, written = await _save_meeting_a_write(client, hooks, url, etag, refuse=True)
    assert saved == 400  # the step refused: rolled back
    assert order == ["step answered", "save done", "other write done"]
    assert written == 204  # the row is as it was before the save: its ETag still matches
    assert (await (await client.get(url)).json())["msdyn_name"] == "theirs"
