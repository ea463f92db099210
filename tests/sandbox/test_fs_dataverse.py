"""The Field Service tables of the emulated Dataverse over real HTTP, as a person (the sandbox's user
client): work orders and their lines, the columns the Field Service CRM solution maintains, invoices
with agreement lines, and their webhooks.

Wire shapes and rules follow, as each test names: the Field Service table reference
(MicrosoftDocs/dynamics-365-customer-engagement, ``ce/field-service/developer/reference/entities/``
``msdyn_workorder.md``, ``msdyn_workorderproduct.md``, ``msdyn_workorderservice.md``, ``product.md``)
and the Data integrator template pages (MicrosoftDocs/dynamics-365-unified-operations-public,
``articles/supply-chain/sales-marketing/field-service-work-order.md``, ``field-service-invoice.md``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from bridge.sandbox.fsseed import PRICE_LIST, UNIT_GROUP, UNITS, account_id, product_id, seed_reference
from bridge.sandbox.pytest_plugin import WebhookReceiver, bearer, register_webhook
from bridge.sandbox.runtime import Sandbox
from bridge.sandbox.schema.fs_dataverse import (
    LINE_ESTIMATED,
    LINE_USED,
    WO_IN_PROGRESS,
    WO_SCHEDULED,
    WO_UNSCHEDULED,
)
from bridge.wire.batch import BatchRequest, ChangeSet, parse_batch_response, write_requests


class Dv:
    """Dataverse Web API calls as the sandbox user."""

    def __init__(self, sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        self.sb, self.http, self.base = sandbox, http, sandbox.info.cds_url
        self.token = sandbox.token("user")

    async def call(self, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
        headers.setdefault("Prefer", "return=representation")
        async with self.http.request(
            method, f"{self.base}/{path}", json=body, headers=bearer(self.token, **headers)
        ) as resp:
            text = await resp.text()
            return resp.status, (await resp.json()) if text else None

    async def get(self, entity_set: str, row_id: str) -> dict[str, Any]:
        status, body = await self.call("GET", f"{entity_set}({row_id})")
        assert status == 200, body
        return dict(body)

    async def work_order(self, **extra: Any) -> dict[str, Any]:
        body = {"msdyn_ServiceAccount@odata.bind": f"/accounts({account_id('FS-C001')})", **extra}
        body.setdefault("msdyn_PriceList@odata.bind", f"/pricelevels({PRICE_LIST})")
        status, row = await self.call("POST", "msdyn_workorders", body)
        assert status == 201, row
        return dict(row)

    async def product_line(self, header: str, product: str = "FS-PUMP", **extra: Any) -> tuple[int, Any]:
        body = {
            "msdyn_WorkOrder@odata.bind": f"/msdyn_workorders({header})",
            "msdyn_Product@odata.bind": f"/products({product_id(product)})",
            **extra,
        }
        return await self.call("POST", "msdyn_workorderproducts", body)

    async def service_line(self, header: str, **extra: Any) -> tuple[int, Any]:
        body = {
            "msdyn_WorkOrder@odata.bind": f"/msdyn_workorders({header})",
            "msdyn_Service@odata.bind": f"/products({product_id('FS-REPAIR')})",
            **extra,
        }
        return await self.call("POST", "msdyn_workorderservices", body)

    async def hook(self, receiver: WebhookReceiver, entity: str, message: Any, mode: int = 0) -> None:
        await register_webhook(
            self.http, self.sb.info, self.token, url=receiver.url, entity=entity, message=message, mode=mode
        )


@pytest.fixture
def dv(sandbox: Sandbox, sandbox_http: aiohttp.ClientSession) -> Dv:
    seed_reference(sandbox.dataverse, sandbox.fno)
    return Dv(sandbox, sandbox_http)


def _attrs(context: dict[str, Any]) -> dict[str, Any]:
    target = next(kv["value"] for kv in context["InputParameters"] if kv["key"] == "Target")
    return {kv["key"]: kv["value"] for kv in target["Attributes"]}


async def test_work_order_defaults_and_choices(dv: Dv) -> None:
    """msdyn_workorder.md: msdyn_systemstatus choices 690970000 (Unscheduled) … 690970005 (Canceled),
    msdyn_serviceaccount (Lookup account), msdyn_name (MaxLength 100); the billing account defaults to
    the service account ("Otherwise, the billing account will be the same as the service account")."""
    row = await dv.work_order()
    assert row["msdyn_name"] == "WO-00001"
    assert row["msdyn_systemstatus"] == WO_UNSCHEDULED
    assert row["_msdyn_billingaccount_value"] == row["_msdyn_serviceaccount_value"] == account_id("FS-C001")
    assert row["msdynce_hasexternallymaintainedproductsonly"] is True  # no lines yet
    status, body = await dv.call("POST", "msdyn_workorders", {"msdyn_systemstatus": 690970009})
    assert status == 400 and body["error"]["code"] == "0x8004431a"
    status, body = await dv.call("POST", "msdyn_workorders", {"msdyn_name": "WO-X"})
    assert status == 400 and "msdyn_serviceaccount" in body["error"]["message"]  # required lookup
    status, body = await dv.call(
        "PATCH", f"msdyn_workorders({row['msdyn_workorderid']})", {"msdyn_name": "x" * 101}
    )
    assert status == 400 and "'100'" in body["error"]["message"]


async def test_lines_carry_header_status_names_and_price_list(dv: Dv) -> None:
    """msdyn_workorderproduct.md (msdyn_linestatus 690970000 Estimated / 690970001 Used, msdyn_allocated,
    msdyn_quantity / msdyn_estimatequantity Double 0..1000000000) and field-service-work-order.md
    ("Header System Status ... track the system status of the work order")."""
    header = await dv.work_order(msdyn_systemstatus=WO_SCHEDULED)
    wo = header["msdyn_workorderid"]
    status, line = await dv.product_line(wo, msdyn_allocated=True, msdyn_estimatequantity=5.0)
    assert status == 201, line
    assert line["msdyn_name"] == "Circulation pump" and line["msdyn_linestatus"] == LINE_ESTIMATED
    assert line["msdynce_headersystemstatus"] == WO_SCHEDULED
    assert line["msdynce_orderhasexternalmaintainedproductsonly"] is True
    assert line["_msdyn_pricelist_value"] == PRICE_LIST and line["msdyn_allocated"] is True
    status, body = await dv.product_line(wo, msdyn_quantity=-1.0)
    assert status == 400 and body["error"]["code"] == "0x80044330"  # below MinValue 0
    status, body = await dv.product_line(wo, msdynce_headersystemstatus=WO_SCHEDULED)
    assert status == 400 and "read-only" in body["error"]["message"]  # maintained, never written


async def test_header_status_reaches_every_line_as_an_update(
    dv: Dv, webhook_receiver: WebhookReceiver
) -> None:
    """field-service-work-order.md: the lines' Header System Status follows the work order; the
    plug-in's write is an Update of each line, so its webhook fires (Depth 2 in the context)."""
    wo = (await dv.work_order(msdyn_systemstatus=WO_SCHEDULED))["msdyn_workorderid"]
    _, product = await dv.product_line(wo)
    _, service = await dv.service_line(wo)
    await dv.hook(webhook_receiver, "msdyn_workorderproduct", "Update")
    await dv.hook(webhook_receiver, "msdyn_workorderservice", "Update")
    status, _ = await dv.call("PATCH", f"msdyn_workorders({wo})", {"msdyn_systemstatus": WO_IN_PROGRESS})
    assert status == 200
    calls = await webhook_receiver.wait_for(2)
    contexts = [c.json() for c in calls]
    assert {c["PrimaryEntityName"] for c in contexts} == {"msdyn_workorderproduct", "msdyn_workorderservice"}
    assert all(c["Depth"] == 2 for c in contexts)
    assert all(_attrs(c)["msdynce_headersystemstatus"]["Value"] == WO_IN_PROGRESS for c in contexts)
    for entity_set, line in (("msdyn_workorderproducts", product), ("msdyn_workorderservices", service)):
        row = await dv.get(entity_set, line[f"{entity_set[:-1]}id"])
        assert row["msdynce_headersystemstatus"] == WO_IN_PROGRESS


async def test_a_product_not_externally_maintained_clears_the_flags(dv: Dv) -> None:
    """field-service-work-order.md: Has Externally Maintained Products Only is true when "all the
    related products are maintained in Supply Chain Management"; its lines carry the order's flag."""
    local = {
        "productnumber": "LOCAL-1",
        "name": "Local part",
        "msdynce_isexternallymaintained": False,
        "defaultuomscheduleid@odata.bind": f"/uomschedules({UNIT_GROUP})",
        "defaultuomid@odata.bind": f"/uoms({UNITS['ea'][1]})",
    }
    status, product = await dv.call("POST", "products", local)
    assert status == 201, product
    wo = (await dv.work_order(msdyn_systemstatus=WO_SCHEDULED))["msdyn_workorderid"]
    _, first = await dv.product_line(wo)
    status, second = await dv.call(
        "POST",
        "msdyn_workorderproducts",
        {
            "msdyn_WorkOrder@odata.bind": f"/msdyn_workorders({wo})",
            "msdyn_Product@odata.bind": f"/products({product['productid']})",
        },
    )
    assert status == 201, second
    assert (await dv.get("msdyn_workorders", wo))["msdynce_hasexternallymaintainedproductsonly"] is False
    for line in (first, second):
        row = await dv.get("msdyn_workorderproducts", line["msdyn_workorderproductid"])
        assert row["msdynce_orderhasexternalmaintainedproductsonly"] is False
    status, _ = await dv.call("DELETE", f"msdyn_workorderproducts({second['msdyn_workorderproductid']})")
    assert status == 204
    assert (await dv.get("msdyn_workorders", wo))["msdynce_hasexternallymaintainedproductsonly"] is True


async def test_service_durations_in_hours_and_negative_line_order(dv: Dv) -> None:
    """msdyn_workorderservice.md: msdyn_duration / msdyn_estimateduration are Integer minutes;
    field-service-work-order.md: Duration In Hours "converted from minutes to hours", External Line
    Order "the Line Order value multiplied by -1", and Used → Estimated resets the used value to 0."""
    wo = (await dv.work_order(msdyn_systemstatus=WO_SCHEDULED))["msdyn_workorderid"]
    status, line = await dv.service_line(
        wo, msdyn_estimateduration=120, msdyn_duration=90, msdyn_lineorder=3, msdyn_linestatus=LINE_USED
    )
    assert status == 201, line
    assert line["msdynce_estimatedurationinhours"] == 2.0 and line["msdynce_durationinhours"] == 1.5
    assert line["msdynce_externallineorder"] == -3
    status, body = await dv.service_line(wo, msdyn_duration=1.5)
    assert status == 400 and body["error"]["code"] == "0x80048d19"  # an Integer column, minutes
    lid = line["msdyn_workorderserviceid"]
    status, row = await dv.call(
        "PATCH", f"msdyn_workorderservices({lid})", {"msdyn_linestatus": LINE_ESTIMATED}
    )
    assert status == 200 and row["msdyn_duration"] == 0 and row["msdynce_durationinhours"] == 0.0


async def test_agreement_lines_mark_the_invoice_and_date_it(dv: Dv) -> None:
    """field-service-invoice.md: Has Lines With Agreement Origin / Has Agreement Origin; a blank invoice
    date "is set to the current date when an invoice line that originates from an agreement is
    added"; saving such an invoice with a blank date is a business process error."""
    agreement = {
        "msdyn_name": "AGR-1",
        "msdyn_ServiceAccount@odata.bind": f"/accounts({account_id('FS-C001')})",
    }
    status, agr = await dv.call("POST", "msdyn_agreements", agreement)
    assert status == 201, agr
    status, invoice = await dv.call(
        "POST",
        "invoices",
        {"name": "Agreement invoice", "customerid_account@odata.bind": f"/accounts({account_id('FS-C001')})"},
    )
    assert status == 201, invoice
    assert invoice["invoicenumber"] == "INV-00001" and invoice["msdyn_invoicedate"] is None
    iid = invoice["invoiceid"]
    line = {
        "invoiceid@odata.bind": f"/invoices({iid})",
        "productid@odata.bind": f"/products({product_id('FS-REPAIR')})",
        "quantity": 2.0,
        "priceperunit": 95.0,
        "msdyn_Agreement@odata.bind": f"/msdyn_agreements({agr['msdyn_agreementid']})",
    }
    status, detail = await dv.call("POST", "invoicedetails", line)
    assert status == 201 and detail["msdynce_hasagreementorigin"] is True, detail
    row = await dv.get("invoices", iid)
    assert row["msdynce_haslineswithagreementorigin"] is True
    assert row["msdyn_invoicedate"] == datetime.now(UTC).strftime("%Y-%m-%d")
    status, body = await dv.call("PATCH", f"invoices({iid})", {"msdyn_invoicedate": None})
    assert status == 400 and body["error"]["code"] == "0x80040265", body
    assert "Invoice Date" in body["error"]["message"]
    status, body = await dv.call("POST", "invoicedetails", {"invoiceid@odata.bind": f"/invoices({iid})"})
    assert status == 400 and "quantity" in body["error"]["message"]  # required


async def test_work_order_lines_notify_with_the_documented_context(
    dv: Dv, webhook_receiver: WebhookReceiver
) -> None:
    """The same plug-in step registration as the five synced tables (use-webhooks.md): a Create step
    on msdyn_workorderproduct receives the RemoteExecutionContext with the line as Target and its
    lookups as EntityReference."""
    await dv.hook(webhook_receiver, "msdyn_workorderproduct", "Create")
    wo = (await dv.work_order(msdyn_systemstatus=WO_SCHEDULED))["msdyn_workorderid"]
    status, line = await dv.product_line(wo, msdyn_estimatequantity=3.0)
    assert status == 201
    (call,) = await webhook_receiver.wait_for(1)
    context = call.json()
    assert context["MessageName"] == "Create" and context["PrimaryEntityName"] == "msdyn_workorderproduct"
    assert context["PrimaryEntityId"] == line["msdyn_workorderproductid"] and context["Depth"] == 1
    attrs = _attrs(context)
    assert (
        attrs["msdyn_workorder"]["Id"] == wo and attrs["msdyn_workorder"]["LogicalName"] == "msdyn_workorder"
    )
    assert attrs["msdyn_linestatus"]["Value"] == LINE_ESTIMATED and attrs["msdyn_estimatequantity"] == 3.0


async def test_entity_definitions_carry_the_published_choice_labels(dv: Dv) -> None:
    """query-metadata-web-api.md (PicklistAttributeMetadata cast, OptionSet options) with the labels of
    msdyn_workorder.md (msdyn_systemstatus: Unscheduled … Canceled)."""
    status, body = await dv.call(
        "GET",
        "EntityDefinitions(LogicalName='msdyn_workorder')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata"
        "?$select=LogicalName&$expand=OptionSet($select=Options)",
    )
    assert status == 200, body
    options = next(a for a in body["value"] if a["LogicalName"] == "msdyn_systemstatus")["OptionSet"][
        "Options"
    ]
    assert [(o["Value"], o["Label"]["UserLocalizedLabel"]["Label"]) for o in options] == [
        (690970000, "Unscheduled"),
        (690970001, "Scheduled"),
        (690970002, "In Progress"),
        (690970003, "Completed"),
        (690970004, "Posted"),
        (690970005, "Canceled"),
    ]


async def test_a_work_order_and_its_lines_in_one_change_set(dv: Dv) -> None:
    """webapi/execute-batch-operations-using-web-api.md: a change set with Content-ID references
    (``$1``) commits as a whole; the lines bound to ``$1`` get the new work order's status."""
    base = dv.base + "/"
    header = {
        "msdyn_name": "WO-BATCH",
        "msdyn_systemstatus": WO_SCHEDULED,
        "msdyn_ServiceAccount@odata.bind": f"/accounts({account_id('FS-C001')})",
    }
    line = {
        "msdyn_WorkOrder@odata.bind": "$1",
        "msdyn_Product@odata.bind": f"/products({product_id('FS-PUMP')})",
    }
    json_type = {"content-type": "application/json"}
    parts = [
        BatchRequest("POST", base + "msdyn_workorders", json_type, json.dumps(header).encode(), "1"),
        BatchRequest("POST", base + "msdyn_workorderproducts", json_type, json.dumps(line).encode(), "2"),
    ]
    ctype, body = write_requests([ChangeSet(parts)])
    async with dv.http.post(
        f"{dv.base}/$batch", data=body, headers=bearer(dv.token, **{"Content-Type": ctype})
    ) as resp:
        assert resp.status == 200, await resp.text()
        answers = parse_batch_response(await resp.read(), resp.headers["Content-Type"])
    assert isinstance(answers[0], list) and [a.status for a in answers[0]] == [204, 204]
    status, rows = await dv.call("GET", "msdyn_workorderproducts?$filter=msdyn_name eq 'Circulation pump'")
    assert status == 200 and [r["msdynce_headersystemstatus"] for r in rows["value"]] == [WO_SCHEDULED]
