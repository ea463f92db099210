"""Test data of the Field Service flows (issue 23), written as a person on each side."""

from __future__ import annotations

import itertools
from typing import Any

from tests.e2e.harness import Harness, eventually


async def dv_post(h: Harness, entity_set: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await h.request("cds", "POST", entity_set, body, headers={"Prefer": "return=representation"})
    assert resp.status in (200, 201), resp.body
    return dict(resp.body)


async def dv_rows(h: Harness, entity_set: str, flt: str) -> list[dict[str, Any]]:
    resp = await h.request("cds", "GET", f"{entity_set}?$filter={flt}")
    assert resp.status == 200, resp.body
    return list(resp.body["value"])


async def dv_one(h: Harness, entity_set: str, flt: str) -> dict[str, Any] | None:
    rows = await dv_rows(h, entity_set, flt)
    return rows[0] if rows else None


async def units(h: Harness) -> dict[str, str]:
    """Unit group 'Default Unit' with units 'ea' and 'h', and the price list 'standard' (Dataverse)."""
    found = await dv_one(h, "uomschedules", "name eq 'Default Unit'")
    group = found or await dv_post(h, "uomschedules", {"name": "Default Unit", "baseuomname": "ea"})
    ids = {"group": str(group["uomscheduleid"])}
    for symbol in ("ea", "h"):
        row = await dv_one(h, "uoms", f"msdyn_symbol eq '{symbol}'")
        if row is None:
            row = await dv_post(
                h,
                "uoms",
                {
                    "name": symbol,
                    "msdyn_symbol": symbol,
                    "uomscheduleid@odata.bind": f"/uomschedules({ids['group']})",
                },
            )
        ids[symbol] = str(row["uomid"])
    price_list = await dv_one(h, "pricelevels", "name eq 'standard'")
    price_list = price_list or await dv_post(h, "pricelevels", {"name": "standard"})
    ids["price_list"] = str(price_list["pricelevelid"])
    return ids


async def fno_product(
    h: Harness, number: str, *, product_type: str = "Item", stocked: str = "Yes", unit: str = "ea"
) -> None:
    resp = await h.scm_create(
        "CDSReleasedDistinctProducts",
        {
            "ProductNumber": number,
            "ProductName": f"Product {number}",
            "ItemNumber": number,
            "ProductType": product_type,
            "IsStockedProduct": stocked,
            "SalesUnitSymbol": unit,
            "SalesPrice": 12.5,
            "CurrencyCode": "USD",
        },
    )
    assert resp.status == 201, resp.body


async def synced_product(h: Harness, number: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        return await dv_one(h, "products", f"productnumber eq '{number}'")

    return await eventually(found, what=f"product {number} in Dataverse")


async def customer(h: Harness, account: str, name: str = "Contoso") -> str:
    """An F&O customer and its Dataverse account (accountnumber = CustomerAccount); the account id."""
    if await h.scm_find("CustomersV3", "CustomerAccount", account) is None:
        resp = await h.scm_create(
            "CustomersV3", {"CustomerAccount": account, "OrganizationName": name, "CustomerGroupId": "10"}
        )
        assert resp.status == 201, resp.body
    row = await dv_one(h, "accounts", f"accountnumber eq '{account}'")
    row = row or await dv_post(h, "accounts", {"name": name, "accountnumber": account})
    return str(row["accountid"])


async def sales_origin(h: Harness, code: str = "WorkOrder") -> None:
    if await h.scm_find("SalesOrderOriginCodes", "OriginCode", code) is None:
        resp = await h.scm_create(
            "SalesOrderOriginCodes",
            {
                "OriginCode": code,
                "OriginDescription": "Field Service Work Order",
                "SalesOriginType": "WorkOrderIntegration",
            },
        )
        assert resp.status == 201, resp.body


SCHEDULED, IN_PROGRESS, COMPLETED, POSTED = 690970001, 690970002, 690970003, 690970004
UNSCHEDULED, CANCELED = 690970000, 690970005
ESTIMATED, USED = 690970000, 690970001


async def released(h: Harness, number: str, *, product_type: str = "Item", unit: str = "ea") -> str:
    """A product released in F&O and synced to Dataverse by the product map: its Dataverse id."""
    await fno_product(h, number, product_type=product_type, stocked="Yes", unit=unit)
    return str((await synced_product(h, number))["productid"])


_numbers = itertools.count(1)


async def work_order(h: Harness, account_id: str, **extra: Any) -> dict[str, Any]:
    body = {
        "msdyn_name": f"WO-T{next(_numbers):04d}",
        "msdyn_ServiceAccount@odata.bind": f"/accounts({account_id})",
        **extra,
    }
    return await dv_post(h, "msdyn_workorders", body)


async def product_line(
    h: Harness, wo_id: str, product_id: str, unit_id: str, order: int, **extra: Any
) -> Any:
    body = {
        "msdyn_WorkOrder@odata.bind": f"/msdyn_workorders({wo_id})",
        "msdyn_Product@odata.bind": f"/products({product_id})",
        "msdyn_Unit@odata.bind": f"/uoms({unit_id})",
        "msdyn_lineorder": order,
        **extra,
    }
    return await h.request(
        "cds", "POST", "msdyn_workorderproducts", body, headers={"Prefer": "return=representation"}
    )


async def service_line(
    h: Harness, wo_id: str, service_id: str, unit_id: str, order: int, **extra: Any
) -> Any:
    body = {
        "msdyn_WorkOrder@odata.bind": f"/msdyn_workorders({wo_id})",
        "msdyn_Service@odata.bind": f"/products({service_id})",
        "msdyn_Unit@odata.bind": f"/uoms({unit_id})",
        "msdyn_lineorder": order,
        **extra,
    }
    return await h.request(
        "cds", "POST", "msdyn_workorderservices", body, headers={"Prefer": "return=representation"}
    )


async def sales_lines(h: Harness, number: str) -> dict[int, dict[str, Any]]:
    """The F&O sales order's lines by their line number."""
    resp = await h.request("scm", "GET", f"CDSSalesOrderLinesV2?$filter=SalesOrderNumber eq '{number}'")
    assert resp.status == 200, resp.body
    return {int(r["LineCreationSequenceNumber"]): r for r in resp.body["value"]}


async def fs_setup(h: Harness) -> dict[str, str]:
    """Units, a customer, the sales origin, a product and a service released and synced."""
    ids = await units(h)
    ids["account"] = await customer(h, "US-001")
    await sales_origin(h)
    ids["item"] = await released(h, "FS-ITEM")
    ids["service"] = await released(h, "FS-SVC", product_type="Service", unit="h")
    return ids
