"""Table definitions of both emulated systems: columns, types, limits, keys and references.

The single source of truth for the emulators' storage, validation and notification payloads.
Names follow Microsoft's public documentation (see docs/sandbox.md); where the real tables have
dozens of columns we keep the ones the dual-write maps for these entities use most.

Representation on the wire (Web API JSON):
- Dataverse: option sets as int, booleans as bool, dates (``date``) as "YYYY-MM-DD", ``datetime`` as
  ISO 8601 UTC "YYYY-MM-DDTHH:MM:SSZ", decimals/money as numbers, lookups written with
  ``<nav>@odata.bind`` and read as ``_<column>_value`` (GUID string).
- F&O: enums as their labels (strings), NoYes as "Yes"/"No", dates as ISO 8601 datetimes
  "YYYY-MM-DDT00:00:00Z" with 1900-01-01 as the empty date, references as plain id strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    STRING = "string"  # max_length applies
    MEMO = "memo"  # long text; max_length applies
    INT = "int"  # minimum/maximum apply
    DECIMAL = "decimal"
    BOOL = "bool"  # Dataverse two-option
    DATE = "date"  # Dataverse date-only; F&O date (as datetime at midnight)
    DATETIME = "datetime"
    GUID = "guid"
    OPTIONSET = "optionset"  # Dataverse choice: int in ``options``
    ENUM = "enum"  # F&O enum: label in ``options``
    LOOKUP = "lookup"  # Dataverse lookup to ``target`` table (entity set)


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    max_length: int | None = None
    required: bool = False  # must be present (non-empty) on create
    minimum: float | None = None
    maximum: float | None = None
    options: tuple[str | int, ...] = ()  # OPTIONSET ints or ENUM labels
    target: str | None = None  # LOOKUP: target entity set; F&O reference: referenced entity set
    target_key: str | None = None  # F&O reference: column in the target holding the id (same company)
    nav: str | None = None  # Dataverse single-valued navigation property name for @odata.bind
    read_only: bool = False  # system-maintained, rejected on write
    immutable: bool = False  # can be set on create, never changed after


@dataclass(frozen=True)
class Table:
    entity_set: str  # URL collection name
    logical_name: str  # Dataverse logical name / F&O public entity name
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # F&O: composite key incl. dataAreaId; Dataverse: alternate key columns
    primary_id: str | None = None  # Dataverse primary key column (GUID)
    company_column: str | None = None  # Dataverse: msdyn_company lookup; F&O: dataAreaId
    notifies: bool = False  # one of the five synced entities (webhooks / data events)
    extra_unique: tuple[tuple[str, ...], ...] = field(default=())

    def column(self, name: str) -> Column | None:
        for c in self.columns:
            if c.name == name:
                return c
        return None


S, M, I, D, B, DT, G = Kind.STRING, Kind.MEMO, Kind.INT, Kind.DECIMAL, Kind.BOOL, Kind.DATE, Kind.GUID  # noqa: E741 (table shorthand)

# ---------------------------------------------------------------- Dataverse
_DV_SYSTEM = (
    Column("createdon", Kind.DATETIME, read_only=True),
    Column("modifiedon", Kind.DATETIME, read_only=True),
    Column("versionnumber", I, read_only=True),
    Column("_modifiedby_value", G, read_only=True),
    Column("statecode", Kind.OPTIONSET, options=(0, 1)),
)


def _dv_company() -> Column:
    return Column(
        "msdyn_company",
        Kind.LOOKUP,
        target="cdm_companies",
        nav="msdyn_company",
        required=True,
        immutable=True,
    )


DV_PAYMENT_METHOD = (192350000, 192350001, 192350002, 192350003, 192350004, 192350005)
DV_WAREHOUSE_TYPE = (192350000, 192350001, 192350002)

DATAVERSE_TABLES: tuple[Table, ...] = (
    Table(
        "cdm_companies",
        "cdm_company",
        primary_id="cdm_companyid",
        key=("cdm_companycode",),
        columns=(
            Column("cdm_companyid", G),
            Column("cdm_companycode", S, max_length=10, required=True, immutable=True),
            Column("cdm_name", S, max_length=100),
            *_DV_SYSTEM,
        ),
    ),
    Table(
        "msdyn_operationalsites",
        "msdyn_operationalsite",
        primary_id="msdyn_operationalsiteid",
        key=("msdyn_company", "msdyn_siteid"),
        company_column="msdyn_company",
        columns=(
            Column("msdyn_operationalsiteid", G),
            Column("msdyn_siteid", S, max_length=100, required=True),
            Column("msdyn_name", S, max_length=100),
            _dv_company(),
            *_DV_SYSTEM,
        ),
    ),
    Table(
        "msdyn_warehouses",
        "msdyn_warehouse",
        primary_id="msdyn_warehouseid",
        key=("msdyn_company", "msdyn_warehouseidentifier"),
        company_column="msdyn_company",
        notifies=True,
        columns=(
            Column("msdyn_warehouseid", G),
            Column("msdyn_warehouseidentifier", S, max_length=100, required=True),
            Column("msdyn_name", S, max_length=100, required=True),
            Column("msdyn_description", S, max_length=2000),
            Column(
                "msdyn_operationalsite",
                Kind.LOOKUP,
                target="msdyn_operationalsites",
                nav="msdyn_operationalsite",
            ),
            Column("msdyn_warehousetype", Kind.OPTIONSET, options=DV_WAREHOUSE_TYPE),
            Column("msdyn_isadvancedwarehousemanagementenabled", B),
            Column(
                "msdyn_mainrefillingwarehouse",
                Kind.LOOKUP,
                target="msdyn_warehouses",
                nav="msdyn_mainrefillingwarehouse",
            ),
            Column("msdyn_primaryaddresscity", S, max_length=80),
            Column("msdyn_primaryaddresscountryregionid", S, max_length=10),
            _dv_company(),
            *_DV_SYSTEM,
        ),
    ),
    Table(
        "msdyn_customerassetcategories",
        "msdyn_customerassetcategory",
        primary_id="msdyn_customerassetcategoryid",
        key=("msdyn_company", "msdyn_maintenanceassettypeid"),
        company_column="msdyn_company",
        notifies=True,
        columns=(
            Column("msdyn_customerassetcategoryid", G),
            Column("msdyn_maintenanceassettypeid", S, max_length=100, required=True),
            Column("msdyn_name", S, max_length=100, required=True),
            Column("msdyn_calculatekpitotal", B),
            _dv_company(),
            *_DV_SYSTEM,
        ),
    ),
    Table(
        "msdyn_customerassets",
        "msdyn_customerasset",
        primary_id="msdyn_customerassetid",
        key=("msdyn_company", "msdyn_maintenanceassetid"),
        company_column="msdyn_company",
        notifies=True,
        columns=(
            Column("msdyn_customerassetid", G),
            Column("msdyn_maintenanceassetid", S, max_length=100, required=True),
            Column("msdyn_name", S, max_length=100, required=True),
            Column(
                "msdyn_customerassetcategory",
                Kind.LOOKUP,
                target="msdyn_customerassetcategories",
                nav="msdyn_CustomerAssetCategory",
            ),
            Column("msdyn_parentasset", Kind.LOOKUP, target="msdyn_customerassets", nav="msdyn_ParentAsset"),
            Column("msdyn_serialnumber", S, max_length=100),
            Column("msdyn_modelyear", I, minimum=1900, maximum=2100),
            Column("msdyn_acquisitioncost", D, minimum=0),
            Column("msdyn_acquisitiondate", DT),
            Column("msdyn_replacementdate", DT),
            Column("msdyn_notes", M, max_length=10000),
            _dv_company(),
            *_DV_SYSTEM,
        ),
    ),
    Table(
        "msdyn_paymentterms",
        "msdyn_paymentterm",
        primary_id="msdyn_paymenttermid",
        key=("msdyn_company", "msdyn_name"),
        company_column="msdyn_company",
        notifies=True,
        columns=(
            Column("msdyn_paymenttermid", G),
            Column("msdyn_name", S, max_length=100, required=True),
            Column("msdyn_description", S, max_length=100),
            Column("msdyn_days", I, minimum=0, maximum=999),
            Column("msdyn_months", I, minimum=0, maximum=999),
            Column("msdyn_cutoffday", I, minimum=0, maximum=31),
            Column("msdyn_iscashpayment", B),
            Column("msdyn_isdefault", B),
            Column("msdyn_paymentmethodtype", Kind.OPTIONSET, options=DV_PAYMENT_METHOD),
            _dv_company(),
            *_DV_SYSTEM,
        ),
    ),
    Table(
        "msdyn_shipvias",
        "msdyn_shipvia",
        primary_id="msdyn_shipviaid",
        key=("msdyn_company", "msdyn_name"),
        company_column="msdyn_company",
        notifies=True,
        columns=(
            Column("msdyn_shipviaid", G),
            Column("msdyn_name", S, max_length=100, required=True),
            Column("msdyn_description", S, max_length=100),
            _dv_company(),
            *_DV_SYSTEM,
        ),
    ),
)

# Plug-in registration tables: webhooks are registered through the Web API itself, as on the real
# system (serviceendpoint with contract 8, steps bound to sdkmessages/sdkmessagefilters, images).
DATAVERSE_REGISTRATION_TABLES: tuple[Table, ...] = (
    Table(
        "sdkmessages",
        "sdkmessage",
        primary_id="sdkmessageid",
        key=("name",),
        columns=(Column("sdkmessageid", G), Column("name", S, max_length=256, required=True)),
    ),
    Table(
        "sdkmessagefilters",
        "sdkmessagefilter",
        primary_id="sdkmessagefilterid",
        key=("sdkmessageid", "primaryobjecttypecode"),
        columns=(
            Column("sdkmessagefilterid", G),
            Column("sdkmessageid", Kind.LOOKUP, target="sdkmessages", nav="sdkmessageid", required=True),
            Column("primaryobjecttypecode", S, max_length=128, required=True),
        ),
    ),
    Table(
        "serviceendpoints",
        "serviceendpoint",
        primary_id="serviceendpointid",
        key=("name",),
        columns=(
            Column("serviceendpointid", G),
            Column("name", S, max_length=256, required=True),
            Column("description", S, max_length=2000),
            Column("contract", Kind.OPTIONSET, options=(1, 2, 3, 4, 5, 6, 7, 8, 9), required=True),
            Column("url", S, max_length=2000),
            Column("authtype", Kind.OPTIONSET, options=(1, 2, 3, 4, 5, 6, 7), required=True),
            Column("authvalue", M, max_length=10000),  # write-only on the real system: never returned
            Column("messageformat", Kind.OPTIONSET, options=(1, 2, 3)),
            *_DV_SYSTEM,
        ),
    ),
    Table(
        "sdkmessageprocessingsteps",
        "sdkmessageprocessingstep",
        primary_id="sdkmessageprocessingstepid",
        key=("name",),
        columns=(
            Column("sdkmessageprocessingstepid", G),
            Column("name", S, max_length=256, required=True),
            Column("mode", Kind.OPTIONSET, options=(0, 1), required=True),
            Column("stage", Kind.OPTIONSET, options=(10, 20, 40), required=True),
            Column("rank", I, minimum=1, maximum=2147483647),
            Column("filteringattributes", M, max_length=100000),
            Column("asyncautodelete", B),
            Column("supporteddeployment", Kind.OPTIONSET, options=(0, 1, 2)),
            Column("sdkmessageid", Kind.LOOKUP, target="sdkmessages", nav="sdkmessageid", required=True),
            Column("sdkmessagefilterid", Kind.LOOKUP, target="sdkmessagefilters", nav="sdkmessagefilterid"),
            Column(
                "eventhandler_serviceendpoint",
                Kind.LOOKUP,
                target="serviceendpoints",
                nav="eventhandler_serviceendpoint",
                required=True,
            ),
            *_DV_SYSTEM,
        ),
    ),
    Table(
        "sdkmessageprocessingstepimages",
        "sdkmessageprocessingstepimage",
        primary_id="sdkmessageprocessingstepimageid",
        key=("sdkmessageprocessingstepid", "entityalias"),
        columns=(
            Column("sdkmessageprocessingstepimageid", G),
            Column("name", S, max_length=256),
            Column("entityalias", S, max_length=256, required=True),
            Column("imagetype", Kind.OPTIONSET, options=(0, 1, 2), required=True),  # pre, post, both
            Column("messagepropertyname", S, max_length=256, required=True),  # "Target" or "Id"
            Column("attributes", M, max_length=100000),
            Column(
                "sdkmessageprocessingstepid",
                Kind.LOOKUP,
                target="sdkmessageprocessingsteps",
                nav="sdkmessageprocessingstepid",
                required=True,
            ),
        ),
    ),
)

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
            Column("AreAdvancedWarehouseManagementProcessesEnabled", Kind.ENUM, options=FO_NOYES),
            Column(
                "MainRefillingWarehouseId", S, max_length=10, target="Warehouses", target_key="WarehouseId"
            ),
            Column("PrimaryAddressCity", S, max_length=60),
            Column("PrimaryAddressCountryRegionId", S, max_length=10),
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
            Column("SerialNumber", S, max_length=50),
            Column("ModelYear", I, minimum=0, maximum=9999),
            Column("AcquisitionCost", D),
            Column("AcquisitionDate", DT),
            Column("ReplacementDate", DT),
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
            Column("CutOffDayOfMonth", I, minimum=0, maximum=31),
            Column("IsCashPayment", Kind.ENUM, options=FO_NOYES),
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
)


def table_by_set(tables: tuple[Table, ...], entity_set: str) -> Table | None:
    for t in tables:
        if t.entity_set == entity_set:
            return t
    return None
