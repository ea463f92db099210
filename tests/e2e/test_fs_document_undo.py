"""A synchronous work order save whose budget ends after F&O committed its change set (over real
HTTP): Dataverse rolls the save back, and the bridge takes the change set back from its undo
journal (bridge.engine.docundo), so F&O keeps nothing the failed save made."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bridge.core.events import record_key
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
from tests.e2e.test_fs_invoices import POST, agreement_invoice

BUDGET_S = 2.0


@pytest.fixture
def sync_settings() -> SyncSettings:
    return SyncSettings(
        backoff_initial_s=0.05, backoff_max_s=0.5, max_attempts=4, sync_budget_s=BUDGET_S, lease_s=5
    )


def slow_after_commit(
    env: Harness,
    monkeypatch: pytest.MonkeyPatch,
    *,
    until: float | None = None,
    meanwhile: Callable[[], Awaitable[None]] | None = None,
) -> list[int]:
    """The next F&O change set commits, then its answer is held past the save's budget (a slow
    network or a stalled bridge after F&O's commit) or until the loop time ``until``; the later
    ones go through as usual. ``meanwhile`` runs while it is held (a person's change on F&O)."""
    side: Any = env.bridge.applier._documents.side  # type: ignore[union-attr]
    changeset = side.changeset
    slowed: list[int] = []

    async def held(system: Any, writes: list[DocWrite]) -> None:
        await changeset(system, writes)
        if not slowed:
            slowed.append(len(writes))
            if meanwhile is not None:
                await meanwhile()
            loop = asyncio.get_running_loop()
            await asyncio.sleep(BUDGET_S + 1.5 if until is None else max(until - loop.time(), 0.0))

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


async def test_a_change_set_answered_just_after_the_save_gave_up_is_undone(
    env: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The change set and its ledger entry finish after the originator's budget ended but within the
    apply's own time: the engine undoes it from the write's undo (guarded by the journal)."""
    ids = await fs_setup(env)
    await env.settle()
    started = asyncio.get_running_loop().time()
    slow_after_commit(env, monkeypatch, until=started + BUDGET_S + 0.25)
    number = "WO-UNDO-2"
    body = {
        "msdyn_name": number,
        "msdyn_ServiceAccount@odata.bind": f"/accounts({ids['account']})",
        "msdyn_systemstatus": SCHEDULED,
    }
    resp = await env.request("cds", "POST", "msdyn_workorders", body)
    assert resp.status >= 400, resp.body
    [failure] = await eventually(lambda: timeout_failures(env), what="the timed-out change settled")
    await env.settle()
    assert (failure.kind, failure.source_message) == ("timeout", "reverted on the target")
    assert await env.scm_find("CDSSalesOrderHeaders", "SalesOrderNumber", number) is None
    ledger = await env.bridge.state.get_ledger(record_key("work_order", "USMF", failure.key))
    assert ledger is not None and ledger.scm_image == {} and not ledger.deleted  # as never written


async def test_an_undo_fo_refuses_is_listed_with_its_message(
    env: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The invoice was posted in F&O while the timed-out change set's answer was on its way: F&O
    refuses the undo, and admins see its message."""
    ids = await fs_setup(env)
    _, number, line_id = await agreement_invoice(env, ids)
    await env.settle()

    async def post_it() -> None:
        resp = await env.request(
            "scm",
            "POST",
            f"CDSFreeTextInvoiceHeaders(dataAreaId='usmf',ExternalInvoiceId='{number}')/{POST}",
        )
        assert resp.status in (200, 204), resp.body

    slow_after_commit(env, monkeypatch, meanwhile=post_it)
    resp = await env.request("cds", "PATCH", f"invoicedetails({line_id})", {"quantity": 3})
    assert resp.status >= 400, resp.body

    async def refused() -> list[Any]:
        return [
            f
            for f in await env.bridge.state.failures()
            if f.entity == "agreement_invoice" and (f.source_message or "").startswith("revert failed")
        ]

    [failure] = await eventually(refused, what="the refused undo listed")
    await env.settle()
    assert "posted" in (failure.source_message or ""), failure.source_message
