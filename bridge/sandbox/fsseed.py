"""Field Service seed data (issue 23): the reference data both systems hold before the flows run, and
a work order with a product and a service line that a person creates for the demo.

Reference data is seeded in-process, without notifications, on both emulators (``seed_reference``):
F&O customers (one on hold for everything, one on hold for invoicing) and released products (a
stocked item, a non-stocked item, a service), and on Dataverse the unit group, units, price list,
accounts and the same products as the Field Service products template would have made them
(externally maintained, with their Field Service product type). Ids are deterministic, so the work
order (``work_order_records``) can bind them. ``dualwrite demo`` and the tests use both.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.sandbox.schema.fs_dataverse import (
    FS_INVENTORY,
    FS_NON_INVENTORY,
    FS_SERVICE,
    LINE_ESTIMATED,
    WO_SCHEDULED,
)


class Seedable(Protocol):
    def seed(self, entity_set: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]: ...


def seed_id(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "dualwrite-sandbox-fs:" + ":".join(parts)))


@dataclass(frozen=True)
class Product:
    number: str
    name: str
    product_type: str  # F&O EcoResProductType
    stocked: bool
    unit: str
    price: float
    fs_type: int  # what the Field Service products template makes of it


PRODUCTS = (
    Product("FS-PUMP", "Circulation pump", "Item", True, "ea", 420.0, FS_INVENTORY),
    Product("FS-FILTER", "Filter cartridge", "Item", False, "ea", 35.0, FS_NON_INVENTORY),
    Product("FS-REPAIR", "Repair service", "Service", False, "hr", 95.0, FS_SERVICE),
)
CUSTOMERS = (  # (account, name, on hold)
    ("FS-C001", "Fabrikam Facilities", "No"),
    ("FS-C002", "Blocked Boilers Ltd", "All"),
    ("FS-C003", "Invoice Hold Inc", "Invoice"),
)
UNIT_GROUP, PRICE_LIST = seed_id("uomschedule", "Default unit"), seed_id("pricelevel", "standard")
UNITS = {"ea": ("Each", seed_id("uom", "ea")), "hr": ("Hour", seed_id("uom", "hr"))}


def account_id(account: str) -> str:
    return seed_id("account", account)


def product_id(number: str) -> str:
    return seed_id("product", number)


def fno_reference(company: str = "usmf") -> dict[str, list[dict[str, Any]]]:
    customers = [
        {
            "dataAreaId": company,
            "CustomerAccount": account,
            "OrganizationName": name,
            "CustomerGroupId": "30",
            "SalesCurrencyCode": "USD",
            "OnHoldStatus": hold,
        }
        for account, name, hold in CUSTOMERS
    ]
    products = [
        {
            "dataAreaId": company,
            "ProductNumber": p.number,
            "ItemNumber": p.number,
            "ProductName": p.name,
            "ProductType": p.product_type,
            "IsStockedProduct": "Yes" if p.stocked else "No",
            "SalesUnitSymbol": p.unit,
            "InventoryUnitSymbol": p.unit,
            "SalesPrice": p.price,
            "CurrencyCode": "USD",
        }
        for p in PRODUCTS
    ]
    return {"CustomersV3": customers, "CDSReleasedDistinctProducts": products}


def dataverse_reference() -> dict[str, list[dict[str, Any]]]:
    units = [
        {
            "uomid": uid,
            "name": name,
            "msdyn_symbol": symbol,
            "quantity": 1.0,
            "_uomscheduleid_value": UNIT_GROUP,
        }
        for symbol, (name, uid) in UNITS.items()
    ]
    products = [
        {
            "productid": product_id(p.number),
            "productnumber": p.number,
            "name": p.name,
            "msdyn_fieldserviceproducttype": p.fs_type,
            "msdynce_isexternallymaintained": True,
            "_defaultuomscheduleid_value": UNIT_GROUP,
            "_defaultuomid_value": UNITS[p.unit][1],
            "_pricelevelid_value": PRICE_LIST,
            "price": p.price,
        }
        for p in PRODUCTS
    ]
    accounts = [
        {"accountid": account_id(account), "accountnumber": account, "name": name}
        for account, name, _ in CUSTOMERS
    ]
    return {
        "uomschedules": [{"uomscheduleid": UNIT_GROUP, "name": "Default unit", "baseuomname": "Each"}],
        "uoms": units,
        "pricelevels": [{"pricelevelid": PRICE_LIST, "name": "standard"}],
        "accounts": accounts,
        "products": products,
    }


def seed_reference(dataverse: Seedable, fno: Seedable) -> int:
    """Seed both emulators' reference data; returns the number of rows."""
    made = 0
    for target, data in ((fno, fno_reference()), (dataverse, dataverse_reference())):
        for entity_set, rows in data.items():
            made += len(target.seed(entity_set, rows))
    return made


def work_order_records(
    name: str = "WO-DEMO-1", customer: str = "FS-C001"
) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """A scheduled work order and its lines (Web API bodies, as a person creates them): the header,
    then (entity set, body) per line; a line binds its header with ``{header}``."""
    header = {
        "msdyn_name": name,
        "msdyn_systemstatus": WO_SCHEDULED,
        "msdyn_ServiceAccount@odata.bind": f"/accounts({account_id(customer)})",
        "msdyn_PriceList@odata.bind": f"/pricelevels({PRICE_LIST})",
        "msdyn_workordersummary": "Boiler pump replacement",
    }
    lines: list[tuple[str, dict[str, Any]]] = [
        (
            "msdyn_workorderproducts",
            {
                "msdyn_WorkOrder@odata.bind": "{header}",
                "msdyn_Product@odata.bind": f"/products({product_id('FS-PUMP')})",
                "msdyn_Unit@odata.bind": f"/uoms({UNITS['ea'][1]})",
                "msdyn_linestatus": LINE_ESTIMATED,
                "msdyn_allocated": True,
                "msdyn_estimatequantity": 1.0,
                "msdyn_quantity": 0.0,
                "msdyn_lineorder": 1,
            },
        ),
        (
            "msdyn_workorderproducts",
            {
                "msdyn_WorkOrder@odata.bind": "{header}",
                "msdyn_Product@odata.bind": f"/products({product_id('FS-FILTER')})",
                "msdyn_Unit@odata.bind": f"/uoms({UNITS['ea'][1]})",
                "msdyn_linestatus": LINE_ESTIMATED,
                "msdyn_estimatequantity": 2.0,
                "msdyn_quantity": 2.0,
                "msdyn_lineorder": 2,
            },
        ),
        (
            "msdyn_workorderservices",
            {
                "msdyn_WorkOrder@odata.bind": "{header}",
                "msdyn_Service@odata.bind": f"/products({product_id('FS-REPAIR')})",
                "msdyn_Unit@odata.bind": f"/uoms({UNITS['hr'][1]})",
                "msdyn_linestatus": LINE_ESTIMATED,
                "msdyn_estimateduration": 90,
                "msdyn_lineorder": 1,
            },
        ),
    ]
    return header, lines


async def create_work_order(http: Any, cds_url: str, token: str, name: str = "WO-DEMO-1") -> int:
    """Create ``work_order_records(name)`` through the Web API as the holder of ``token`` (a person):
    the header, then each line bound to it. Returns how many rows were created."""
    header, lines = work_order_records(name)
    auth = {"Authorization": f"Bearer {token}", "Prefer": "return=representation"}
    async with http.post(f"{cds_url}/msdyn_workorders", json=header, headers=auth) as resp:
        if resp.status != 201:
            return 0
        header_id = (await resp.json())["msdyn_workorderid"]
    made = 1
    for entity_set, body in lines:
        bound = {k: (f"/msdyn_workorders({header_id})" if v == "{header}" else v) for k, v in body.items()}
        async with http.post(f"{cds_url}/{entity_set}", json=bound, headers=auth) as resp:
            made += resp.status == 201
    return made
