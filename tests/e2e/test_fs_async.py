"""Work orders with asynchronous steps (issue 23, flow 2): the Dataverse save is committed before the
bridge hears of it, so a refused document is listed with F&O's message and written once fixed; a
line never reaches F&O without its header; duplicated and reordered notifications write once and
end with the newest state."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.sandbox.faults import FaultSettings
from tests.e2e.fieldservice import (
    SCHEDULED,
    customer,
    dv_one,
    dv_post,
    fno_product,
    fs_setup,
    product_line,
    sales_lines,
    work_order,
)
from tests.e2e.harness import Harness, eventually


@pytest.fixture
def webhook_mode() -> str:
    return "async"


async def failures(env: Harness, entity: str) -> list[dict[str, Any]]:
    resp = await env.ops("GET", f"/api/failures?entity={entity}")
    assert resp.status == 200, resp.body
    return list(resp.body["items"] if isinstance(resp.body, dict) else resp.body)


async def schedule(env: Harness, wo_id: str) -> None:
    resp = await env.request("cds", "PATCH", f"msdyn_workorders({wo_id})", {"msdyn_systemstatus": SCHEDULED})
    assert resp.status == 204, resp.body


async def test_a_refused_document_is_listed_and_written_once_fixed(env: Harness) -> None:
    ids = await fs_setup(env)
    unknown = await dv_post(
        env,
        "products",
        {
            "productnumber": "LATE-1",
            "name": "Released later",
            "msdynce_isexternallymaintained": True,
            "defaultuomscheduleid@odata.bind": f"/uomschedules({ids['group']})",
            "defaultuomid@odata.bind": f"/uoms({ids['ea']})",
        },
    )
    wo = await work_order(env, ids["account"])
    wo_id, number = str(wo["msdyn_workorderid"]), str(wo["msdyn_name"])
    assert (await product_line(env, wo_id, ids["item"], ids["ea"], 1, msdyn_estimatequantity=2)).status == 201
    assert (
        await product_line(env, wo_id, unknown["productid"], ids["ea"], 2, msdyn_estimatequantity=1)
    ).status == 201
    await schedule(env, wo_id)  # committed at once: the step is asynchronous
    await env.settle()
    row = await dv_one(env, "msdyn_workorders", f"msdyn_workorderid eq {wo_id}")
    assert row is not None and row["msdyn_systemstatus"] == SCHEDULED  # kept: documents are not compensated
    assert await env.scm_find("CDSSalesOrderHeaders", "SalesOrderNumber", number) is None
    assert await sales_lines(env, number) == {}
    failure = next(f for f in await failures(env, "work_order") if f["key"] == wo_id)
    assert failure["kind"] == "rejected" and failure["compensated"] is False
    assert "LATE-1" in failure["target_message"]  # F&O's own message
    assert "retry" in (failure["source_message"] or "")
    await fno_product(env, "LATE-1")  # the cause fixed in F&O
    await env.settle()
    resp = await env.ops("POST", f"/api/failures/{failure['id']}/retry")
    assert resp.status in (200, 202), resp.body

    async def written() -> dict[int, Any] | None:
        lines = await sales_lines(env, number)
        return lines if sorted(lines) == [1, 2] else None

    await eventually(written, what="the whole document in F&O after the retry")
    assert await env.scm_find("CDSSalesOrderHeaders", "SalesOrderNumber", number) is not None


async def test_a_line_never_reaches_fno_without_its_header(env: Harness) -> None:
    ids = await fs_setup(env)
    stranger = await dv_post(env, "accounts", {"name": "Not a customer in F&O", "accountnumber": "NO-SUCH"})
    wo = await work_order(env, str(stranger["accountid"]), msdyn_systemstatus=SCHEDULED)
    wo_id, number = str(wo["msdyn_workorderid"]), str(wo["msdyn_name"])
    assert (await product_line(env, wo_id, ids["item"], ids["ea"], 1, msdyn_estimatequantity=2)).status == 201
    await env.settle()
    assert await env.scm_find("CDSSalesOrderHeaders", "SalesOrderNumber", number) is None
    assert await sales_lines(env, number) == {}  # the line's save carried the refused header again
    messages = [f["target_message"] for f in await failures(env, "work_order") if f["key"] == wo_id]
    assert messages and all("NO-SUCH" in m for m in messages)
    # The customer created in F&O: the next save of the document writes header and line together.
    await customer(env, "NO-SUCH", "Now a customer")
    line = await dv_one(env, "msdyn_workorderproducts", f"_msdyn_workorder_value eq {wo_id}")
    assert line is not None
    resp = await env.request(
        "cds",
        "PATCH",
        f"msdyn_workorderproducts({line['msdyn_workorderproductid']})",
        {"msdyn_estimatequantity": 3},
    )
    assert resp.status == 204, resp.body
    await env.settle()
    header = await env.scm_find("CDSSalesOrderHeaders", "SalesOrderNumber", number)
    assert header is not None and header["OrderingCustomerAccountNumber"] == "NO-SUCH"
    assert sorted(await sales_lines(env, number)) == [1]


async def synced_order(env: Harness, ids: dict[str, str]) -> tuple[str, str, str]:
    wo = await work_order(env, ids["account"])
    wo_id, number = str(wo["msdyn_workorderid"]), str(wo["msdyn_name"])
    resp = await product_line(
        env, wo_id, ids["item"], ids["ea"], 1, msdyn_estimatequantity=5, msdyn_allocated=True
    )
    assert resp.status == 201, resp.body
    await schedule(env, wo_id)
    await env.settle()
    assert float((await sales_lines(env, number))[1]["OrderedSalesQuantity"]) == 5
    return wo_id, number, str(resp.body["msdyn_workorderproductid"])


async def test_duplicated_notifications_write_the_document_once(env: Harness) -> None:
    ids = await fs_setup(env)
    _, number, line_id = await synced_order(env, ids)
    before = env.writes("scm")
    env.sandbox.faults["dataverse"].configure(FaultSettings(duplicate_rate=1.0))
    resp = await env.request(
        "cds", "PATCH", f"msdyn_workorderproducts({line_id})", {"msdyn_estimatequantity": 7}
    )
    assert resp.status == 204, resp.body
    await env.settle()
    env.sandbox.faults["dataverse"].configure(FaultSettings())
    assert any(e.kind == "duplicate" for e in env.sandbox.faults["dataverse"].log)
    assert float((await sales_lines(env, number))[1]["OrderedSalesQuantity"]) == 7
    assert env.writes("scm") - before == 2  # one change set: the header's PATCH and the line's, once


async def test_reordered_notifications_end_with_the_newest_state(env: Harness) -> None:
    ids = await fs_setup(env)
    _, number, line_id = await synced_order(env, ids)
    env.sandbox.faults["dataverse"].configure(FaultSettings(reorder_next=1, reorder_hold_ms=300))
    for quantity in (8, 9):
        resp = await env.request(
            "cds", "PATCH", f"msdyn_workorderproducts({line_id})", {"msdyn_estimatequantity": quantity}
        )
        assert resp.status == 204, resp.body
    await env.settle()
    assert any(e.kind == "reorder" for e in env.sandbox.faults["dataverse"].log)
    assert float((await sales_lines(env, number))[1]["OrderedSalesQuantity"]) == 9  # the late 8 did not win


async def test_a_document_is_resynced_whole_by_its_header_id(env: Harness) -> None:
    ids = await fs_setup(env)
    stranger = await dv_post(env, "accounts", {"name": "Customer later", "accountnumber": "LATER"})
    wo = await work_order(env, str(stranger["accountid"]), msdyn_systemstatus=SCHEDULED)
    wo_id, number = str(wo["msdyn_workorderid"]), str(wo["msdyn_name"])
    assert (await product_line(env, wo_id, ids["item"], ids["ea"], 1, msdyn_estimatequantity=2)).status == 201
    await env.settle()
    assert await failures(env, "work_order")  # refused: customer LATER is not in F&O yet
    await customer(env, "LATER", "Customer later")
    wrong = await env.ops(
        "POST", "/api/resync", {"entity": "work_order", "company": "usmf", "key": wo_id, "from": "scm"}
    )
    assert wrong.status == 502 and wrong.body["outcome"] == "failed", wrong.body  # one way
    assert "flows from cds only" in wrong.body["message"]
    resp = await env.ops(
        "POST", "/api/resync", {"entity": "work_order", "company": "usmf", "key": wo_id, "from": "cds"}
    )
    assert resp.status == 200 and resp.body["outcome"] == "applied", resp.body
    assert sorted(await sales_lines(env, number)) == [1]
    states = {f["state"] for f in await failures(env, "work_order") if f["key"] == wo_id}
    assert states == {"resolved"}  # the resync resolved the document's failures


async def test_agreement_invoices_take_duplicated_and_reordered_notifications(env: Harness) -> None:
    from tests.e2e.test_fs_invoices import agreement_invoice, invoice_lines

    ids = await fs_setup(env)
    _, number, line_id = await agreement_invoice(env, ids)
    await env.settle()
    assert float((await invoice_lines(env, number))[1]["Quantity"]) == 2
    before = env.writes("scm")
    env.sandbox.faults["dataverse"].configure(FaultSettings(duplicate_rate=1.0))
    resp = await env.request("cds", "PATCH", f"invoicedetails({line_id})", {"quantity": 5})
    assert resp.status == 204, resp.body
    await env.settle()
    assert env.writes("scm") - before == 2  # the header's PATCH and the line's, once
    env.sandbox.faults["dataverse"].configure(FaultSettings(reorder_next=1, reorder_hold_ms=300))
    for quantity in (6, 7):
        resp = await env.request("cds", "PATCH", f"invoicedetails({line_id})", {"quantity": quantity})
        assert resp.status == 204, resp.body
    await env.settle()
    assert any(e.kind == "reorder" for e in env.sandbox.faults["dataverse"].log)
    assert float((await invoice_lines(env, number))[1]["Quantity"]) == 7
