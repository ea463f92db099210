"""The initial sync end to end: both emulators pre-filled behind the bridge's back, the run started
through the bridge's operations API over real HTTP, the systems compared afterwards."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.core.events import System
from tests.e2e.harness import Harness
from tests.e2e.initial_data import CDS_SETS, FOLLOWED, SCM_SETS, fill, side_rows, still_different

MAPS = ("ship_via", "payment_terms", "customer_asset_category", "warehouse", "customer_asset")


@pytest.fixture
def webhook_mode() -> str:
    return "async"


async def run_initial(h: Harness, body: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    started = await h.ops("POST", "/api/sync/initial", body)
    assert started.status == 202, started.body
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = await h.ops("GET", "/api/sync/initial")
        assert got.status == 200, got.body
        if got.body["run"]["status"] != "running":
            return dict(got.body["run"])
        assert asyncio.get_running_loop().time() < deadline, got.body
        await asyncio.sleep(0.1)


async def test_both_sides_end_equal_with_the_masters_values(env: Harness) -> None:
    filled = fill(env.sandbox)
    for name in MAPS:  # different before: the comparison below can tell
        assert len(still_different(env.sandbox, env.bridge.mappings, name)) >= 12, name
    report = await run_initial(env, {"maps": [], "master": "scm"})
    print(report)
    assert report["status"] == "done", report
    assert report["failed"] == 0, await env.ops("GET", "/api/sync/errors")
    for name in MAPS:
        assert still_different(env.sandbox, env.bridge.mappings, name) == [], name
        cds_col, scm_col = FOLLOWED[name]
        rows = side_rows(env.sandbox, env.bridge.mappings, name)
        cds = {(r.company, r.key): r.image.get(cds_col) for r in rows[System.CDS]}
        scm = {(r.company, r.key): r.image.get(scm_col) for r in rows[System.SCM]}
        for (map_name, company, key), seeded in filled.expected.items():
            if map_name != name:
                continue
            wanted = seeded["scm"] if seeded["scm"] is not None else seeded["cds"]  # F&O is the master
            assert cds[(company, key)] == wanted, (name, company, key)
            assert scm[(company, key)] == wanted, (name, company, key)
    figures = report["maps"]["customer_asset"]
    assert figures["cds"]["written"] > 0 and figures["scm"]["written"] > 0
    assert set(report["maps"]) == set(MAPS)
    assert all(CDS_SETS[n] and SCM_SETS[n] for n in MAPS)


def _order(service: Any, client_id: str) -> list[tuple[str, str]]:
    return [(w.entity_set, w.message) for w in service.write_log if w.client_id == client_id]


async def test_referenced_records_are_written_first_and_self_references_second(env: Harness) -> None:
    fill(env.sandbox, per_kind=1)
    report = await run_initial(env, {"maps": ["customer_asset", "customer_asset_category"], "master": "scm"})
    assert report["status"] == "done" and report["failed"] == 0, report
    assert list(report["maps"]) == ["customer_asset_category", "customer_asset"]  # the order it ran
    writes = _order(env.sandbox.dataverse, env.info.client_id)
    last_category = max(i for i, (s, _) in enumerate(writes) if s == "msdyn_customerassetcategories")
    first_asset = min(i for i, (s, _) in enumerate(writes) if s == "msdyn_customerassets")
    assert last_category < first_asset  # categories before the assets that point at them
    # Parent assets: created without the reference first, the reference written in the second pass.
    asset_writes = [m for s, m in writes if s == "msdyn_customerassets"]
    last_create = max(i for i, m in enumerate(asset_writes) if m == "Create")
    assert "Update" in asset_writes[last_create:], asset_writes
    assert still_different(env.sandbox, env.bridge.mappings, "customer_asset") == []
    child = next(
        r
        for r in env.sandbox.dataverse.rows("msdyn_customerassets")
        if r["msdyn_maintenanceassetid"] == "AS0"
    )
    parent = next(
        r
        for r in env.sandbox.dataverse.rows("msdyn_customerassets")
        if r["msdyn_maintenanceassetid"] == "AS0P"
    )
    assert child["_msdyn_parentasset_value"] == parent["msdyn_customerassetid"]


async def test_every_error_is_kept_with_both_messages_and_a_failed_only_run_retries_them(
    env: Harness,
) -> None:
    company = env.company_id
    good = [{"msdyn_name": f"OK{n:02d}", "msdyn_description": "fine"} for n in range(30)]
    too_long = [{"msdyn_name": f"MUCH-TOO-LONG-{n}", "msdyn_description": "refused"} for n in range(5)]
    env.sandbox.dataverse.seed(
        "msdyn_shipvias", [{**r, "_msdyn_company_value": company} for r in good + too_long]
    )
    site7 = "0c9b5d0e-7777-4d7e-9c3b-0d3c2b1a9e77"
    env.sandbox.dataverse.seed(
        "msdyn_operationalsites",
        [
            {
                "msdyn_operationalsiteid": site7,
                "msdyn_siteid": "7",
                "msdyn_name": "Site 7",
                "_msdyn_company_value": company,
            }
        ],
    )
    env.sandbox.dataverse.seed(
        "msdyn_warehouses",
        [
            {
                "msdyn_warehouseidentifier": "W7",
                "msdyn_name": "W7",
                "_msdyn_operationalsite_value": site7,
                "_msdyn_company_value": company,
            }
        ],
    )
    report = await run_initial(
        env, {"maps": ["ship_via", "warehouse"], "master": "cds", "companies": ["USMF"]}
    )
    errs = (await env.ops("GET", "/api/sync/errors?limit=50")).body
    assert report["status"] == "done" and report["failed"] == 6, errs
    assert report["maps"]["ship_via"]["scm"]["written"] == 30  # the others of their change sets went in

    listed = await env.ops("GET", "/api/sync/errors?limit=2")
    assert listed.status == 200 and listed.body["total"] == 6 and len(listed.body["items"]) == 2
    page = await env.ops("GET", "/api/sync/errors?limit=50&offset=0&map=ship_via")
    items = page.body["items"]
    assert sorted(e["key"] for e in items) == [f"MUCH-TOO-LONG-{n}" for n in range(5)]
    for e in items:
        assert e["target"] == "scm" and e["operation"] == "create" and e["status"] == 400
        assert e["target_message"] and "10" in e["target_message"], e  # F&O's own words: ModeCode takes 10
        assert e["source_message"] == f"read from Dataverse msdyn_shipvias USMF/{e['key']} (the master)"
        assert e["payload"] == {"ModeDescription": "refused"} and e["fields"] == ["ModeDescription"]
    warehouse = (await env.ops("GET", "/api/sync/errors?map=warehouse")).body["items"]
    assert [e["key"] for e in warehouse] == ["W7"] and "OperationalSiteId" in str(
        warehouse[0]["target_message"]
    )
    assert (await env.ops("GET", "/api/sync/errors?map=nope")).body["total"] == 0
    assert (await env.ops("GET", "/api/sync/errors?limit=0")).status == 400

    env.sandbox.fno.seed("OperationalSites", [{"dataAreaId": "usmf", "SiteId": "7"}])  # fixed at the source
    before = len(_order(env.sandbox.fno, env.info.client_id))
    again = await run_initial(env, {"maps": ["ship_via", "warehouse"], "master": "cds", "failed_only": True})
    assert again["status"] == "done", again
    assert (
        again["maps"]["warehouse"]["scm"]["written"] == 1 and again["maps"]["ship_via"]["scm"]["written"] == 0
    )
    assert len(_order(env.sandbox.fno, env.info.client_id)) == before + 1  # only the failed record
    still = (await env.ops("GET", "/api/sync/errors")).body
    assert still["total"] == 5 and {e["map"] for e in still["items"]} == {"ship_via"}
    assert (await env.ops("GET", "/api/sync/errors?state=all")).body["total"] == 6 + 5


async def test_live_changes_during_the_run_are_applied_after_it_never_overwritten(env: Harness) -> None:
    company = env.company_id
    n = 400
    env.sandbox.dataverse.seed(
        "msdyn_shipvias",
        [
            {"msdyn_name": f"M{i:04d}", "msdyn_description": f"cds {i}", "_msdyn_company_value": company}
            for i in range(n)
        ],
    )
    env.sandbox.fno.seed(
        "DeliveryModesV2",
        [{"dataAreaId": "usmf", "ModeCode": f"M{i:04d}", "ModeDescription": f"scm {i}"} for i in range(n)],
    )
    bulk = env.bridge.initial.sync.systems
    for side in (bulk.cds, bulk.scm):  # small pages and change sets: the run takes a while
        side.page_size, side.batch_size = 20, 10
    started = await env.ops("POST", "/api/sync/initial", {"maps": ["ship_via"], "master": "cds"})
    assert started.status == 202
    for _ in range(200):
        state = (await env.ops("GET", "/api/maps/ship_via")).body["state"]
        written = (await env.ops("GET", "/api/sync/initial")).body["run"]["maps"]["ship_via"]["scm"][
            "written"
        ]
        if state == "initializing" and written >= 20:
            break
        await asyncio.sleep(0.01)
    assert state == "initializing"
    # As a person, while the map initializes: an early record (the run is past it) and a late one
    # (not read yet) on F&O, and one on Dataverse, the master.
    for key in ("M0001", f"M{n - 2:04d}"):
        resp = await env.scm_update("DeliveryModesV2", "ModeCode", key, {"ModeDescription": "live scm"})
        assert resp.status == 204, resp.body
    row = await env.cds_find("msdyn_shipvias", "msdyn_name", "M0200")
    assert row is not None
    resp = await env.cds_update("msdyn_shipvias", row["msdyn_shipviaid"], {"msdyn_description": "live cds"})
    assert resp.status == 204, resp.body
    mid = (await env.ops("GET", "/api/sync/initial")).body["run"]
    assert mid["status"] == "running", "the changes were made during the run"
    await env.sandbox.notifier.drain()
    assert await env.bridge.queue.depth() >= 1  # held while the map initializes
    report = await run_initial_wait(env)
    assert report["status"] == "done" and report["failed"] == 0, report
    await env.settle()
    assert (await env.ops("GET", "/api/maps/ship_via")).body["state"] == "running"
    cds = {r["msdyn_name"]: r["msdyn_description"] for r in env.sandbox.dataverse.rows("msdyn_shipvias")}
    scm = {r["ModeCode"]: r["ModeDescription"] for r in env.sandbox.fno.rows("DeliveryModesV2")}
    for key, wanted in (("M0001", "live scm"), (f"M{n - 2:04d}", "live scm"), ("M0200", "live cds")):
        assert cds[key] == wanted and scm[key] == wanted, key
    assert cds["M0002"] == scm["M0002"] == "cds 2"  # the master's value elsewhere
    assert still_different(env.sandbox, env.bridge.mappings, "ship_via") == []


async def run_initial_wait(h: Harness, timeout: float = 60.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = (await h.ops("GET", "/api/sync/initial")).body["run"]
        if got["status"] != "running":
            return dict(got)
        assert asyncio.get_running_loop().time() < deadline, got
        await asyncio.sleep(0.1)
