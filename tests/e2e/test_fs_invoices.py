"""Agreement invoices -> free text invoices over real HTTP (issue 23, flow 3;
field-service-invoice.md): an invoice with lines from an agreement becomes a free text invoice with
those lines (invoice date, main account 401100, origin "Agreement invoice integration", the external
invoice number); updates flow while it is In process and are refused with a clear message once it
is posted (Completed); a delete removes it; lines not from an agreement are left out."""

from __future__ import annotations

from typing import Any

from tests.e2e.fieldservice import customer, dv_one, dv_post, fs_setup
from tests.e2e.harness import Harness

POST = "Microsoft.Dynamics.DataEntities.Post"


async def invoice_lines(env: Harness, number: str) -> dict[int, dict[str, Any]]:
    resp = await env.request("scm", "GET", f"CDSFreeTextInvoiceLines?$filter=ExternalInvoiceId eq '{number}'")
    assert resp.status == 200, resp.body
    return {int(r["LineNumber"]): r for r in resp.body["value"]}


async def agreement_invoice(env: Harness, ids: dict[str, str]) -> tuple[str, str, str]:
    """An invoice with one line from an agreement (2 x 50) and one that is not: (invoice id, number,
    the agreement line's id)."""
    account = ids["account"]
    agreement = await dv_post(
        env,
        "msdyn_agreements",
        {"msdyn_name": "AGR-1", "msdyn_ServiceAccount@odata.bind": f"/accounts({account})"},
    )
    invoice = await dv_post(
        env,
        "invoices",
        {"name": "Maintenance March", "customerid_account@odata.bind": f"/accounts({account})"},
    )
    invoice_id, number = str(invoice["invoiceid"]), str(invoice["invoicenumber"])
    line = await dv_post(
        env,
        "invoicedetails",
        {
            "invoiceid@odata.bind": f"/invoices({invoice_id})",
            "productid@odata.bind": f"/products({ids['service']})",
            "productdescription": "Quarterly maintenance",
            "quantity": 2,
            "priceperunit": 50,
            "extendedamount": 100,
            "lineitemnumber": 1,
            "msdyn_Agreement@odata.bind": f"/msdyn_agreements({agreement['msdyn_agreementid']})",
        },
    )
    await dv_post(
        env,
        "invoicedetails",
        {
            "invoiceid@odata.bind": f"/invoices({invoice_id})",
            "productdescription": "Extra",
            "quantity": 1,
            "lineitemnumber": 2,
        },
    )
    return invoice_id, number, str(line["invoicedetailid"])


async def test_an_agreement_invoice_becomes_a_free_text_invoice(env: Harness) -> None:
    ids = await fs_setup(env)
    _, number, _ = await agreement_invoice(env, ids)
    header = await env.scm_find("CDSFreeTextInvoiceHeaders", "ExternalInvoiceId", number)
    assert header is not None
    assert header["CustomerAccount"] == "US-001"
    assert header["InvoiceOriginType"] == "AgreementInvoiceIntegration"
    assert header["InvoiceDate"][:4] >= "2026" and header["IsPosted"] == "No"
    lines = await invoice_lines(env, number)
    assert sorted(lines) == [1]  # the line not from an agreement is left out
    assert lines[1]["MainAccountDisplayValue"] == "401100"
    assert (float(lines[1]["Quantity"]), float(lines[1]["UnitPrice"])) == (2, 50)


async def test_updates_flow_while_in_process_and_are_refused_once_posted(env: Harness) -> None:
    ids = await fs_setup(env)
    _, number, line_id = await agreement_invoice(env, ids)
    resp = await env.request("cds", "PATCH", f"invoicedetails({line_id})", {"quantity": 3})
    assert resp.status == 204, resp.body
    assert float((await invoice_lines(env, number))[1]["Quantity"]) == 3
    resp = await env.request(
        "scm", "POST", f"CDSFreeTextInvoiceHeaders(dataAreaId='usmf',ExternalInvoiceId='{number}')/{POST}"
    )
    assert resp.status in (200, 204), resp.body  # posted in F&O: accounting status Completed
    resp = await env.request("cds", "PATCH", f"invoicedetails({line_id})", {"quantity": 4})
    assert resp.status >= 400, resp.body  # the synchronous step refused the save: Dataverse rolled it back
    row = await dv_one(env, "invoicedetails", f"invoicedetailid eq {line_id}")
    assert row is not None and float(row["quantity"]) == 3
    assert float((await invoice_lines(env, number))[1]["Quantity"]) == 3
    resp = await env.ops("GET", "/api/failures?entity=agreement_invoice")
    messages = [
        f["target_message"] for f in (resp.body["items"] if isinstance(resp.body, dict) else resp.body)
    ]
    assert any("posted (accounting status Completed)" in m for m in messages), messages


async def test_deleting_an_invoice_in_process_deletes_the_free_text_invoice(env: Harness) -> None:
    ids = await fs_setup(env)
    invoice_id, number, _ = await agreement_invoice(env, ids)
    resp = await env.request("cds", "DELETE", f"invoices({invoice_id})")
    assert resp.status == 204, resp.body
    await env.settle()
    assert await env.scm_find("CDSFreeTextInvoiceHeaders", "ExternalInvoiceId", number) is None
    assert await invoice_lines(env, number) == {}


async def test_an_invoice_without_agreement_lines_is_left_out(env: Harness) -> None:
    ids = await fs_setup(env)
    other = await customer(env, "US-002", "Fabrikam")
    invoice = await dv_post(
        env, "invoices", {"name": "Ad hoc", "customerid_account@odata.bind": f"/accounts({other})"}
    )
    await dv_post(
        env,
        "invoicedetails",
        {
            "invoiceid@odata.bind": f"/invoices({invoice['invoiceid']})",
            "productdescription": "Ad hoc",
            "quantity": 1,
            "lineitemnumber": 1,
        },
    )
    await env.settle()
    assert ids["account"] != other
    assert (
        await env.scm_find("CDSFreeTextInvoiceHeaders", "ExternalInvoiceId", invoice["invoicenumber"]) is None
    )
