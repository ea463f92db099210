"""The rules of the shipped document maps, evaluated without a network (``bridge.core.docrules``):
the estimated versus used tables of field-service-work-order.md row by row, service hours, line
signs, filters, the product type of field-service-product.md, and the change-set plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.core import docrules
from bridge.core.docmap import DocumentMap
from bridge.core.errors import RejectedError
from bridge.core.mapping import load_mappings

MAPS = load_mappings(Path(__file__).resolve().parents[2] / "mappings")
SCHEDULED, IN_PROGRESS, COMPLETED, POSTED = 690970001, 690970002, 690970003, 690970004
UNSCHEDULED, CANCELED = 690970000, 690970005
ESTIMATED, USED = 690970000, 690970001
ACCOUNT = "a0000000-0000-0000-0000-000000000001"
ITEM = "b0000000-0000-0000-0000-000000000001"


def dmap(name: str) -> DocumentMap:
    found = MAPS.get(name)
    assert isinstance(found, DocumentMap)
    return found


WO = dmap("work_order")
PRODUCTS, SERVICES = WO.lines
RESOLVED = {("products", "productnumber", ITEM): "P-1", ("accounts", "accountnumber", ACCOUNT): "US-001"}

# field-service-work-order.md, "The following table provides an overview of the various
# combinations for product lines": (system status, line status, allocated) -> synchronized value
PRODUCT_TABLE = [
    (SCHEDULED, ESTIMATED, True, "Estimated"),
    (SCHEDULED, ESTIMATED, False, "Used"),
    (SCHEDULED, USED, True, "Used"),
    (SCHEDULED, USED, False, "Used"),
    (IN_PROGRESS, ESTIMATED, True, "Estimated"),
    (IN_PROGRESS, ESTIMATED, False, "Used"),
    (IN_PROGRESS, USED, True, "Used"),
    (IN_PROGRESS, USED, False, "Used"),
    (COMPLETED, ESTIMATED, True, "Estimated"),
    (COMPLETED, ESTIMATED, False, "Used"),
    (COMPLETED, USED, True, "Used"),
    (COMPLETED, USED, False, "Used"),
    (POSTED, ESTIMATED, True, "Used"),
    (POSTED, ESTIMATED, False, "Used"),
    (POSTED, USED, True, "Used"),
    (POSTED, USED, False, "Used"),
]
# ... "for service lines": (system status, line status) -> synchronized value
SERVICE_TABLE = [
    (SCHEDULED, ESTIMATED, "Estimated"),
    (SCHEDULED, USED, "Used"),
    (IN_PROGRESS, ESTIMATED, "Estimated"),
    (IN_PROGRESS, USED, "Used"),
    (COMPLETED, ESTIMATED, "Estimated"),
    (COMPLETED, USED, "Used"),
    (POSTED, ESTIMATED, "Used"),
    (POSTED, USED, "Used"),
]


def product_line(status: int, line_status: int, allocated: bool, **extra: Any) -> dict[str, Any]:
    return {
        "header.msdyn_systemstatus": status,
        "msdyn_linestatus": line_status,
        "msdyn_allocated": allocated,
        "msdyn_estimatequantity": 5,
        "msdyn_quantity": 6,
        "msdyn_lineorder": 1,
        "_msdyn_product_value": ITEM,
        "msdynce_orderhasexternalmaintainedproductsonly": True,
        **extra,
    }


def service_line(status: int, line_status: int, **extra: Any) -> dict[str, Any]:
    return {
        "header.msdyn_systemstatus": status,
        "msdyn_linestatus": line_status,
        "msdyn_estimateduration": 120,
        "msdyn_duration": 90,
        "msdyn_lineorder": 2,
        "_msdyn_service_value": ITEM,
        "msdynce_orderhasexternalmaintainedproductsonly": True,
        **extra,
    }


@pytest.mark.parametrize(("status", "line_status", "allocated", "expected"), PRODUCT_TABLE)
def test_product_line_quantity_follows_the_documented_table(
    status: int, line_status: int, allocated: bool, expected: str
) -> None:
    body = docrules.evaluate(WO, PRODUCTS.values, product_line(status, line_status, allocated), RESOLVED)
    assert body["OrderedSalesQuantity"] == (5 if expected == "Estimated" else 6)


@pytest.mark.parametrize(("status", "line_status", "expected"), SERVICE_TABLE)
def test_service_line_duration_follows_the_documented_table_in_hours(
    status: int, line_status: int, expected: str
) -> None:
    body = docrules.evaluate(WO, SERVICES.values, service_line(status, line_status), RESOLVED)
    assert body["OrderedSalesQuantity"] == (2 if expected == "Estimated" else 1.5)  # 120 and 90 minutes


def test_the_documented_tables_are_the_maps_tables_row_for_row() -> None:
    quantity = next(v for v in PRODUCTS.values if v.target == "OrderedSalesQuantity")
    assert quantity.rule is not None
    assert [(*r.when, r.take) for r in quantity.rule.rows] == [
        (s, ls, a, "msdyn_estimatequantity" if e == "Estimated" else "msdyn_quantity")
        for s, ls, a, e in PRODUCT_TABLE
    ]
    duration = next(v for v in SERVICES.values if v.target == "OrderedSalesQuantity")
    assert duration.rule is not None and duration.divide == 60
    assert [(*r.when, r.take) for r in duration.rule.rows] == [
        (s, ls, "msdyn_estimateduration" if e == "Estimated" else "msdyn_duration")
        for s, ls, e in SERVICE_TABLE
    ]


def test_a_status_outside_the_table_is_rejected_naming_the_inputs() -> None:
    with pytest.raises(RejectedError, match="OrderedSalesQuantity: no row of its rule table matches"):
        docrules.evaluate(WO, PRODUCTS.values, product_line(UNSCHEDULED, ESTIMATED, True), RESOLVED)


def test_products_have_positive_and_services_negative_line_numbers() -> None:
    p = docrules.evaluate(WO, [PRODUCTS.key], product_line(SCHEDULED, ESTIMATED, True, msdyn_lineorder=3), {})
    s = docrules.evaluate(WO, [SERVICES.key], service_line(SCHEDULED, ESTIMATED, msdyn_lineorder=3), {})
    assert (p["LineCreationSequenceNumber"], s["LineCreationSequenceNumber"]) == (3, -3)


def header(status: int = SCHEDULED, **extra: Any) -> dict[str, Any]:
    return {
        "msdyn_workorderid": "c0000000-0000-0000-0000-000000000001",
        "msdyn_name": "WO-1",
        "msdyn_systemstatus": status,
        "msdynce_hasexternallymaintainedproductsonly": True,
        "_msdyn_serviceaccount_value": ACCOUNT,
        **extra,
    }


@pytest.mark.parametrize(
    ("status", "external", "why"),
    [
        (UNSCHEDULED, True, "Open-Unscheduled or Closed-Canceled"),
        (CANCELED, True, "Open-Unscheduled or Closed-Canceled"),
        (SCHEDULED, False, "not externally maintained"),
        (SCHEDULED, None, "not externally maintained"),
    ],
)
def test_work_orders_outside_the_template_filter_are_kept_out(status: int, external: Any, why: str) -> None:
    found = docrules.failed_filter(
        WO.filters, header(status, msdynce_hasexternallymaintainedproductsonly=external)
    )
    assert found is not None and why in found


@pytest.mark.parametrize("status", [SCHEDULED, IN_PROGRESS, COMPLETED, POSTED])
def test_work_orders_inside_the_filter_pass(status: int) -> None:
    assert docrules.failed_filter(WO.filters, header(status)) is None


def test_the_header_carries_origin_status_and_the_billing_or_service_account() -> None:
    body = docrules.evaluate(WO, WO.values, header(IN_PROGRESS), RESOLVED)
    assert body["SalesOrderOriginCode"] == "WorkOrder"
    assert body["ExternalWorkOrderStatus"] == "OpenInProgress"
    assert body["OrderingCustomerAccountNumber"] == "US-001"  # no billing account: the service account
    billing = "a0000000-0000-0000-0000-000000000002"
    row = header(IN_PROGRESS, _msdyn_billingaccount_value=billing)
    assert docrules.lookup_inputs(WO, WO.values, row)[0][1] == billing


def test_a_missing_reference_is_rejected() -> None:
    with pytest.raises(RejectedError, match="accounts has no row"):
        docrules.evaluate(WO, WO.values, header(), {})


def lines_of(*rows: tuple[str, Any, dict[str, Any]]) -> list[docrules.LineRow]:
    return [docrules.LineRow(coll, line_id, row) for line_id, coll, row in rows]


def test_the_first_sync_is_the_header_then_its_lines() -> None:
    lines = lines_of(
        ("l1", PRODUCTS, product_line(SCHEDULED, ESTIMATED, True)),
        ("l2", SERVICES, service_line(SCHEDULED, ESTIMATED)),
    )
    plan = docrules.plan(WO, "WO-1", header(), lines, None, RESOLVED)
    assert [(w.method, w.part) for w in plan.writes] == [
        ("POST", "header"),
        ("POST", "products"),
        ("POST", "services"),
    ]
    assert plan.writes[0].body is not None and plan.writes[0].body["SalesOrderNumber"] == "WO-1"
    assert plan.writes[2].keys == {
        "dataAreaId": "usmf",
        "SalesOrderNumber": "WO-1",
        "LineCreationSequenceNumber": -2,
    }


def test_a_line_change_goes_with_the_headers_current_version_and_nothing_else() -> None:
    first = docrules.plan(
        WO,
        "WO-1",
        header(),
        lines_of(("l1", PRODUCTS, product_line(SCHEDULED, ESTIMATED, True))),
        None,
        RESOLVED,
    )
    again = docrules.plan(
        WO,
        "WO-1",
        header(),
        lines_of(("l1", PRODUCTS, product_line(SCHEDULED, ESTIMATED, True))),
        first.state,
        RESOLVED,
    )
    assert again.empty  # a duplicate notification writes nothing
    changed = docrules.plan(
        WO,
        "WO-1",
        header(),
        lines_of(
            ("l1", PRODUCTS, product_line(SCHEDULED, ESTIMATED, False)),
            ("l2", SERVICES, service_line(SCHEDULED, USED)),
        ),
        first.state,
        RESOLVED,
    )
    assert [(w.method, w.part) for w in changed.writes] == [
        ("PATCH", "header"),
        ("PATCH", "products"),
        ("POST", "services"),
    ]


def test_a_removed_or_renumbered_line_is_deleted_first() -> None:
    first = docrules.plan(
        WO,
        "WO-1",
        header(),
        lines_of(
            ("l1", PRODUCTS, product_line(SCHEDULED, ESTIMATED, True)),
            ("l2", SERVICES, service_line(SCHEDULED, ESTIMATED)),
        ),
        None,
        RESOLVED,
    )
    renumbered = lines_of(("l1", PRODUCTS, product_line(SCHEDULED, ESTIMATED, True, msdyn_lineorder=7)))
    plan = docrules.plan(WO, "WO-1", header(), renumbered, first.state, RESOLVED)
    assert [(w.method, w.part, w.keys.get("LineCreationSequenceNumber")) for w in plan.writes] == [
        ("PATCH", "header", None),
        ("DELETE", "services", -2),
        ("DELETE", "products", 1),
        ("POST", "products", 7),
    ]
    gone = docrules.plan_delete(WO, "WO-1", plan.state)
    assert [(w.method, w.part) for w in gone.writes] == [("DELETE", "products"), ("DELETE", "header")]


# --------------------------------------------------------------------------- products
PRODUCT = dmap("product")
UNITS = {
    ("uoms", "msdyn_symbol", "ea"): "u1",
    ("uomschedules", "name", "Default Unit"): "g1",
    ("pricelevels", "name", "standard"): "p1",
}


@pytest.mark.parametrize(
    ("product_type", "stocked", "expected"),
    [
        ("Item", "Yes", 690970000),
        ("Item", "No", 690970001),
        ("Service", "No", 690970002),
        ("Service", "Yes", 690970002),
    ],
)
def test_field_service_product_type_is_computed_as_documented(
    product_type: str, stocked: str, expected: int
) -> None:
    row = {
        "ProductName": "Bolt",
        "ProductType": product_type,
        "IsStockedProduct": stocked,
        "SalesUnitSymbol": "ea",
    }
    body = docrules.evaluate(PRODUCT, PRODUCT.values, row, UNITS)
    assert body["msdyn_fieldserviceproducttype"] == expected
    assert body["msdynce_isexternallymaintained"] is True
    assert body["defaultuomid@odata.bind"] == "/uoms(u1)"
    assert body["defaultuomscheduleid@odata.bind"] == "/uomschedules(g1)"
    assert body["pricelevelid@odata.bind"] == "/pricelevels(p1)"


# --------------------------------------------------------------------------- agreement invoices
INVOICE = dmap("agreement_invoice")


def test_an_invoice_needs_its_date_and_lines_take_the_configured_main_account() -> None:
    row = {"_customerid_value": ACCOUNT, "name": "March", "msdynce_haslineswithagreementorigin": True}
    with pytest.raises(RejectedError, match="InvoiceDate is required"):
        docrules.evaluate(INVOICE, INVOICE.values, row, RESOLVED)
    body = docrules.evaluate(
        INVOICE, INVOICE.values, {**row, "msdyn_invoicedate": "2026-03-01T00:00:00Z"}, RESOLVED
    )
    assert body["InvoiceOriginType"] == "AgreementInvoiceIntegration"
    line = docrules.evaluate(INVOICE, INVOICE.lines[0].values, {"quantity": 2}, {})
    assert line["MainAccountDisplayValue"] == "401100"
    assert INVOICE.update_only_when is not None and INVOICE.update_only_when.equals == "No"


def test_invoice_lines_without_agreement_origin_are_kept_out() -> None:
    assert docrules.failed_filter(INVOICE.lines[0].filters, {"msdynce_hasagreementorigin": False}) is not None
    assert docrules.failed_filter(INVOICE.lines[0].filters, {"msdynce_hasagreementorigin": True}) is None


def test_the_main_account_is_a_setting_of_the_map_file(tmp_path: Path) -> None:
    from bridge.core.mapping import load_mapping_file

    shipped = Path(__file__).resolve().parents[2] / "mappings" / "agreement_invoice.yaml"
    text = shipped.read_text(encoding="utf-8")
    assert 'main_account: "401100"' in text
    mine = tmp_path / "agreement_invoice.yaml"
    mine.write_text(text.replace('main_account: "401100"', 'main_account: "402200"'), encoding="utf-8")
    edited = load_mapping_file(mine)
    assert isinstance(edited, DocumentMap)
    line = docrules.evaluate(edited, edited.lines[0].values, {"quantity": 1}, {})
    assert line["MainAccountDisplayValue"] == "402200"
