"""Per-entity test data: what a person writes on one side and what must appear on the other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.e2e.harness import Harness, eventually


@dataclass(frozen=True)
class Spec:
    name: str
    cds_set: str
    cds_key: str
    cds_id: str
    scm_set: str
    scm_key: str
    cds_new: dict[str, Any]  # CDS body (without key and company)
    scm_after_cds_new: dict[str, Any]
    cds_change: dict[str, Any]
    scm_after_cds_change: dict[str, Any]
    scm_new: dict[str, Any]  # F&O body (without key and dataAreaId)
    cds_after_scm_new: dict[str, Any]
    scm_change: dict[str, Any]
    cds_after_scm_change: dict[str, Any]


ENTITIES = ("ship_via", "payment_terms", "customer_asset_category", "warehouse", "customer_asset")


async def site_id(h: Harness, site: str) -> str:
    row = await h.cds_find("msdyn_operationalsites", "msdyn_siteid", site)
    assert row is not None, f"site {site} is seeded in Dataverse"
    return str(row["msdyn_operationalsiteid"])


async def ensure_category(h: Harness, type_id: str) -> str:
    """An asset type created on F&O and synced: returns its Dataverse id."""
    resp = await h.scm_create(
        "AssetMaintenanceAssetTypes", {"MaintenanceAssetTypeId": type_id, "Name": "Pumps"}
    )
    assert resp.status == 201, resp.body

    async def synced() -> dict[str, Any] | None:
        return await h.cds_find("msdyn_customerassetcategories", "msdyn_maintenanceassettypeid", type_id)

    row = await eventually(synced, what=f"category {type_id} in Dataverse")
    return str(row["msdyn_customerassetcategoryid"])


async def spec_for(h: Harness, name: str) -> Spec:
    if name == "ship_via":
        return Spec(
            name,
            "msdyn_shipvias",
            "msdyn_name",
            "msdyn_shipviaid",
            "DeliveryModesV2",
            "ModeCode",
            {"msdyn_description": "Air freight"},
            {"ModeDescription": "Air freight"},
            {"msdyn_description": "Air, express"},
            {"ModeDescription": "Air, express"},
            {"ModeDescription": "Sea"},
            {"msdyn_description": "Sea"},
            {"ModeDescription": "Sea, slow"},
            {"msdyn_description": "Sea, slow"},
        )
    if name == "payment_terms":
        return Spec(
            name,
            "msdyn_paymentterms",
            "msdyn_name",
            "msdyn_paymenttermid",
            "PaymentTerms",
            "Name",
            {
                "msdyn_description": "Net 30",
                "msdyn_days": 30,
                "msdyn_iscashpayment": False,
                "msdyn_paymentmethodtype": 192350001,
            },
            {
                "Description": "Net 30",
                "NumberOfDays": 30,
                "IsCashPayment": "No",
                "PaymentMethodType": "CurrentMonth",
            },
            {"msdyn_days": 45, "msdyn_iscashpayment": True},
            {"NumberOfDays": 45, "IsCashPayment": "Yes"},
            {"Description": "Cash on delivery", "PaymentMethodType": "COD", "IsDefaultPaymentTerm": "Yes"},
            {
                "msdyn_description": "Cash on delivery",
                "msdyn_paymentmethodtype": 192350005,
                "msdyn_isdefaultpaymentterm": True,
            },
            {"CutoffDayOfMonth": 15, "NumberOfMonths": 1, "IsCertifiedCompanyCheck": "Yes"},
            {"msdyn_cutoffdayofmonth": 15, "msdyn_numberofmonth": 1, "msdyn_iscertifiedcompanycheck": True},
        )
    if name == "customer_asset_category":
        return Spec(
            name,
            "msdyn_customerassetcategories",
            "msdyn_maintenanceassettypeid",
            "msdyn_customerassetcategoryid",
            "AssetMaintenanceAssetTypes",
            "MaintenanceAssetTypeId",
            {"msdyn_name": "Pumps", "msdyn_calculatekpitotal": True},
            {"Name": "Pumps", "CalculateKPITotal": "Yes"},
            {"msdyn_name": "Big pumps"},
            {"Name": "Big pumps"},
            {"Name": "Fans", "CalculateKPITotal": "No"},
            {"msdyn_name": "Fans", "msdyn_calculatekpitotal": False},
            {"CalculateKPITotal": "Yes"},
            {"msdyn_calculatekpitotal": True},
        )
    if name == "warehouse":
        site1, site2, site3 = [await site_id(h, s) for s in ("1", "2", "3")]
        return Spec(
            name,
            "msdyn_warehouses",
            "msdyn_warehouseidentifier",
            "msdyn_warehouseid",
            "Warehouses",
            "WarehouseId",
            {
                "msdyn_description": "North",
                "msdyn_operationalsite@odata.bind": f"/msdyn_operationalsites({site1})",
                "msdyn_warehousetype": 192350001,
            },
            {"WarehouseName": "North", "OperationalSiteId": "1", "WarehouseType": "Quarantine"},
            {
                "msdyn_primaryaddresscity": "Oslo",
                "msdyn_useadvancedwarehousemanagementprocesses": True,
                "msdyn_primaryaddresslatitude": 59.91,
                "msdyn_maximumpickinglistlinequantity": 40,
            },
            {
                "PrimaryAddressCity": "Oslo",
                "AreAdvancedWarehouseManagementProcessesEnabled": "Yes",
                "PrimaryAddressLatitude": 59.91,
                "MaximumPickingListLineQuantity": 40,
            },
            {
                "WarehouseName": "South",
                "OperationalSiteId": "2",
                "WarehouseType": "Transit",
                "IsFallbackWarehouse": "Yes",
                "PrimaryAddressStreet": "Storgata 1",
            },
            {
                "msdyn_description": "South",
                "msdyn_warehousetype": 192350002,
                "_msdyn_operationalsite_value": site2,
                "msdyn_isfallbackwarehouse": True,
                "msdyn_primaryaddressstreet": "Storgata 1",
            },
            {"OperationalSiteId": "3"},
            {"_msdyn_operationalsite_value": site3},
        )
    if name == "customer_asset":
        category = await ensure_category(h, "PUMP")
        return Spec(
            name,
            "msdyn_customerassets",
            "msdyn_maintenanceassetid",
            "msdyn_customerassetid",
            "AssetMaintenanceAssets",
            "MaintenanceAssetId",
            {
                "msdyn_name": "Pump 1",
                "msdyn_modelyear": 2020,
                "msdyn_acquisitiondate": "2024-03-01",
                "msdyn_CustomerAssetCategory@odata.bind": f"/msdyn_customerassetcategories({category})",
            },
            {
                "Name": "Pump 1",
                "MaintenanceAssetTypeId": "PUMP",
                "ModelYear": "2020",
                "AcquisitionDate": "2024-03-01T00:00:00Z",
            },
            {
                "msdyn_replacementdate": "2030-01-01",
                "msdyn_acquisitioncost": 1200.5,
                "msdyn_activefrom": "2024-04-01",
                "msdyn_vendaccount": "V-100",
            },
            {
                "ReplacementDate": "2030-01-01T00:00:00Z",
                "AcquisitionCost": 1200.5,
                "ActiveFrom": "2024-04-01T00:00:00Z",
                "VendAccount": "V-100",
            },
            {
                "Name": "Fan 7",
                "MaintenanceAssetTypeId": "PUMP",
                "SerialId": "SN-7",
                "ReplacementDate": "1900-01-01T00:00:00Z",
            },
            {
                "msdyn_name": "Fan 7",
                "msdyn_serialid": "SN-7",
                "msdyn_replacementdate": None,
                "_msdyn_customerassetcategory_value": category,
            },
            {"Notes": "checked", "ReplacementValue": 900, "WrkCtrId": "WC-1"},
            {"msdyn_notes": "checked", "msdyn_replacementvalue": 900, "msdyn_wrkctrid": "WC-1"},
        )
    raise KeyError(name)


def cds_key_body(spec: Spec, key: str) -> dict[str, Any]:
    body = {spec.cds_key: key}
    if spec.name == "warehouse":
        body["msdyn_name"] = key  # required on Dataverse; the bridge copies WarehouseId to it
    return body


def subset(row: dict[str, Any] | None, expected: dict[str, Any]) -> bool:
    return row is not None and all(row.get(k) == v for k, v in expected.items())
