"""A generic OData v4 client that no one here wrote, used unchanged against the running sandbox.

``python-odata`` (PyPI, import name ``odata``) reflects its entity classes from ``$metadata`` and
builds its own query URLs; it knows nothing about Dataverse or F&O. If either emulator's CSDL or its
answers to standard queries drift from OData v4 (OASIS OData v4.0 Part 1 protocol, Part 3 CSDL,
which both Microsoft pages cite: powerapps-docs/developer/data-platform/webapi/
web-api-service-documents.md and articles/fin-ops-core/dev-itpro/data-entities/odata.md), this fails.
The sandbox runs through the sandbox pytest plugin, with real TLS and a person's (user) token.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from odata import ODataService

from bridge.sandbox.pytest_plugin import msal_app, requests_session
from bridge.sandbox.runtime import Sandbox, SandboxInfo

pytestmark = pytest.mark.timeout(120)
logging.getLogger("odata").setLevel(logging.WARNING)

DV_TABLES = {
    "msdyn_warehouses": "msdyn_warehouseidentifier",
    "msdyn_customerassetcategories": "msdyn_maintenanceassettypeid",
    "msdyn_customerassets": "msdyn_maintenanceassetid",
    "msdyn_paymentterms": "msdyn_name",
    "msdyn_shipvias": "msdyn_name",
}
FNO_TABLES = {
    "Warehouses": "WarehouseId",
    "AssetMaintenanceAssetTypes": "MaintenanceAssetTypeId",
    "AssetMaintenanceAssets": "MaintenanceAssetId",
    "PaymentTerms": "Name",
    "DeliveryModesV2": "ModeCode",
}


def _service(info: SandboxInfo, url: str, scope: str) -> ODataService:
    token = msal_app(info, "user").acquire_token_for_client([scope])["access_token"]
    session = requests_session(info)
    session.headers["Authorization"] = f"Bearer {token}"
    return ODataService(url, session=session, reflect_entities=True, quiet_progress=True)


def _seed(sandbox: Sandbox) -> None:
    from bridge.sandbox.dataverse.service import sandbox_id

    usmf = sandbox_id("cdm_company", "USMF")
    company = {"_msdyn_company_value": usmf}
    dv = sandbox.dataverse
    dv.seed(
        "msdyn_customerassetcategories",
        [{"msdyn_maintenanceassettypeid": "PUMP", "msdyn_name": "Pumps", **company}],
    )
    category = dv.rows("msdyn_customerassetcategories")[0]["msdyn_customerassetcategoryid"]
    dv.seed(
        "msdyn_customerassets",
        [
            {
                "msdyn_maintenanceassetid": "P-1",
                "msdyn_name": "Pump 1",
                "_msdyn_customerassetcategory_value": category,
                **company,
            }
        ],
    )
    dv.seed(
        "msdyn_warehouses",
        [{"msdyn_warehouseidentifier": f"W{i}", "msdyn_name": f"W{i}", **company} for i in range(3)],
    )
    dv.seed("msdyn_paymentterms", [{"msdyn_name": "Net30", "msdyn_days": 30, **company}])
    dv.seed("msdyn_shipvias", [{"msdyn_name": "AIR", **company}])
    fno = sandbox.fno
    fno.seed("AssetMaintenanceAssetTypes", [{"MaintenanceAssetTypeId": "PUMP", "Name": "Pumps"}])
    fno.seed(
        "AssetMaintenanceAssets",
        [{"MaintenanceAssetId": "P-1", "Name": "Pump 1", "MaintenanceAssetTypeId": "PUMP"}],
    )
    fno.seed(
        "Warehouses",
        [
            {
                "WarehouseId": f"W{i}",
                "OperationalSiteId": "1",
                "AreAdvancedWarehouseManagementProcessesEnabled": yes,
            }
            for i, yes in enumerate(("No", "Yes", "No"))
        ],
    )
    fno.seed("PaymentTerms", [{"Name": "Net30", "NumberOfDays": 30}])
    fno.seed("DeliveryModesV2", [{"ModeCode": "AIR"}])


def _read_both(info: SandboxInfo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    dv = _service(info, info.cds_url, info.cds_scope)
    for entity_set, natural_key in DV_TABLES.items():
        cls = dv.entities[entity_set]
        rows = dv.query(cls).all()
        out[f"dv:{entity_set}"] = sorted(getattr(r, natural_key) for r in rows)
    wh = dv.entities["msdyn_warehouses"]
    out["dv:filtered"] = [
        w.msdyn_warehouseidentifier for w in dv.query(wh).filter(wh.msdyn_warehouseidentifier == "W1").all()
    ]
    out["dv:count"] = dv.query(wh).count()
    asset = dv.entities["msdyn_customerassets"]
    one = dv.query(asset).first()
    out["dv:category_lookup"] = str(one._msdyn_customerassetcategory_value)
    fno = _service(info, info.scm_url, info.scm_scope)
    for entity_set, natural_key in FNO_TABLES.items():
        cls = fno.entities[entity_set]
        rows = fno.query(cls).all()
        out[f"fno:{entity_set}"] = sorted(getattr(r, natural_key) for r in rows)
    fwh = fno.entities["Warehouses"]
    out["fno:ordered"] = [
        w.WarehouseId for w in fno.query(fwh).order_by(fwh.WarehouseId.desc()).limit(2).all()
    ]
    out["fno:count"] = fno.query(fwh).count()
    # Enum fields come back as members of the EnumType the client built from $metadata, and an enum
    # comparison is written as Microsoft.Dynamics.DataEntities.NoYes'Yes' (odata.md, "Using Enums").
    flag = fwh.AreAdvancedWarehouseManagementProcessesEnabled
    value = (
        fno.query(fwh).filter(fwh.WarehouseId == "W0").first().AreAdvancedWarehouseManagementProcessesEnabled
    )
    out["fno:enum"] = (type(value).__name__, value.name)
    yes = type(value)["Yes"]
    out["fno:enum_filter"] = [w.WarehouseId for w in fno.query(fwh).filter(flag == yes).all()]
    return out


async def test_python_odata_reads_both_metadata_documents_and_queries_the_five_tables(
    sandbox: Sandbox,
) -> None:
    _seed(sandbox)
    got = await asyncio.to_thread(_read_both, sandbox.info)
    assert got["dv:msdyn_warehouses"] == ["W0", "W1", "W2"]
    assert got["dv:msdyn_customerassetcategories"] == ["PUMP"]
    assert got["dv:msdyn_customerassets"] == ["P-1"]
    assert got["dv:msdyn_paymentterms"] == ["Net30"]
    assert got["dv:msdyn_shipvias"] == ["AIR"]
    assert got["dv:filtered"] == ["W1"]
    assert got["dv:count"] == 3
    assert (
        got["dv:category_lookup"]
        == sandbox.dataverse.rows("msdyn_customerassetcategories")[0]["msdyn_customerassetcategoryid"]
    )
    assert got["fno:Warehouses"] == ["W0", "W1", "W2"]
    assert got["fno:AssetMaintenanceAssetTypes"] == ["PUMP"]
    assert got["fno:AssetMaintenanceAssets"] == ["P-1"]
    assert got["fno:PaymentTerms"] == ["Net30"]
    assert got["fno:DeliveryModesV2"] == ["AIR"]
    assert got["fno:ordered"] == ["W2", "W1"]
    assert got["fno:count"] == 3
    assert got["fno:enum"] == ("NoYes", "No")
    assert got["fno:enum_filter"] == ["W1"]
