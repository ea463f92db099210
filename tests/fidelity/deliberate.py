"""Where the shipped maps (mappings/*.yaml) differ from Microsoft's published out-of-box maps, on
purpose, each with its reason. tests/fidelity/test_published_maps.py fails on any other difference,
and on an entry here that no longer matches a difference. docs/mappings.md repeats this list."""

from __future__ import annotations

# Published maps and the shipped map each one is compared with (tests/fidelity/published/).
PUBLISHED = {
    "warehouse": "InventWarehouseEntity-msdyn-warehouse.md",
    "customer_asset": "AssetManagementAssets-msdyn-customerassets.md",
    "customer_asset_category": "AssetManagementAssetTypes-msdyn-customerassetcategories.md",
    "payment_terms": "TermsofPayment-msdyn-paymentterms.md",
}

# Shipped maps without a published field table: ours stands as it is.
UNPUBLISHED = {
    "ship_via": (
        "Microsoft lists the map (DlvDeliveryModeEntity <-> msdyn_shipvias, dual-write "
        "mapping-reference.md) but publishes no field table for it"
    ),
}

_ENUM = (
    "an F&O enum whose Dataverse option values Microsoft does not publish; a value map would have "
    "to invent them, and an invented value would be written to a real system"
)


def _no_table(table: str) -> str:
    return f"a lookup to {table}, which the emulator does not hold (nor do we ship its map)"


# (map name, published F&O field): reason the shipped map leaves the published row out.
LEFT_OUT: dict[tuple[str, str], str] = {
    ("warehouse", "AUTOUPDATESHIPMENTRULE"): _ENUM,
    ("warehouse", "WAREHOUSERELEASERESERVATIONREQUIREMENTRULE"): _ENUM,
    ("warehouse", "INVENTORYSTATUSCHANGERESERVATIONREMOVALLEVEL"): _ENUM,
    ("warehouse", "RAWMATERIALPICKINGINVENTORYISSUESTATUS"): _ENUM,
    ("customer_asset", "FUNCTIONALLOCATIONID"): _no_table("msdyn_functionallocations"),
    ("customer_asset", "MAINTENANCEASSETLIFECYCLESTATEID"): _no_table("msdyn_assetlifecyclestates"),
    ("customer_asset", "MODELID"): _no_table("msdyn_models"),
    ("customer_asset", "MODELPRODUCTID"): (
        _no_table("msdyn_models") + "; a lookup through a lookup (msdyn_model.msdyn_manufacturer) "
        "is also beyond the mapping format"
    ),
    ("customer_asset", "WARRANTYID"): _no_table("msdyn_warranties"),
    ("customer_asset", "PRODUCTID"): _no_table("msdyn_manufacturers"),
    ("customer_asset_category", "LIFECYCLEMODELID"): _no_table("msdyn_assetlifecyclemodels"),
    ("payment_terms", "CREDITCARDPAYMENTTYPE"): _ENUM,
    ("payment_terms", "CREDITCARDCREDITCHECKTYPE"): _ENUM,
    ("payment_terms", "PAYMENTDAYNAME"): _no_table("msdyn_paymentdays"),
    ("payment_terms", "PAYMENTSCHEDULENAME"): _no_table("msdyn_paymentschedules"),
}

# (map name, shipped F&O field): reason the shipped map has a row the published map lacks.
ADDED: dict[tuple[str, str], str] = {}
