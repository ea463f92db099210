"""Finance and Operations entities of the emulator (OData property names, PascalCase)."""

from __future__ import annotations

from bridge.sandbox.schema.columns import DT, Column, D, I, Kind, M, S, Table
from bridge.sandbox.schema.fs_fno import FS_FNO_TABLES

# ---------------------------------------------------------------- Finance and Operations
_FO_SYSTEM = (Column("ModifiedDateTime", Kind.DATETIME, read_only=True),)


def _area() -> Column:
    return Column(
        "dataAreaId",
        S,
        max_length=4,
        required=True,
        immutable=True,
        target="LegalEntities",
        target_key="LegalEntityId",
    )


def _warehouse_reference(name: str) -> Column:
    return Column(name, S, max_length=10, target="Warehouses", target_key="WarehouseId")


FO_NOYES = ("No", "Yes")
FO_WAREHOUSE_TYPE = ("Standard", "Quarantine", "Transit")
FO_PAYMENT_METHOD = ("Net", "CurrentMonth", "CurrentQuarter", "CurrentYear", "CurrentWeek", "COD")

FNO_TABLES: tuple[Table, ...] = (
    Table(
        "LegalEntities",
        "LegalEntity",
        key=("LegalEntityId",),
        columns=(
            Column("LegalEntityId", S, max_length=4, required=True),
            Column("Name", S, max_length=60),
        ),
    ),
    Table(
        "OperationalSites",
        "OperationalSite",
        key=("dataAreaId", "SiteId"),
        company_column="dataAreaId",
        columns=(
            _area(),
            Column("SiteId", S, max_length=10, required=True),
            Column("SiteName", S, max_length=60),
            *_FO_SYSTEM,
        ),
    ),
    Table(
        "Warehouses",
        "Warehouse",
        key=("dataAreaId", "WarehouseId"),
        company_column="dataAreaId",
        notifies=True,
        columns=(
            _area(),
            Column("WarehouseId", S, max_length=10, required=True),
            Column("WarehouseName", S, max_length=60),
            Column(
                "OperationalSiteId",
                S,
                max_length=10,
                required=True,
                target="OperationalSites",
                target_key="SiteId",
            ),
            Column("WarehouseType", Kind.ENUM, options=FO_WAREHOUSE_TYPE),
            _warehouse_reference("MainRefillingWarehouseId"),
            _warehouse_reference("QuarantineWarehouseId"),
            _warehouse_reference("TransitWarehouseId"),
            Column("DefaultContainerTypeId", S, max_length=20),
            Column("AreItemsCoveragePlannedManually", Kind.ENUM, options=FO_NOYES),
            Column("AreLaborStandardsAllowed", Kind.ENUM, options=FO_NOYES),
            Column("PrimaryAddressBuildingCompliment", S, max_length=60),
            Column("PrimaryAddressPostBox", S, max_length=20),
            Column("PrimaryAddressStreetNumber", S, max_length=20),
            Column("AreWarehouseLocationCheckDigitsUnique", Kind.ENUM, options=FO_NOYES),
            Column("InventoryCountingReasonCodePolicyName", S, max_length=60),
            Column("ExternallyLocatedWarehouseVendorAccountNumber", S, max_length=20),
            Column("WarehouseWorkProcessingPolicyName", S, max_length=60),
            Column("IsFallbackWarehouse", Kind.ENUM, options=FO_NOYES),
            Column("IsFinancialNegativeRetailStoreInventoryAllowed", Kind.ENUM, options=FO_NOYES),
            Column("IsPalletMovementDuringCycleCountingAllowed", Kind.ENUM, options=FO_NOYES),
            Column("IsPhysicalNegativeRetailStoreInventoryAllowed", Kind.ENUM, options=FO_NOYES),
            Column("IsRefilledFromMainWarehouse", Kind.ENUM, options=FO_NOYES),
            Column("IsRetailStoreWarehouse", Kind.ENUM, options=FO_NOYES),
            Column("MasterPlanningWorkCalendardId", S, max_length=20),
            Column("MaximumBatchPickingListQuantity", I, minimum=0, maximum=2147483647),
            Column("MaximumPickingListLineQuantity", I, minimum=0, maximum=2147483647),
            Column("RetailStoreQuantityAllocationReplenismentRuleWeight", D),
            Column("ShouldWarehouseLocationIdIncludeAisleId", Kind.ENUM, options=FO_NOYES),
            Column("WarehouseLocationIdBinIdFormat", S, max_length=60),
            Column("WarehouseLocationIdRackIdFormat", S, max_length=60),
            Column("WarehouseLocationIdShelfIdFormat", S, max_length=60),
            Column("WarehouseSpecificDefaultInventoryStatusId", S, max_length=20),
            Column("IsPrimaryAddressAssigned", Kind.ENUM, options=FO_NOYES),
            Column("PrimaryAddressCity", S, max_length=60),
            Column("PrimaryAddressCountryRegionId", S, max_length=10),
            Column("PrimaryAddressCountyId", S, max_length=20),
            Column("PrimaryAddressDistrictName", S, max_length=60),
            Column("PrimaryAddressLatitude", D),
            Column("PrimaryAddressLongitude", D),
            Column("PrimaryAddressLocationRoles", S, max_length=60),
            Column("PrimaryAddressLocationSalesTaxGroupCode", S, max_length=60),
            Column("PrimaryAddressStateId", S, max_length=20),
            Column("PrimaryAddressStreet", S, max_length=250),
            Column("PrimaryAddressZipCode", S, max_length=20),
            Column("ExternallyLocatedWarehouseCustomerAccountNumber", S, max_length=20),
            Column("PrimaryAddressCityInKana", S, max_length=60),
            Column("PrimaryAddressStreetInKana", S, max_length=60),
            Column("PrimaryAddressDescription", S, max_length=250),
            Column("AreAdvancedWarehouseManagementProcessesEnabled", Kind.ENUM, options=FO_NOYES),
            Column("ArePickingListsDeliveryModeSpecific", Kind.ENUM, options=FO_NOYES),
            Column("ArePickingListsShipmentSpecificOnly", Kind.ENUM, options=FO_NOYES),
            Column("FormattedPrimaryAddress", M, max_length=1000),
            Column("IsBillOfLadingPrintingBeforeShipmentConfirmationEnabled", Kind.ENUM, options=FO_NOYES),
            Column("WillAutomaticLoadReleaseReserveInventory", Kind.ENUM, options=FO_NOYES),
            Column("WillInventoryStatusChangeRemoveBlocking", Kind.ENUM, options=FO_NOYES),
            Column("WillManualLoadReleaseReserveInventory", Kind.ENUM, options=FO_NOYES),
            Column("WillOrderReleasingConsolidateShipments", Kind.ENUM, options=FO_NOYES),
            Column("WillProductionBOMsReserveWarehouseLevelOnly", Kind.ENUM, options=FO_NOYES),
            Column("WillShippingCancellationDecrementLoadQuanity", Kind.ENUM, options=FO_NOYES),
            Column("WillWarehouseLocationIdIncludeBinIdByDefault", Kind.ENUM, options=FO_NOYES),
            Column("WillWarehouseLocationIdIncludeRackIdByDefault", Kind.ENUM, options=FO_NOYES),
            Column("WillWarehouseLocationIdIncludeShelfIdByDefault", Kind.ENUM, options=FO_NOYES),
            *_FO_SYSTEM,
        ),
    ),
    Table(
        "AssetMaintenanceAssetTypes",
        "AssetMaintenanceAssetType",
        key=("dataAreaId", "MaintenanceAssetTypeId"),
        company_column="dataAreaId",
        notifies=True,
        columns=(
            _area(),
            Column("MaintenanceAssetTypeId", S, max_length=20, required=True),
            Column("Name", S, max_length=60, required=True),
            Column("CalculateKPITotal", Kind.ENUM, options=FO_NOYES),
            *_FO_SYSTEM,
        ),
    ),
    Table(
        "AssetMaintenanceAssets",
        "AssetMaintenanceAsset",
        key=("dataAreaId", "MaintenanceAssetId"),
        company_column="dataAreaId",
        notifies=True,
        columns=(
            _area(),
            Column("MaintenanceAssetId", S, max_length=20, required=True),
            Column("Name", S, max_length=60, required=True),
            Column(
                "MaintenanceAssetTypeId",
                S,
                max_length=20,
                required=True,
                target="AssetMaintenanceAssetTypes",
                target_key="MaintenanceAssetTypeId",
            ),
            Column(
                "ParentMaintenanceAssetId",
                S,
                max_length=20,
                target="AssetMaintenanceAssets",
                target_key="MaintenanceAssetId",
            ),
            Column("SerialId", S, max_length=20),
            Column("ModelYear", S, max_length=4),  # Edm.String in F&O's OData metadata
            Column("AcquisitionCost", D),
            Column("AcquisitionDate", DT),
            Column("ActiveFrom", DT),
            Column("ActiveTo", DT),
            Column("ReplacementDate", DT),
            Column("ReplacementValue", D),
            Column("PurchaseOrderId", S, max_length=20),
            Column("VendAccount", S, max_length=20),
            Column("WarrantyDateFromVend", DT),
            Column("WrkCtrId", S, max_length=10),
            Column("FixedAssetId", S, max_length=20),
            Column("Notes", M, max_length=1000),
            *_FO_SYSTEM,
        ),
    ),
    Table(
        "PaymentTerms",
        "PaymentTerm",
        key=("dataAreaId", "Name"),
        company_column="dataAreaId",
        notifies=True,
        columns=(
            _area(),
            Column("Name", S, max_length=10, required=True),
            Column("Description", S, max_length=60),
            Column("NumberOfDays", I, minimum=0, maximum=999),
            Column("NumberOfMonths", I, minimum=0, maximum=999),
            Column("CutoffDayOfMonth", I, minimum=0, maximum=31),
            Column("IsCashPayment", Kind.ENUM, options=FO_NOYES),
            Column("IsCertifiedCompanyCheck", Kind.ENUM, options=FO_NOYES),
            Column("IsDefaultPaymentTerm", Kind.ENUM, options=FO_NOYES),
            Column("PaymentMethodType", Kind.ENUM, options=FO_PAYMENT_METHOD),
            *_FO_SYSTEM,
        ),
    ),
    Table(
        "DeliveryModesV2",
        "DeliveryModeV2",
        key=("dataAreaId", "ModeCode"),
        company_column="dataAreaId",
        notifies=True,
        columns=(
            _area(),
            Column("ModeCode", S, max_length=10, required=True),
            Column("ModeDescription", S, max_length=60),
            *_FO_SYSTEM,
        ),
    ),
    *FS_FNO_TABLES,  # the Field Service flows (fs_fno.py)
)
