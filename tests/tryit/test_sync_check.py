"""``dualwrite sync check``: drift made behind the bridge's back (the person-like client writing to
each emulator directly, no bridge to notify) is found with its differing fields, and repaired from
the chosen side; exit statuses as diff's (0 none, 1 drift found, 2 trouble)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bridge.infofile import sandbox_settings
from bridge.state.factory import create_state, drift_state
from tests.e2e.harness import Harness
from tests.tryit.conftest import dualwrite


async def _drift_behind_the_bridge(person: Harness) -> None:
    for code, text in (("Same", "same"), ("Changed", "F&O text"), ("OnlyScm", "only F&O")):
        made = await person.scm_create("DeliveryModesV2", {"ModeCode": code, "ModeDescription": text})
        assert made.status == 201, made.body
    for code, text in (("Same", "same"), ("Changed", "Dataverse text"), ("OnlyCds", "only Dataverse")):
        made = await person.cds_create("msdyn_shipvias", {"msdyn_name": code, "msdyn_description": text})
        assert made.status == 201, made.body


async def test_drift_is_found_with_its_fields_and_repaired(
    sandbox: Any, info_file: Path, person: Harness
) -> None:
    await _drift_behind_the_bridge(person)
    ran = await dualwrite("sync", "check", "--sandbox", str(info_file), "--map", "ship_via", "--json")
    assert ran.status == 1, ran.out + ran.err
    report = json.loads(ran.out)
    ship = report["maps"]["ship_via"]
    assert ship["sides"]["cds"]["read"] == 3 and ship["sides"]["scm"]["read"] == 3
    assert ship["sides"]["cds"]["missing"] == 1 and ship["sides"]["scm"]["missing"] == 1
    assert ship["different"] == 1 and ship["unchanged"] == 1 and report["drifted"] == 3
    found = {r["key"]: r for r in ship["drift"]}
    assert found["OnlyScm"]["missing_on"] == "cds" and found["OnlyCds"]["missing_on"] == "scm"
    assert found["Changed"]["fields"] == {"cds": ["msdyn_description"], "scm": ["ModeDescription"]}

    text = await dualwrite("sync", "check", "--sandbox", str(info_file), "--map", "ship_via")
    assert (
        text.status == 1 and "USMF/Changed" in text.out and "msdyn_description / ModeDescription" in text.out
    )

    fixed = await dualwrite(
        "sync",
        "check",
        "--sandbox",
        str(info_file),
        "--map",
        "ship_via",
        "--repair",
        "--from",
        "scm",
        "--json",
    )
    assert fixed.status == 1, fixed.out + fixed.err  # drift was found (and repaired)
    repaired = json.loads(fixed.out)["maps"]["ship_via"]
    assert repaired["repaired"] == 3 and repaired["repair_failed"] == 0
    assert {r["key"]: r["repair"] for r in repaired["drift"]} == {
        "Changed": "applied",
        "OnlyCds": "deleted",  # F&O, the side copied from, lacks it
        "OnlyScm": "applied",
    }
    assert repaired["sides"]["cds"]["written"] == 3
    changed = await person.cds_find("msdyn_shipvias", "msdyn_name", "Changed")
    assert changed is not None and changed["msdyn_description"] == "F&O text"
    assert await person.cds_find("msdyn_shipvias", "msdyn_name", "OnlyCds") is None
    assert await person.cds_find("msdyn_shipvias", "msdyn_name", "OnlyScm") is not None

    again = await dualwrite("sync", "check", "--sandbox", str(info_file), "--map", "ship_via")
    assert again.status == 0, again.out + again.err
    assert "no drift" in again.out

    # The last check per map is kept in the state store (the dashboard and /api/drift read it).
    state = create_state(sandbox_settings(info_file).settings)
    await state.open()
    try:
        last = await drift_state(state).drift_check("ship_via")
    finally:
        await state.close()
    assert last is not None and last.drifted == 0 and last.unchanged == 3


async def test_lookups_compare_by_the_record_they_point_at(info_file: Path, person: Harness) -> None:
    # The same warehouse on both sides, its site lookup pointing at the same site: no drift.
    made = await person.scm_create(
        "Warehouses", {"WarehouseId": "31", "WarehouseName": "East", "OperationalSiteId": "1"}
    )
    assert made.status == 201, made.body
    site = await person.cds_find("msdyn_operationalsites", "msdyn_siteid", "1")
    assert site is not None
    row = await person.cds_create(
        "msdyn_warehouses",
        {
            "msdyn_warehouseidentifier": "31",
            "msdyn_name": "31",
            "msdyn_description": "East",
            "msdyn_warehousetype": 192350000,
            "msdyn_operationalsite@odata.bind": f"/msdyn_operationalsites({site['msdyn_operationalsiteid']})",
        },
    )
    assert row.status == 201, row.body
    ran = await dualwrite("sync", "check", "--sandbox", str(info_file), "--map", "warehouse", "--json")
    report = json.loads(ran.out)
    assert ran.status == 0, ran.out
    assert report["maps"]["warehouse"]["unchanged"] >= 1


async def test_repair_needs_a_side_and_an_unknown_map_is_trouble(info_file: Path) -> None:
    ran = await dualwrite("sync", "check", "--sandbox", str(info_file), "--repair")
    assert ran.status == 2 and "--repair needs --from" in ran.err
    ran = await dualwrite("sync", "check", "--sandbox", str(info_file), "--map", "nothing")
    assert ran.status == 2 and "no map nothing" in ran.err


async def test_a_system_that_fails_the_reads_is_trouble(sandbox: Any, info_file: Path) -> None:
    sandbox.faults["fno"].update(unavailable_rate=1.0)
    ran = await dualwrite("sync", "check", "--sandbox", str(info_file), "--map", "ship_via", "--json")
    assert ran.status == 2, ran.out + ran.err
    report = json.loads(ran.out)
    assert report["errors"] and report["errors"][0].startswith("ship_via: scm")


async def test_dataverse_down_before_the_check_begins_is_trouble(sandbox: Any, info_file: Path) -> None:
    sandbox.faults["dataverse"].update(unavailable_rate=1.0)
    ran = await dualwrite("sync", "check", "--sandbox", str(info_file), "--map", "ship_via")
    assert ran.status == 2, ran.out + ran.err
    assert "dualwrite sync check: cds" in ran.err
