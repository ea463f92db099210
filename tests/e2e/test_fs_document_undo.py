"""A synchronous work order save whose budget ends after F&O committed its change set (over real
HTTP): Dataverse rolls the save back, and the bridge takes the change set back from its undo
journal (bridge.engine.docundo), so F&O keeps nothing the failed save made."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.engine.sideports import DocWrite
from bridge.settings import SyncSettings
from tests.e2e.fieldservice import (
    SCHEDULED,
    dv_one,
    dv_rows,
    fs_setup,
    product_line,
    sales_lines,
    work_order,
)
from tests.e2e.harness import Harness, eventually

BUDGET_S = 2.0


@pytest.fixture
def sync_settings() -> SyncSettings:
    return SyncSettings(
        backoff_initial_s=0.05, backoff_max_s=0.5, max_attempts=4, sync_budget_s=BUDGET_S, lease_s=5
    )


def slow_after_commit(env: Harness, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The next F&O change set commits, then its answer is held past the save's budget (a slow
    network or a stalled bridge after F&O's commit); the later ones go through as usual."""
    side: Any = env.bridge.applier._documents.side  # type: ignore[union-attr]
    changeset = side.changeset
    slowed: list[int] = []

    async def held(system: Any, writes: list[DocWrite]) -> None:
        await changeset(system, writes)
        if not slowed:
            slowed.append(len(writes))
            await asyncio.sleep(BUDGET_S + 1.5)

    monkeypatch.setattr(side, "changeset", held)
    return slowed


async def timeout_failures(env: Harness) -> list[Any]:
    return [f for f in await env.bridge.state.failures() if f.entity == "work_order" and f.kind != "rejected"]


async def test_a_first_save_timed_out_after_fo_committed_leaves_no_sales_order(
    env: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await fs_setup(env)
    await env.settle()
    slowed = slow_after_commit(env, monkeypatch)
    number = "WO-UNDO-1"
    resp = await env.request(
        "cds",
        "POST",
        "msdyn_workorders",
        {
            "msdyn_name": number,
            "msdyn_ServiceAccount@odata.bind": f"/accounts({ids['account']})",
            "msdyn_systemstatus": SCHEDULED,
        },
    )
    assert resp.status >= 400, resp.body  # the save failed: its synchronous step gave up
    assert slowed  # F&O committed the sales order before the budget ended
    await eventually(lambda: timeout_failures(env), what="the timed-out change settled")
    await env.settle()
    assert await dv_rows(env, "msdyn_workorders", f"msdyn_name eq '{number}'") == []
    assert await env.scm_find("CDSSalesOrderHeaders", "SalesOrderNumber", number) is None
    assert await sales_lines(env, number) == {}


async def test_an_update_timed_out_after_fo_committed_puts_the_previous_lines_back(
    env: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await fs_setup(env)
    wo = await work_order(env, ids["account"], msdyn_systemstatus=SCHEDULED)
    wo_id, number = str(wo["msdyn_workorderid"]), str(wo["msdyn_name"])
    resp = await product_line(env, wo_id, ids["item"], ids["ea"], 1, msdyn_estimatequantity=5)
    assert resp.status == 201, resp.body
    await env.settle()
    before = await sales_lines(env, number)
    assert sorted(before) == [1]
    slowed = slow_after_commit(env, monkeypatch)
    resp = await product_line(env, wo_id, ids["item"], ids["ea"], 2, msdyn_estimatequantity=3)
    assert resp.status >= 400, resp.body  # the line's save failed: rolled back in Dataverse
    assert slowed
    await eventually(lambda: timeout_failures(env), what="the timed-out change settled")
    await env.settle()
    assert await dv_one(env, "msdyn_workorderproducts", "msdyn_lineorder eq 2") is None
    after = await sales_lines(env, number)
    assert sorted(after) == [1]  # the committed line 2 taken back
    assert after[1]["ProductNumber"] == before[1]["ProductNumber"]
    header = await env.scm_find("CDSSalesOrderHeaders", "SalesOrderNumber", number)
    assert header is not None
