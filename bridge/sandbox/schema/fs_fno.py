"""Finance and Operations entities of the Field Service flows (issue 23): customers, released products,
sales order origins, the Dataverse-integration ("CDS") sales order headers and lines, main accounts,
and the CDS free text invoice headers and lines.

Entity names, keys and property names are those of F&O's OData metadata as public clients generated
from it show them (the SAP Cloud SDK's ``d365_metadata`` service: ``CDSReleasedDistinctProducts`` key
dataAreaId + ProductNumber, ``CDSSalesOrderHeaders`` dataAreaId + SalesOrderNumber,
``CDSSalesOrderLinesV2`` dataAreaId + SalesOrderNumber + LineCreationSequenceNumber,
``CDSFreeTextInvoiceHeaders`` dataAreaId + ExternalInvoiceId, ``CDSFreeTextInvoiceLines``
+ LineNumber, ``CustomersV3`` dataAreaId + CustomerAccount), and the fields Microsoft's published
maps use (MicrosoftDocs/dynamics-365-unified-operations-public, dual-write ``includes/``:
``EcoResReleasedDistinctProductCDSEntity-products.md``, ``SalesOrderHeaderCDSEntity-salesorder.md``,
``SalesOrderLineCDSEntity-salesorderdetails.md``, ``CustomersV3-accounts.md``,
``SalesOrderOriginEntity-msdyn-salesorderorigin.md``). String lengths are the emulator's (F&O's EDT
lengths are not published with the entities). Business rules beyond the schema (number sequence,
blocked customers, posting): bridge/sandbox/fno/fieldservice.py.
"""

from __future__ import annotations

from bridge.sandbox.schema.columns import DT, Column, D, I, Kind, M, S, Table

_FO_SYSTEM = (Column("ModifiedDateTime", Kind.DATETIME, read_only=True),)
_NOYES = ("No", "Yes")


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


def _customer(name: str, *, required: bool = False) -> Column:
    return Column(
        name, S, max_length=20, required=required, target="CustomersV3", target_key="CustomerAccount"
    )


# Enum labels (the OData metadata's member names; values in brackets are the members' order)
FO_BLOCKED = ("No", "Invoice", "All", "Payment", "Requisition", "Never", "PurchOrder")  # CustVendorBlocked
FO_PRODUCT_TYPE = ("Item", "Service")  # EcoResProductType
FO_FS_PRODUCT_TYPE = ("Inventory", "NonInventory", "Service", "NotAvailable")  # EcoResFieldServiceProductType
FO_WORK_ORDER_STATUS = (  # SalesExternalWorkOrderStatus
    "OpenUnscheduled",
    "OpenScheduled",
    "OpenInProgress",
    "OpenCompleted",
    "ClosedPosted",
    "ClosedCanceled",
)
FO_SALES_ORIGIN_TYPE = ("None", "WorkOrderIntegration")  # SalesOriginType (labels not published)
FO_INVOICE_ORIGIN_TYPE = ("None", "AgreementInvoiceIntegration")  # CustomerInvoiceOriginType (idem)
FO_SALES_STATUS = ("None", "Backorder", "Delivered", "Invoiced", "Canceled")  # SalesStatus

FS_FNO_TABLES: tuple[Table, ...] = (
    Table(
        "CustomersV3",
        "CustomerV3",
        key=("dataAreaId", "CustomerAccount"),
        company_column="dataAreaId",
        notifies=True,
        columns=(
            _area(),
            Column("CustomerAccount", S, max_length=20, required=True),
            Column("OrganizationName", S, max_length=100),
            Column("CustomerGroupId", S, max_length=10, required=True),
            Column("SalesCurrencyCode", S, max_length=3),
            Column("PaymentTerms", S, max_length=10),
            Column("CreditLimit", D, minimum=0),
            Column("OnHoldStatus", Kind.ENUM, options=FO_BLOCKED),
            Column("InvoiceAccount", S, max_length=20),
            *_FO_SYSTEM,
        ),
    ),
    Table(
        "CDSReleasedDistinctProducts",
        "CDSReleasedDistinctProduct",
        key=("dataAreaId", "ProductNumber"),
        company_column="dataAreaId",
        notifies=True,
        columns=(
            _area(),
            Column("ProductNumber", S, max_length=70, required=True),
            Column("ProductName", S, max_length=60),
            Column("ProductDescription", M, max_length=1000),
            Column("ItemNumber", S, max_length=20),
            Column("CurrencyCode", S, max_length=3),
            Column("SalesUnitSymbol", S, max_length=10),
            Column("InventoryUnitSymbol", S, max_length=10),
            Column("SalesPrice", D, minimum=0),
            Column("UnitCost", D, minimum=0),
            Column("SalesUnitDecimalPrecision", I, minimum=0, maximum=5),
            Column("ProductType", Kind.ENUM, options=FO_PRODUCT_TYPE),
            Column("IsStockedProduct", Kind.ENUM, options=_NOYES),
            Column("IsCatchWeightProduct", Kind.ENUM, options=_NOYES),
            # field-service-product.md: calculated from ProductType and IsStockedProduct
            Column("FieldServiceProductType", Kind.ENUM, options=FO_FS_PRODUCT_TYPE, read_only=True),
            *_FO_SYSTEM,
        ),
    ),
    Table(
        "SalesOrderOriginCodes",
        "SalesOrderOriginCode",
        key=("dataAreaId", "OriginCode"),
        company_column="dataAreaId",
        columns=(
            _area(),
            Column("OriginCode", S, max_length=10, required=True),
            Column("OriginDescription", S, max_length=60),
            Column("SalesOriginType", Kind.ENUM, options=FO_SALES_ORIGIN_TYPE),
            *_FO_SYSTEM,
        ),
    ),
    Table(
        "CDSSalesOrderHeaders",
        "CDSSalesOrderHeader",
        key=("dataAreaId", "SalesOrderNumber"),
        company_column="dataAreaId",
        notifies=True,
        columns=(
            _area(),
            Column(
                "SalesOrderNumber", S, max_length=20, required=True
            ),  # from the number sequence if left out
            Column("SalesOrderName", S, max_length=100),
            _customer("OrderingCustomerAccountNumber", required=True),
            _customer("InvoiceCustomerAccountNumber"),
            Column("CurrencyCode", S, max_length=3),
            Column(
                "SalesOrderOriginCode",
                S,
                max_length=10,
                target="SalesOrderOriginCodes",
                target_key="OriginCode",
            ),
            # the type of the origin code (Work order integration): set by F&O, not by the caller
            Column("SalesOrderOriginType", Kind.ENUM, options=FO_SALES_ORIGIN_TYPE, read_only=True),
            Column("ExternalWorkOrderStatus", Kind.ENUM, options=FO_WORK_ORDER_STATUS),
            Column("SalesOrderStatus", Kind.ENUM, options=FO_SALES_STATUS, read_only=True),
            Column("CustomersOrderReference", S, max_length=60),
            Column("CustomerRequisitionNumber", S, max_length=20),
            Column("RequestedShippingDate", DT),
            Column("RequestedReceiptDate", DT),
            Column("DefaultShippingSiteId", S, max_length=10),
            Column("DefaultShippingWarehouseId", S, max_length=10),
            Column("DeliveryModeCode", S, max_length=10),
            Column("PaymentTermsName", S, max_length=10),
            Column("IsSalesProcessingStopped", Kind.ENUM, options=_NOYES),
            Column("OrderTotalAmount", D, read_only=True),
            *_FO_SYSTEM,
        ),
    ),
    Table(
        "CDSSalesOrderLinesV2",
        "CDSSalesOrderLineV2",
        key=("dataAreaId", "SalesOrderNumber", "LineCreationSequenceNumber"),
        company_column="dataAreaId",
        notifies=True,
        columns=(
            _area(),
            Column(
                "SalesOrderNumber",
                S,
                max_length=20,
                required=True,
                target="CDSSalesOrderHeaders",
                target_key="SalesOrderNumber",
            ),
            # products positive, services negative (field-service-work-order.md, External Line Order)
            Column("LineCreationSequenceNumber", I, minimum=-(2**31), maximum=2**31 - 1),
            Column(
                "ProductNumber",
                S,
                max_length=70,
                required=True,
                target="CDSReleasedDistinctProducts",
                target_key="ProductNumber",
            ),
            Column("ProductName", S, max_length=60),
            Column("LineDescription", M, max_length=1000),
            Column("OrderedSalesQuantity", D),
            Column("SalesUnitSymbol", S, max_length=10),
            Column("SalesPrice", D),
            Column("LineAmount", D),
            Column("LineDiscountAmount", D),
            Column("LineDiscountPercentage", D, minimum=0, maximum=100),
            Column("CurrencyCode", S, max_length=3),
            Column("ShippingSiteId", S, max_length=10),
            Column("ShippingWarehouseId", S, max_length=10),
            Column("RequestedShippingDate", DT),
            Column("SalesOrderLineStatus", Kind.ENUM, options=FO_SALES_STATUS, read_only=True),
            Column("SalesOrderOriginType", Kind.ENUM, options=FO_SALES_ORIGIN_TYPE, read_only=True),
            *_FO_SYSTEM,
        ),
    ),
    Table(
        "MainAccounts",
        "MainAccount",
        key=("ChartOfAccounts", "MainAccountId"),
        columns=(
            Column("ChartOfAccounts", S, max_length=60, required=True),
            Column("MainAccountId", S, max_length=20, required=True),
            Column("Name", S, max_length=60),
        ),
    ),
    Table(
        "CDSFreeTextInvoiceHeaders",
        "CDSFreeTextInvoiceHeader",
        key=("dataAreaId", "ExternalInvoiceId"),
        company_column="dataAreaId",
        notifies=True,
        columns=(
            _area(),
            Column("ExternalInvoiceId", S, max_length=60, required=True),
            _customer("CustomerAccount", required=True),
            _customer("InvoiceAccount"),
            Column("InvoiceDate", DT, required=True),  # field-service-invoice.md: mandatory in F&O
            Column("DocumentDate", DT),
            Column("DueDate", DT),
            Column("CurrencyCode", S, max_length=3),
            Column("InvoiceName", S, max_length=60),
            Column("CustomerReference", S, max_length=60),
            Column("InvoiceOriginType", Kind.ENUM, options=FO_INVOICE_ORIGIN_TYPE),
            # set by posting (the Post action): the invoice number and the posted (Completed) flag
            Column("FreeTextNumber", S, max_length=20, read_only=True),
            Column("IsPosted", Kind.ENUM, options=_NOYES, read_only=True),
            *_FO_SYSTEM,
        ),
    ),
    Table(
        "CDSFreeTextInvoiceLines",
        "CDSFreeTextInvoiceLine",
        key=("dataAreaId", "ExternalInvoiceId", "LineNumber"),
        company_column="dataAreaId",
        notifies=True,
        columns=(
            _area(),
            Column(
                "ExternalInvoiceId",
                S,
                max_length=60,
                required=True,
                target="CDSFreeTextInvoiceHeaders",
                target_key="ExternalInvoiceId",
            ),
            Column("LineNumber", D, minimum=0),  # Edm.Decimal in the metadata
            Column("Description", S, max_length=60),
            Column("InvoiceText", M, max_length=1000),
            Column(
                "MainAccountDisplayValue",
                S,
                max_length=500,
                required=True,
                target="MainAccounts",
                target_key="MainAccountId",
            ),
            Column("Quantity", D),
            Column("UnitPrice", D),
            Column("TransactionCurrencyAmount", D),
            Column("SalesTaxGroupId", S, max_length=10),
            Column("SalesTaxItemGroupId", S, max_length=10),
            *_FO_SYSTEM,
        ),
    ),
)
