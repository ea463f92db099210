"""Labels the schema does not carry: option-set labels, two-option labels, display names, the
primary name column, and F&O enum type names. Keyed by column name, so a table that gains a column
of a known name gets its labels without a change here; a choice column with no entry falls back to
its number as text (and ``test_every_choice_column_has_labels`` in tests/sandbox/test_dv_metadata.py
fails until one is added).

Where the labels come from (also in docs/sandbox-api.md):
- Published in the Dataverse table reference (MicrosoftDocs/powerapps-docs,
  powerapps-docs/developer/data-platform/reference/entities/): ``serviceendpoint.md`` (contract,
  authtype, messageformat), ``sdkmessageprocessingstep.md`` (mode, stage, supporteddeployment),
  ``sdkmessageprocessingstepimage.md`` (imagetype); every table's ``statecode`` is Active/Inactive.
- Not published for the dual-write ``msdyn_`` tables: plausible labels taken from the F&O enum
  values the same column maps to (``WarehouseType``: Standard/Quarantine/Transit,
  ``PaymentMethodType``: Net/Current month/...), in the order the option values are numbered.
"""

from __future__ import annotations

from bridge.sandbox.schema import Column, Kind, Table

PUBLISHED = "published"  # in Microsoft's table reference
FROM_FNO_ENUM = "from the F&O enum"  # plausible, matches the F&O enum labels

_WO_SYSTEM_STATUS = {
    690970000: "Unscheduled",
    690970001: "Scheduled",
    690970002: "In Progress",
    690970003: "Completed",
    690970004: "Posted",
    690970005: "Canceled",
}

# column name -> (option value -> label, source)
OPTION_LABELS: dict[str, tuple[dict[int, str], str]] = {
    "statecode": ({0: "Active", 1: "Inactive"}, PUBLISHED),
    "contract": (
        {
            1: "OneWay",
            2: "Queue",
            3: "Rest",
            4: "TwoWay",
            5: "Topic",
            6: "Queue (Persistent)",
            7: "Event Hub",
            8: "Webhook",
            9: "Event Grid",
            10: "Managed Data Lake",
        },
        PUBLISHED,
    ),
    "authtype": (
        {
            1: "ACS",
            2: "SAS Key",
            3: "SAS Token",
            4: "Webhook Key",
            5: "Http Header",
            6: "Http Query String",
            7: "Connection String",
            8: "Access Key",
        },
        PUBLISHED,
    ),
    "messageformat": ({1: "Binary XML", 2: "Json", 3: "Text XML"}, PUBLISHED),
    "mode": ({0: "Synchronous", 1: "Asynchronous"}, PUBLISHED),
    "stage": (
        {
            10: "Pre-validation",
            20: "Pre-operation",
            30: "Main Operation (For internal use only)",
            40: "Post-operation",
        },
        PUBLISHED,
    ),
    "supporteddeployment": (
        {0: "Server Only", 1: "Microsoft Dynamics 365 Client for Outlook Only", 2: "Both"},
        PUBLISHED,
    ),
    "imagetype": ({0: "PreImage", 1: "PostImage", 2: "Both"}, PUBLISHED),
    "msdyn_warehousetype": (
        {192350000: "Standard", 192350001: "Quarantine", 192350002: "Transit"},
        FROM_FNO_ENUM,
    ),
    "msdyn_paymentmethodtype": (
        {
            192350000: "Net",
            192350001: "Current month",
            192350002: "Current quarter",
            192350003: "Current year",
            192350004: "Current week",
            192350005: "COD",
        },
        FROM_FNO_ENUM,
    ),
    # The Field Service table reference (dynamics-365-customer-engagement,
    # ce/field-service/developer/reference/entities/): msdyn_workorder.md, msdyn_workorderproduct.md,
    # product.md; producttypecode from the Sales product table reference.
    "msdyn_systemstatus": (_WO_SYSTEM_STATUS, PUBLISHED),
    "msdynce_headersystemstatus": (_WO_SYSTEM_STATUS, PUBLISHED),
    "msdyn_linestatus": ({690970000: "Estimated", 690970001: "Used"}, PUBLISHED),
    "msdyn_fieldserviceproducttype": (
        {690970000: "Inventory", 690970001: "Non-Inventory", 690970002: "Service"},
        PUBLISHED,
    ),
    "producttypecode": (
        {1: "Sales Inventory", 2: "Miscellaneous Charges", 3: "Services", 4: "Flat Fees"},
        PUBLISHED,
    ),
}

# Two-option columns: the Dataverse default labels (serviceendpoint.md, UseKeyVaultConfiguration).
BOOLEAN_LABELS = {True: "Yes", False: "No"}

# F&O enum type names in $metadata, by field name; a NoYes field is recognised by its labels.
FNO_ENUM_TYPES: dict[str, str] = {
    "WarehouseType": "InventLocationType",
    "PaymentMethodType": "PaymMethod",
    # the Field Service entities (schema/fs_fno.py)
    "OnHoldStatus": "CustVendorBlocked",
    "ProductType": "EcoResProductType",
    "FieldServiceProductType": "EcoResFieldServiceProductType",
    "ExternalWorkOrderStatus": "SalesExternalWorkOrderStatus",
    "SalesOriginType": "SalesOriginType",
    "SalesOrderOriginType": "SalesOriginType",
    "InvoiceOriginType": "CustomerInvoiceOriginType",
    "SalesOrderStatus": "SalesStatus",
    "SalesOrderLineStatus": "SalesStatus",
}
_NOYES = ("No", "Yes")


def option_label(column: Column, value: object) -> str:
    labels = OPTION_LABELS.get(column.name, ({}, ""))[0]
    return labels.get(value, str(value)) if isinstance(value, int) else str(value)


def option_labels(column: Column) -> list[tuple[int, str]]:
    """(value, label) for every option of a choice column, in schema order."""
    return [(int(v), option_label(column, int(v))) for v in column.options]


def has_labels(column: Column) -> bool:
    labels = OPTION_LABELS.get(column.name, ({}, ""))[0]
    return all(int(v) in labels for v in column.options)


def label_source(column: Column) -> str:
    return OPTION_LABELS.get(column.name, ({}, "none"))[1]


def primary_name(table: Table) -> str | None:
    """The primary name column (EntityMetadata.PrimaryNameAttribute): ``name`` or ``<prefix>_name``."""
    for c in table.columns:
        if c.kind is Kind.STRING and c.name.rsplit("_", 1)[-1] == "name":
            return c.name
    return None


def display_name(logical_name: str) -> str:
    """``msdyn_customerassetcategory`` → ``Customerassetcategory``: the sandbox's stand-in for the
    localized display name (real tables have hand-written ones)."""
    return logical_name.split("_", 1)[-1].capitalize()


def fno_enum_type(column: Column) -> str:
    """The enum type a F&O field uses in ``$metadata`` (``NoYes``, ``InventLocationType``, ...)."""
    if tuple(column.options) == _NOYES:
        return "NoYes"
    return FNO_ENUM_TYPES.get(column.name, column.name)
