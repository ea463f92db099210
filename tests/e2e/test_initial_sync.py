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
        if got.body["status"] != "running":
            return dict(got.body)
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
