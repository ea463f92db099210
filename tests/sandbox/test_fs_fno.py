"""The Field Service entities of the emulated F&O over real HTTP, as a person (the sandbox's user
client): released products, customers, CDS sales order headers and lines, CDS free text invoices and
their posting, ``$batch`` change sets across a header and its lines, data events.

Entity names, keys and fields: F&O's OData metadata as the SAP Cloud SDK's generated ``d365_metadata``
client shows it (``CDSReleasedDistinctProducts``, ``CDSSalesOrderHeaders``, ``CDSSalesOrderLinesV2``,
``CDSFreeTextInvoiceHeaders``/``Lines``, ``CustomersV3``) and Microsoft's dual-write maps
(MicrosoftDocs/dynamics-365-unified-operations-public, dual-write ``includes/``). Rules, as each test
names: ``articles/supply-chain/sales-marketing/field-service-product.md``, ``field-service-work-order.md``,
``field-service-invoice.md``; ``$batch`` per ``articles/fin-ops-core/dev-itpro/data-entities/odata.md``.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from bridge.sandbox.fsseed import seed_reference
from bridge.sandbox.pytest_plugin import WebhookReceiver, bearer
from bridge.sandbox.runtime import Sandbox
from bridge.sandbox.schema.fs_fno import FO_BLOCKED, FO_FS_PRODUCT_TYPE, FO_WORK_ORDER_STATUS
from bridge.wire.batch import BatchRequest, BatchResponse, ChangeSet, parse_batch_response, write_requests

HEADERS, LINES = "CDSSalesOrderHeaders", "CDSSalesOrderLinesV2"
INVOICES, INVOICE_LINES = "CDSFreeTextInvoiceHeaders", "CDSFreeTextInvoiceLines"
POST = "Microsoft.Dynamics.DataEntities.Post"


class Fno:
    def __init__(self, sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        self.sb, self.http, self.base = sandbox, http, sandbox.info.scm_url
        self.token = sandbox.token("user", "fno")

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(
            method, f"{self.base}/{path}", json=body, headers=bearer(self.token)
        ) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text else None)

    async def order(self, **extra: Any) -> tuple[int, Any]:
        return await self.call("POST", HEADERS, {"OrderingCustomerAccountNumber": "FS-C001", **extra})

    async def line(self, order: str, seq: int, product: str = "FS-PUMP", **extra: Any) -> tuple[int, Any]:
        body = {"SalesOrderNumber": order, "LineCreationSequenceNumber": seq, "ProductNumber": product}
        return await self.call("POST", LINES, {**body, "OrderedSalesQuantity": 1, **extra})

    async def batch(self, parts: list[BatchRequest | ChangeSet]) -> tuple[int, list[Any]]:
        ctype, body = write_requests(parts)
        headers = bearer(self.token, **{"Content-Type": ctype})
        async with self.http.post(f"{self.base}/$batch", data=body, headers=headers) as resp:
            raw = await resp.read()
            if not resp.headers.get("Content-Type", "").startswith("multipart/"):
                return resp.status, [json.loads(raw)]
            return resp.status, parse_batch_response(raw, resp.headers["Content-Type"])


@pytest.fixture
def fno(sandbox: Sandbox, sandbox_http: aiohttp.ClientSession) -> Fno:
    seed_reference(sandbox.dataverse, sandbox.fno)
    return Fno(sandbox, sandbox_http)


def _message(body: Any) -> str:
    return str(body["error"]["innererror"]["message"])


def _op(url: str, body: dict[str, Any], content_id: str) -> BatchRequest:
    return BatchRequest(
        "POST", url, {"content-type": "application/json"}, json.dumps(body).encode(), content_id
    )


async def test_field_service_product_type_is_computed(fno: Fno) -> None:
    """field-service-product.md: Inventory = product with Stocked product true, NonInventory = stocked
    false, Service = product type Service; the field is calculated by F&O (read-only)."""
    status, body = await fno.call(
        "GET", "CDSReleasedDistinctProducts?$select=ProductNumber,FieldServiceProductType"
    )
    assert status == 200
    types = {r["ProductNumber"]: r["FieldServiceProductType"] for r in body["value"]}
    assert types == {"FS-PUMP": "Inventory", "FS-FILTER": "NonInventory", "FS-REPAIR": "Service"}
    key = "CDSReleasedDistinctProducts(dataAreaId='usmf',ProductNumber='FS-FILTER')"
    status, _ = await fno.call("PATCH", key, {"IsStockedProduct": "Yes"})
    assert status == 204
    assert (await fno.call("GET", key))[1]["FieldServiceProductType"] == "Inventory"
    status, body = await fno.call("PATCH", key, {"FieldServiceProductType": "Service"})
    assert status == 400 and "read-only" in _message(body)


async def test_sales_order_numbers_customers_and_origin(fno: Fno) -> None:
    """field-service-work-order.md: the work order number series must not overlap the sales order
    number sequence; the sales origin of type Work order integration; customers must exist."""
    status, order = await fno.order(SalesOrderOriginCode="WorkOrder", ExternalWorkOrderStatus="OpenScheduled")
    assert status == 201, order
    assert order["SalesOrderNumber"] == "SO-000001" and order["SalesOrderStatus"] == "Backorder"
    assert (
        order["SalesOrderOriginType"] == "WorkOrderIntegration"
        and order["ExternalWorkOrderStatus"] == "OpenScheduled"
    )
    status, body = await fno.order(SalesOrderNumber="SO-000042")
    assert status == 400 and "must not overlap" in _message(body)
    status, wo = await fno.order(SalesOrderNumber="WO-00001")
    assert status == 201 and wo["SalesOrderOriginType"] == "None"
    status, body = await fno.order(SalesOrderNumber="WO-00002", OrderingCustomerAccountNumber="NOPE")
    assert status == 400 and "related table 'CustomersV3'" in _message(body)
    status, body = await fno.order(SalesOrderNumber="WO-00003", SalesOrderOriginType="WorkOrderIntegration")
    assert status == 400 and "read-only" in _message(body)
    status, body = await fno.order(SalesOrderNumber="WO-00004", ExternalWorkOrderStatus="Scheduled")
    assert status == 400 and "OpenScheduled" in _message(body)  # the enum's members


async def test_a_blocked_customer_is_refused(fno: Fno) -> None:
    """CustomersV3 OnHoldStatus (CustVendorBlocked): All blocks the customer's sales orders; Invoice
    blocks free text invoices only."""
    status, body = await fno.order(SalesOrderNumber="WO-1", OrderingCustomerAccountNumber="FS-C002")
    assert status == 400 and "Customer FS-C002 is on hold (On hold: All)" in _message(body)
    status, _ = await fno.order(SalesOrderNumber="WO-2", OrderingCustomerAccountNumber="FS-C003")
    assert status == 201  # Invoice hold: orders still allowed
    status, body = await fno.call(
        "POST",
        INVOICES,
        {"ExternalInvoiceId": "INV-1", "CustomerAccount": "FS-C003", "InvoiceDate": "2026-12-01"},
    )
    assert status == 400 and "On hold: Invoice" in _message(body)


async def test_lines_need_their_header_and_existing_items(fno: Fno) -> None:
    """Items must exist (released products of the company) and a line belongs to an existing header;
    service lines take negative line numbers (field-service-work-order.md, External Line Order)."""
    assert (await fno.order(SalesOrderNumber="WO-10", SalesOrderOriginCode="WorkOrder"))[0] == 201
    status, line = await fno.line("WO-10", 1)
    assert (
        status == 201
        and line["ProductName"] == "Circulation pump"
        and line["SalesOrderOriginType"] == "WorkOrderIntegration"
    )
    status, line = await fno.line("WO-10", -1, "FS-REPAIR", OrderedSalesQuantity=1.5)
    assert status == 201 and line["LineCreationSequenceNumber"] == -1
    status, body = await fno.line("WO-10", 2, "NO-SUCH-ITEM")
    assert status == 400 and "related table 'CDSReleasedDistinctProducts'" in _message(body)
    status, body = await fno.line("WO-404", 1)
    assert status == 400 and "related table 'CDSSalesOrderHeaders'" in _message(body)
    status, body = await fno.call(
        "GET", f"{LINES}?$filter=SalesOrderNumber eq 'WO-10'&$orderby=LineCreationSequenceNumber"
    )
    assert [r["LineCreationSequenceNumber"] for r in body["value"]] == [-1, 1]


async def test_a_change_set_of_header_and_lines_is_all_or_nothing(fno: Fno) -> None:
    """odata.md / sandbox-api.md: a change set commits or rolls back as a whole: one unknown item
    on a line leaves neither the header nor the other lines behind."""
    header = {"SalesOrderNumber": "WO-20", "OrderingCustomerAccountNumber": "FS-C001"}
    good = {"SalesOrderNumber": "WO-20", "LineCreationSequenceNumber": 1, "ProductNumber": "FS-PUMP"}
    bad = {"SalesOrderNumber": "WO-20", "LineCreationSequenceNumber": 2, "ProductNumber": "NO-SUCH-ITEM"}
    base = fno.base + "/"
    status, parts = await fno.batch(
        [
            ChangeSet(
                [_op(base + HEADERS, header, "1"), _op(base + LINES, good, "2"), _op(base + LINES, bad, "3")]
            )
        ]
    )
    assert status == 400, parts
    failure = parts[0]
    text = failure.body.decode() if isinstance(failure, BatchResponse) else json.dumps(failure)
    assert "NO-SUCH-ITEM" in text
    assert (await fno.call("GET", f"{HEADERS}(dataAreaId='usmf',SalesOrderNumber='WO-20')"))[0] == 404
    assert (await fno.call("GET", f"{LINES}?$filter=SalesOrderNumber eq 'WO-20'"))[1]["value"] == []
    status, parts = await fno.batch(
        [ChangeSet([_op(base + HEADERS, header, "1"), _op(base + LINES, good, "2")])]
    )
    assert status == 200 and [r.status for r in parts[0]] == [201, 201]


async def test_posting_locks_a_free_text_invoice(fno: Fno) -> None:
    """field-service-invoice.md: invoice date is mandatory; updates flow while the invoice is In
    process and are refused once it is posted (Completed); main account 401100 is the template's
    default and must exist."""
    status, body = await fno.call(
        "POST", INVOICES, {"ExternalInvoiceId": "INV-1", "CustomerAccount": "FS-C001"}
    )
    assert status == 400 and "Field 'InvoiceDate' must be filled in" in _message(body)
    header = {
        "ExternalInvoiceId": "INV-1",
        "CustomerAccount": "FS-C001",
        "InvoiceDate": "2026-12-01T00:00:00Z",
        "InvoiceOriginType": "AgreementInvoiceIntegration",
    }
    status, invoice = await fno.call("POST", INVOICES, header)
    assert status == 201 and invoice["IsPosted"] == "No" and invoice["FreeTextNumber"] == ""
    key = f"{INVOICES}(dataAreaId='usmf',ExternalInvoiceId='INV-1')"
    status, body = await fno.call("POST", f"{key}/{POST}")
    assert status == 400 and "has no lines" in _message(body)
    line = {
        "ExternalInvoiceId": "INV-1",
        "LineNumber": 1,
        "MainAccountDisplayValue": "401100",
        "Quantity": 2,
        "UnitPrice": 95,
    }
    status, body = await fno.call("POST", INVOICE_LINES, {**line, "MainAccountDisplayValue": "999999"})
    assert status == 400 and "related table 'MainAccounts'" in _message(body)
    assert (await fno.call("POST", INVOICE_LINES, line))[0] == 201
    assert (await fno.call("PATCH", key, {"InvoiceName": "Still in process"}))[0] == 204
    status, body = await fno.call("POST", f"{key}/{POST}")
    assert status == 200 and body["value"] == "FTI-000001", body
    posted = (await fno.call("GET", key))[1]
    assert posted["IsPosted"] == "Yes" and posted["FreeTextNumber"] == "FTI-000001"
    line_key = f"{INVOICE_LINES}(dataAreaId='usmf',ExternalInvoiceId='INV-1',LineNumber=1)"
    for method, path, body in (
        ("PATCH", key, {"InvoiceName": "Too late"}),
        ("PATCH", line_key, {"Quantity": 3}),
        ("DELETE", line_key, None),
        ("POST", INVOICE_LINES, {**line, "LineNumber": 2}),
        ("DELETE", key, None),
        ("POST", f"{key}/{POST}", None),
    ):
        status, answer = await fno.call(method, path, body)
        assert status == 400, (method, path, answer)
        assert "has been posted as FTI-000001 (accounting status: Completed)" in _message(answer)


async def test_data_events_for_the_new_entities(fno: Fno, webhook_receiver: WebhookReceiver) -> None:
    """data-events.md: after every committed write of an entity with data events, the endpoint gets
    the event with Target (and PreImage on update); posting is an update of the invoice."""
    admin = {"x-sandbox-admin-key": fno.sb.info.admin_key}
    endpoint = {"name": "t", "url": webhook_receiver.url, "entity_sets": [HEADERS, LINES, INVOICES]}
    async with fno.http.post(
        f"{fno.sb.info.scm_admin_url}/dataevents/endpoints", json=endpoint, headers=admin
    ) as resp:
        assert resp.status == 201, await resp.text()
    await fno.order(SalesOrderNumber="WO-30")
    await fno.line("WO-30", 1)
    calls = await webhook_receiver.wait_for(2)
    events = [c.json() for c in calls]
    assert [e["BusinessEventId"] for e in events] == [
        "CDSSalesOrderHeader_Created",
        "CDSSalesOrderLineV2_Created",
    ]
    assert events[0]["PrimaryEntityName"] == "mserp_cdssalesorderheader"


async def test_metadata_declares_the_enum_types(fno: Fno) -> None:
    """odata.md ("EnumType is support in $metadata"); member names and order as F&O's metadata has
    them (SalesExternalWorkOrderStatus 0..5, EcoResFieldServiceProductType 0..3, CustVendorBlocked)."""
    async with fno.http.get(f"{fno.base}/$metadata", headers=bearer(fno.token)) as resp:
        assert resp.status == 200
        xml = await resp.text()
    for enum, members in (
        ("SalesExternalWorkOrderStatus", FO_WORK_ORDER_STATUS),
        ("EcoResFieldServiceProductType", FO_FS_PRODUCT_TYPE),
        ("CustVendorBlocked", FO_BLOCKED),
    ):
        assert f'<EnumType Name="{enum}"' in xml, enum
        for value, name in enumerate(members):
            assert f'<Member Name="{name}" Value="{value}"' in xml, (enum, name)
    assert 'Type="Microsoft.Dynamics.DataEntities.SalesExternalWorkOrderStatus"' in xml


async def test_deleting_a_sales_order_deletes_its_lines(fno: Fno, webhook_receiver: WebhookReceiver) -> None:
    """F&O's sales order header cascades to its lines on delete; each line's deletion has its own data
    event (data-events.md: one event per committed delete)."""
    admin = {"x-sandbox-admin-key": fno.sb.info.admin_key}
    endpoint = {"name": "t", "url": webhook_receiver.url, "entity_sets": [LINES], "events": ["Delete"]}
    async with fno.http.post(
        f"{fno.sb.info.scm_admin_url}/dataevents/endpoints", json=endpoint, headers=admin
    ) as resp:
        assert resp.status == 201
    await fno.order(SalesOrderNumber="WO-40")
    await fno.line("WO-40", 1)
    await fno.line("WO-40", -1, "FS-REPAIR")
    status, _ = await fno.call("DELETE", f"{HEADERS}(dataAreaId='usmf',SalesOrderNumber='WO-40')")
    assert status == 204
    assert (await fno.call("GET", f"{LINES}?$filter=SalesOrderNumber eq 'WO-40'"))[1]["value"] == []
    events = [c.json() for c in await webhook_receiver.wait_for(2)]
    assert [e["BusinessEventId"] for e in events] == ["CDSSalesOrderLineV2_Deleted"] * 2
