"""Catching up after downtime (bridge/catchup.py): a change made on F&O while the bridge was down,
its data event lost, reaches Dataverse when the bridge starts again, through the modified-on
watermarks kept in the state store. The person-like client makes the changes, over real HTTPS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.app import Bridge
from bridge.catchup import CatchUpReport
from bridge.demo import connect, demo_settings
from bridge.settings import Settings, SyncSettings
from bridge.state.factory import drift_state
from tests.e2e.harness import Harness, client_context, eventually


async def _report(bridge: Bridge) -> CatchUpReport | None:
    return bridge.catchup.last_report


def _settings(sandbox: Any, data_dir: Path) -> Settings:
    settings = demo_settings(sandbox.info, host="127.0.0.1", port=0, data_dir=data_dir)
    settings.sync = SyncSettings(backoff_initial_s=0.05, backoff_max_s=0.5, max_attempts=4, lease_s=5)
    return settings


@pytest.fixture
async def person(sandbox: Any) -> AsyncIterator[Harness]:
    connector = aiohttp.TCPConnector(ssl=client_context(sandbox.info.ca_file))
    async with aiohttp.ClientSession(connector=connector) as http:
        harness = Harness(sandbox=sandbox, bridge=None, keys={}, http=http)  # type: ignore[arg-type]
        row = await harness.request("cds", "GET", "cdm_companies?$filter=cdm_companycode eq 'USMF'")
        harness.company_id = row.body["value"][0]["cdm_companyid"]
        yield harness


async def test_a_change_whose_notification_was_lost_while_down_is_synced_on_start(
    sandbox: Any, tmp_path: Path, person: Harness
) -> None:
    settings = _settings(sandbox, tmp_path / "bridge")
    first = Bridge(settings)
    await first.start()
    try:
        await connect(sandbox, first, mode="async")
        made = await person.scm_create("DeliveryModesV2", {"ModeCode": "Ship", "ModeDescription": "Sea"})
        assert made.status == 201, made.body
        await eventually(lambda: person.cds_find("msdyn_shipvias", "msdyn_name", "Ship"), what="the ship via")
        marks = drift_state(first.state)
        assert await marks.watermark("ship_via", "scm") is not None  # marked at the first start
    finally:
        await first.stop()
    # Down: a person changes the mode of delivery, and its data event never arrives.
    sandbox.faults["fno"].update(drop_next=1)
    changed = await person.scm_update(
        "DeliveryModesV2", "ModeCode", "Ship", {"ModeDescription": "Sea freight"}
    )
    assert changed.status == 204, changed.body
    await sandbox.notifier.drain()
    assert [e.kind for e in sandbox.faults["fno"].log] == ["drop"]
    shipped = await person.cds_find("msdyn_shipvias", "msdyn_name", "Ship")
    assert shipped is not None and shipped["msdyn_description"] == "Sea"
    writes_before = sum(1 for w in sandbox.dataverse.write_log if w.entity_set == "msdyn_shipvias")

    again = Bridge(_settings(sandbox, tmp_path / "bridge"))
    await again.start()
    try:

        async def caught_up() -> dict[str, Any] | None:
            row = await person.cds_find("msdyn_shipvias", "msdyn_name", "Ship")
            return row if row and row["msdyn_description"] == "Sea freight" else None

        await eventually(caught_up, timeout=15, what="the change made while down")
        # The engine may apply a submitted row before the catch-up has finished its report.
        report = await eventually(lambda: _report(again), what="the catch-up's report")
        assert report is not None and report.submitted["ship_via"]["scm"] >= 1
        # Dataverse's row, last written by the bridge, carries the ledger's ETag: not handed over.
        assert report.submitted["ship_via"]["cds"] == 0 and report.unchanged["ship_via"]["cds"] >= 1
        # Only the changed record was written: everything else the catch-up found was in the ledger.
        writes = sum(1 for w in sandbox.dataverse.write_log if w.entity_set == "msdyn_shipvias")
        assert writes == writes_before + 1
    finally:
        await again.stop()


async def test_catch_up_can_be_turned_off(sandbox: Any, tmp_path: Path) -> None:
    settings = _settings(sandbox, tmp_path / "bridge")
    settings.drift.catch_up_on_start = False
    bridge = Bridge(settings)
    await bridge.start()
    try:
        assert bridge.catchup.caught_up and bridge.catchup.last_report is None
    finally:
        await bridge.stop()


async def test_a_dataverse_change_made_while_down_reaches_fno_on_start(
    sandbox: Any, tmp_path: Path, person: Harness
) -> None:
    first = Bridge(_settings(sandbox, tmp_path / "bridge"))
    await first.start()
    try:
        await connect(sandbox, first, mode="async")  # asynchronous steps: saves go on while it is down
        made = await person.cds_create("msdyn_shipvias", {"msdyn_name": "Air", "msdyn_description": "Air"})
        assert made.status == 201, made.body
        await eventually(lambda: person.scm_find("DeliveryModesV2", "ModeCode", "Air"), what="the mode")
    finally:
        await first.stop()
    row = await person.cds_find("msdyn_shipvias", "msdyn_name", "Air")
    assert row is not None
    changed = await person.cds_update(
        "msdyn_shipvias", row["msdyn_shipviaid"], {"msdyn_description": "Air cargo"}
    )
    assert changed.status == 204, changed.body
    await sandbox.notifier.drain()  # its webhook call failed: the bridge was down
    mode = await person.scm_find("DeliveryModesV2", "ModeCode", "Air")
    assert mode is not None and mode["ModeDescription"] == "Air"

    again = Bridge(_settings(sandbox, tmp_path / "bridge"))
    await again.start()
    try:

        async def caught_up() -> dict[str, Any] | None:
            found = await person.scm_find("DeliveryModesV2", "ModeCode", "Air")
            return found if found and found["ModeDescription"] == "Air cargo" else None

        await eventually(caught_up, timeout=15, what="the Dataverse change made while down")
        # The engine may apply a submitted row before the catch-up has finished its report.
        report = await eventually(lambda: _report(again), what="the catch-up's report")
        assert report is not None and report.submitted["ship_via"]["cds"] >= 1
    finally:
        await again.stop()
