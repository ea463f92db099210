"""``conflict_policy: manual`` over real HTTP: both systems edit a record, the bridge parks the
conflict and writes nothing; an administrator resolves it through the API and both systems end with
the chosen version. People act through the sandbox's user client, never as the bridge."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.app import Bridge
from bridge.demo import connect, default_mappings_dir, demo_settings
from bridge.settings import SyncSettings
from tests.e2e.harness import Harness, client_context, eventually

SHIPVIAS, MODES = "msdyn_shipvias", "DeliveryModesV2"


@pytest.fixture
def manual_mappings(tmp_path: Path) -> Path:
    """The shipped mappings, with ship_via's policy set to manual."""
    target = tmp_path / "mappings"
    shutil.copytree(default_mappings_dir(), target)
    path = target / "ship_via.yaml"
    text = path.read_text(encoding="utf-8")
    assert "conflict_policy: newer-wins" in text
    path.write_text(text.replace("conflict_policy: newer-wins", "conflict_policy: manual"), encoding="utf-8")
    return target


@pytest.fixture
async def menv(
    sandbox: Any, tmp_path: Path, webhook_mode: str, sync_settings: SyncSettings, manual_mappings: Path
) -> AsyncIterator[Harness]:
    settings = demo_settings(sandbox.info, host="127.0.0.1", port=0, data_dir=tmp_path / "bridge")
    settings.sync = sync_settings
    settings.mappings_dir = manual_mappings
    bridge = Bridge(settings)
    await bridge.start()
    keys = await connect(sandbox, bridge, mode=webhook_mode)
    connector = aiohttp.TCPConnector(ssl=client_context(sandbox.info.ca_file))
    async with aiohttp.ClientSession(connector=connector) as http:
        harness = Harness(sandbox=sandbox, bridge=bridge, keys=keys, http=http)
        row = await harness.request("cds", "GET", "cdm_companies?$filter=cdm_companycode eq 'USMF'")
        harness.company_id = row.body["value"][0]["cdm_companyid"]
        try:
            yield harness
        finally:
            await bridge.stop()


async def synced_mode(env: Harness, code: str, text: str) -> str:
    """A mode of delivery created in F&O by a person and synced to Dataverse; its Dataverse id."""
    resp = await env.scm_create(MODES, {"ModeCode": code, "ModeDescription": text})
    assert resp.status == 201, resp.body

    async def in_dataverse() -> dict[str, Any] | None:
        row = await env.cds_find(SHIPVIAS, "msdyn_name", code)
        return row if row and row.get("msdyn_description") == text else None

    row = await eventually(in_dataverse, timeout=15, what=f"{code} in Dataverse")
    await env.settle()
    return str(row["msdyn_shipviaid"])


async def descriptions(env: Harness, code: str) -> tuple[str | None, str | None]:
    cds = await env.cds_find(SHIPVIAS, "msdyn_name", code)
    scm = await env.scm_find(MODES, "ModeCode", code)
    assert cds is not None and scm is not None
    return cds.get("msdyn_description"), scm.get("ModeDescription")


async def open_conflict(env: Harness, code: str) -> dict[str, Any] | None:
    items = (await env.ops("GET", "/api/conflicts?status=open&entity=ship_via")).body["items"]
    return next((c for c in items if c["key"] == code), None)


@pytest.mark.parametrize("webhook_mode", ["async"])
async def test_both_sides_edited_is_parked_then_the_chosen_side_is_written_to_both(menv: Harness) -> None:
    env = menv
    cds_id = await synced_mode(env, "MAN1", "start")
    await env.ops("POST", "/api/maps/ship_via/pause", {"reason": "both sides edit"})
    assert (await env.cds_update(SHIPVIAS, cds_id, {"msdyn_description": "from dataverse"})).status < 300
    assert (await env.scm_update(MODES, "ModeCode", "MAN1", {"ModeDescription": "from fno"})).status < 300
    await env.sandbox.notifier.drain()
    writes_before = (env.writes("cds", entity_set=SHIPVIAS), env.writes("scm", entity_set=MODES))

    await env.ops("POST", "/api/maps/ship_via/resume", {"mode": "catch-up"})
    conflict = await eventually(lambda: open_conflict(env, "MAN1"), timeout=15, what="a parked conflict")
    await env.settle()

    # Parked: nothing written by the bridge, each side keeps its own edit, one conflict for the record.
    assert (env.writes("cds", entity_set=SHIPVIAS), env.writes("scm", entity_set=MODES)) == writes_before
    assert await descriptions(env, "MAN1") == ("from dataverse", "from fno")
    [field] = [f for f in conflict["fields"] if f["cds"] == "msdyn_description"]
    assert field == {
        "cds": "msdyn_description",
        "scm": "ModeDescription",
        "cds_value": "from dataverse",
        "scm_value": "from fno",
        "differs": True,
        "cds_editable": True,
        "scm_editable": True,
    }
    listed = (await env.ops("GET", "/api/conflicts?status=open")).body
    assert [c["key"] for c in listed["items"]] == ["MAN1"] and listed["open"] == 1
    maps = (await env.ops("GET", "/api/maps/ship_via")).body
    assert maps["state"] == "running"  # a parked conflict neither pauses nor fails the map

    # A bad edit changes nothing and leaves the conflict open.
    bad = await env.ops(
        "POST", f"/api/conflicts/{conflict['id']}/resolve", {"winner": "scm", "values": {"Nope": 1}}
    )
    assert bad.status == 400 and "Nope" in bad.body["message"]
    assert await open_conflict(env, "MAN1") is not None

    done = await env.ops("POST", f"/api/conflicts/{conflict['id']}/resolve", {"winner": "scm"})
    assert done.status == 200, done.body
    await env.settle()

    assert await descriptions(env, "MAN1") == ("from fno", "from fno")
    assert await open_conflict(env, "MAN1") is None
    [resolved] = (await env.ops("GET", "/api/conflicts?status=resolved")).body["items"]
    assert (resolved["winner"], resolved["resolved_by"]) == ("scm", "API token")
    again = await env.ops("POST", f"/api/conflicts/{conflict['id']}/resolve", {"winner": "cds"})
    assert again.status == 409
    assert (await env.ops("POST", "/api/conflicts/999/resolve", {"winner": "cds"})).status == 404


@pytest.mark.parametrize("webhook_mode", ["async"])
async def test_the_winner_can_be_edited_before_it_is_written_to_both(menv: Harness) -> None:
    env = menv
    cds_id = await synced_mode(env, "MAN2", "start")
    await env.ops("POST", "/api/maps/ship_via/pause", {})
    await env.cds_update(SHIPVIAS, cds_id, {"msdyn_description": "dv edit"})
    await env.scm_update(MODES, "ModeCode", "MAN2", {"ModeDescription": "fno edit"})
    await env.sandbox.notifier.drain()
    await env.ops("POST", "/api/maps/ship_via/resume", {"mode": "catch-up"})
    conflict = await eventually(lambda: open_conflict(env, "MAN2"), timeout=15, what="a parked conflict")

    body = {"winner": "cds", "values": {"msdyn_description": "agreed by both"}}
    done = await env.ops("POST", f"/api/conflicts/{conflict['id']}/resolve", body)
    assert done.status == 200, done.body
    await env.settle()

    assert await descriptions(env, "MAN2") == ("agreed by both", "agreed by both")


@pytest.mark.parametrize("webhook_mode", ["sync"])
async def test_a_synchronous_save_that_conflicts_is_accepted_at_once_and_parked(menv: Harness) -> None:
    env = menv
    cds_id = await synced_mode(env, "MAN3", "start")
    # F&O's edit is not notified (its data event endpoint is off), so the bridge meets it only when
    # the Dataverse save's write finds the F&O row changed since the last sync.
    endpoints = dict(env.sandbox.notifier.fno.endpoints)
    for endpoint_id in endpoints:
        env.sandbox.notifier.fno.remove_endpoint(endpoint_id)
    assert (await env.scm_update(MODES, "ModeCode", "MAN3", {"ModeDescription": "fno edit"})).status < 300
    scm_writes = env.writes("scm", entity_set=MODES)

    saved = await env.cds_update(SHIPVIAS, cds_id, {"msdyn_description": "dv save"})

    assert saved.status < 300, saved.body  # answered at once: accepted, not refused, not timed out
    conflict = await open_conflict(env, "MAN3")
    assert conflict is not None
    assert await descriptions(env, "MAN3") == ("dv save", "fno edit")  # F&O not written
    assert env.writes("scm", entity_set=MODES) == scm_writes
    for endpoint in endpoints.values():
        env.sandbox.notifier.fno.add_endpoint(endpoint)

    done = await env.ops("POST", f"/api/conflicts/{conflict['id']}/resolve", {"winner": "cds"})
    assert done.status == 200, done.body
    await env.settle()
    assert await descriptions(env, "MAN3") == ("dv save", "dv save")
