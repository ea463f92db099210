"""Dataverse tables of the Field Service flows (issue 23): products and their units and price lists,
accounts, agreements, work orders with their product and service lines, invoices with their lines.

Sources (MicrosoftDocs): the Field Service table reference
(``dynamics-365-customer-engagement``, ``ce/field-service/developer/reference/entities/``:
``msdyn_workorder.md``, ``msdyn_workorderproduct.md``, ``msdyn_workorderservice.md``, ``product.md``)
for names, types, lengths, ranges and choices; the Data integrator template pages
(``dynamics-365-unified-operations-public``, ``articles/supply-chain/sales-marketing/``
``field-service-work-order.md``, ``field-service-invoice.md``, ``products-template-mapping-direct.md``)
for the integration columns the "Field Service CRM solution" adds. Columns the templates name but no
table reference lists carry the template's prefix ``msdynce_`` (as its filters spell
``msdynce_headersystemstatus``); the emulator maintains them (bridge/sandbox/dataverse/fieldservice.py)
and they are read-only here. docs/sandbox-rules.md lists which names are published and which derived.
Lookup navigation properties use the SchemaName (``msdyn_WorkOrder``), as the Web API does.
"""

from __future__ import annotations

from bridge.sandbox.schema.columns import DT, B, Column, D, G, I, Kind, M, S, Table

_SYSTEM = (
    Column("createdon", Kind.DATETIME, read_only=True),
    Column("modifiedon", Kind.DATETIME, read_only=True),
    Column("versionnumber", I, read_only=True),
    Column("_modifiedby_value", G, read_only=True),
    Column("statecode", Kind.OPTIONSET, options=(0, 1)),
)
_MONEY_MAX = 1_000_000_000.0  # the line tables' money columns (MaxValue 1000000000)

# msdyn_workorder.msdyn_systemstatus (global choice msdyn_wosystemstatus)
WO_UNSCHEDULED, WO_SCHEDULED, WO_IN_PROGRESS = 690970000, 690970001, 690970002
WO_COMPLETED, WO_POSTED, WO_CANCELED = 690970003, 690970004, 690970005
WO_SYSTEM_STATUS = (WO_UNSCHEDULED, WO_SCHEDULED, WO_IN_PROGRESS, WO_COMPLETED, WO_POSTED, WO_CANCELED)
# msdyn_linestatus (global choice msdyn_productservicestatus)
LINE_ESTIMATED, LINE_USED = 690970000, 690970001
LINE_STATUS = (LINE_ESTIMATED, LINE_USED)
# product.msdyn_fieldserviceproducttype
FS_INVENTORY, FS_NON_INVENTORY, FS_SERVICE = 690970000, 690970001, 690970002
FS_PRODUCT_TYPE = (FS_INVENTORY, FS_NON_INVENTORY, FS_SERVICE)
# product.producttypecode: Sales Inventory, Miscellaneous Charges, Services, Flat Fees
PRODUCT_TYPE_CODE = (1, 2, 3, 4)


def _lookup(name: str, target: str, nav: str, *, required: bool = False) -> Column:
    return Column(name, Kind.LOOKUP, target=target, nav=nav, required=required)


def _money(name: str) -> Column:
    return Column(name, D, minimum=0, maximum=_MONEY_MAX)


def _line_common() -> tuple[Column, ...]:
    """Columns work order product and service lines share (both references list them)."""
    return (
        Column("msdyn_name", S, max_length=200),  # defaulted from the product's name, as Field Service does
        _lookup("msdyn_workorder", "msdyn_workorders", "msdyn_WorkOrder", required=True),
        Column("msdyn_linestatus", Kind.OPTIONSET, options=LINE_STATUS),
        Column("msdyn_lineorder", I, minimum=-(2**31), maximum=2**31 - 1),
        _lookup("msdyn_unit", "uoms", "msdyn_Unit"),
        _lookup("msdyn_pricelist", "pricelevels", "msdyn_PriceList"),
        Column("msdyn_description", M, max_length=2000),
        Column("msdyn_internaldescription", M, max_length=2000),
        _money("msdyn_unitamount"),
        _money("msdyn_estimateunitamount"),
        _money("msdyn_subtotal"),
        _money("msdyn_estimatesubtotal"),
        _money("msdyn_totalamount"),
        _money("msdyn_estimatetotalamount"),
        _money("msdyn_discountamount"),
        Column("msdyn_discountpercent", D, minimum=0, maximum=100),
        Column("msdyn_taxable", B),
        # Field Service CRM solution (field-service-work-order.md): maintained by the emulator.
        Column("msdynce_headersystemstatus", Kind.OPTIONSET, options=WO_SYSTEM_STATUS, read_only=True),
        Column("msdynce_orderhasexternalmaintainedproductsonly", B, read_only=True),
    )


FS_DATAVERSE_TABLES: tuple[Table, ...] = (
    Table(
        "accounts",
        "account",
        primary_id="accountid",
        key=("accountnumber",),
        columns=(
            Column("accountid", G),
            Column("name", S, max_length=160, required=True),
            Column("accountnumber", S, max_length=20),  # the F&O customer account (CustomersV3-accounts.md)
            Column("description", M, max_length=2000),
            *_SYSTEM,
        ),
    ),
    Table(
        "uomschedules",
        "uomschedule",
        primary_id="uomscheduleid",
        key=("name",),
        columns=(
            Column("uomscheduleid", G),
            Column("name", S, max_length=200, required=True),
            Column("baseuomname", S, max_length=100),
            Column("description", M, max_length=2000),
            *_SYSTEM,
        ),
    ),
    Table(
        "uoms",
        "uom",
        primary_id="uomid",
        key=("msdyn_symbol",),  # the dual-write product map binds units by symbol (defaultuomid.msdyn_symbol)
        columns=(
            Column("uomid", G),
            Column("name", S, max_length=100, required=True),
            Column("msdyn_symbol", S, max_length=10),
            _lookup("uomscheduleid", "uomschedules", "uomscheduleid", required=True),
            Column("quantity", D, minimum=0),
            *_SYSTEM,
        ),
    ),
    Table(
        "pricelevels",
        "pricelevel",
        primary_id="pricelevelid",
        key=("name",),
        columns=(
            Column("pricelevelid", G),
            Column("name", S, max_length=100, required=True),
            Column("description", M, max_length=2000),
            Column("begindate", DT),
            Column("enddate", DT),
            *_SYSTEM,
        ),
    ),
    Table(
        "products",
        "product",
        primary_id="productid",
        key=("productnumber",),  # products-template-mapping-direct.md: "The product number is used as a key"
        notifies=True,
        columns=(
            Column("productid", G),
            Column("productnumber", S, max_length=100, required=True),
            Column("name", S, max_length=100, required=True),
            Column("description", M, max_length=2000),
            Column("producttypecode", Kind.OPTIONSET, options=PRODUCT_TYPE_CODE),
            Column("msdyn_fieldserviceproducttype", Kind.OPTIONSET, options=FS_PRODUCT_TYPE),
            # "Is Externally Maintained" (products-template-mapping-direct.md); name: see module docstring
            Column("msdynce_isexternallymaintained", B),
            _lookup("defaultuomscheduleid", "uomschedules", "defaultuomscheduleid", required=True),
            _lookup("defaultuomid", "uoms", "defaultuomid", required=True),
            _lookup("pricelevelid", "pricelevels", "pricelevelid"),
            Column("price", D, minimum=0, maximum=100_000_000_000_000.0),
            Column("currentcost", D, minimum=0, maximum=100_000_000_000_000.0),
            Column("standardcost", D, minimum=0, maximum=100_000_000_000_000.0),
            Column("quantitydecimal", I, minimum=0, maximum=5),
            Column("msdyn_taxable", B),
            Column("msdyn_upccode", S, max_length=50),
            *_SYSTEM,
        ),
    ),
    Table(
        "msdyn_agreements",
        "msdyn_agreement",
        primary_id="msdyn_agreementid",
        key=("msdyn_name",),
        columns=(
            Column("msdyn_agreementid", G),
            Column("msdyn_name", S, max_length=100, required=True),
            _lookup("msdyn_serviceaccount", "accounts", "msdyn_ServiceAccount", required=True),
            _lookup("msdyn_billingaccount", "accounts", "msdyn_BillingAccount"),
            _lookup("msdyn_pricelist", "pricelevels", "msdyn_PriceList"),
            Column("msdyn_startdate", DT),
            Column("msdyn_enddate", DT),
            *_SYSTEM,
        ),
    ),
    Table(
        "msdyn_workorders",
        "msdyn_workorder",
        primary_id="msdyn_workorderid",
        key=(
            "msdyn_name",
        ),  # field-service-work-order.md: the integration key is msdyn_name (Work Order Number)
        notifies=True,
        columns=(
            Column("msdyn_workorderid", G),
            Column("msdyn_name", S, max_length=100),  # auto-numbered when left out (msdyn_autonumbering)
            _lookup("msdyn_serviceaccount", "accounts", "msdyn_ServiceAccount", required=True),
            _lookup("msdyn_billingaccount", "accounts", "msdyn_BillingAccount"),
            _lookup("msdyn_pricelist", "pricelevels", "msdyn_PriceList"),
            _lookup("msdyn_agreement", "msdyn_agreements", "msdyn_Agreement"),
            Column("msdyn_systemstatus", Kind.OPTIONSET, options=WO_SYSTEM_STATUS),
            Column("msdyn_workordersummary", M, max_length=8000),
            Column("msdyn_instructions", M, max_length=8000),
            Column("msdyn_address1", S, max_length=250),
            Column("msdyn_city", S, max_length=80),
            Column("msdyn_postalcode", S, max_length=20),
            Column("msdyn_taxable", B),
            Column("msdyn_subtotalamount", D, minimum=0, maximum=900_000_000_000_000.0),
            Column("msdyn_totalamount", D, minimum=0, maximum=900_000_000_000_000.0),
            Column("msdyn_timeclosed", Kind.DATETIME),
            Column("msdyn_totalestimatedduration", I, minimum=0, maximum=2**31 - 1),
            # Field Service CRM solution: "Has Externally Maintained Products Only" (maintained)
            Column("msdynce_hasexternallymaintainedproductsonly", B, read_only=True),
            *_SYSTEM,
        ),
    ),
    Table(
        "msdyn_workorderproducts",
        "msdyn_workorderproduct",
        primary_id="msdyn_workorderproductid",
        key=(),
        notifies=True,
        columns=(
            Column("msdyn_workorderproductid", G),
            _lookup("msdyn_product", "products", "msdyn_Product", required=True),
            Column("msdyn_allocated", B),
            Column("msdyn_quantity", D, minimum=0, maximum=1_000_000_000.0),
            Column("msdyn_estimatequantity", D, minimum=0, maximum=1_000_000_000.0),
            Column("msdyn_qtytobill", D, minimum=0, maximum=1_000_000_000.0),
            _lookup("msdyn_warehouse", "msdyn_warehouses", "msdyn_Warehouse"),
            *_line_common(),
            *_SYSTEM,
        ),
    ),
    Table(
        "msdyn_workorderservices",
        "msdyn_workorderservice",
        primary_id="msdyn_workorderserviceid",
        key=(),
        notifies=True,
        columns=(
            Column("msdyn_workorderserviceid", G),
            _lookup("msdyn_service", "products", "msdyn_Service", required=True),
            # minutes (msdyn_workorderservice.md: Integer 0..2147483647)
            Column("msdyn_duration", I, minimum=0, maximum=2**31 - 1),
            Column("msdyn_estimateduration", I, minimum=0, maximum=2**31 - 1),
            Column("msdyn_durationtobill", I, minimum=0, maximum=2**31 - 1),
            *_line_common(),
            # Field Service CRM solution: durations in hours, and the negative external line order
            Column("msdynce_durationinhours", D, read_only=True),
            Column("msdynce_estimatedurationinhours", D, read_only=True),
            Column("msdynce_externallineorder", I, read_only=True),
            *_SYSTEM,
        ),
    ),
    Table(
        "invoices",
        "invoice",
        primary_id="invoiceid",
        key=("invoicenumber",),
        notifies=True,
        columns=(
            Column("invoiceid", G),
            Column("invoicenumber", S, max_length=100),  # auto-numbered when left out
            Column("name", S, max_length=300, required=True),
            _lookup("customerid", "accounts", "customerid_account", required=True),
            _lookup("pricelevelid", "pricelevels", "pricelevelid"),
            Column("msdyn_invoicedate", DT),
            Column("description", M, max_length=2000),
            Column("totalamount", D),
            # Field Service CRM solution (field-service-invoice.md): "Has Lines With Agreement Origin"
            Column("msdynce_haslineswithagreementorigin", B, read_only=True),
            *_SYSTEM,
        ),
    ),
    Table(
        "invoicedetails",
        "invoicedetail",
        primary_id="invoicedetailid",
        key=(),
        notifies=True,
        columns=(
            Column("invoicedetailid", G),
            _lookup("invoiceid", "invoices", "invoiceid", required=True),
            _lookup("productid", "products", "productid"),
            Column("productdescription", S, max_length=500),
            Column("isproductoverridden", B),
            Column("ispriceoverridden", B),
            Column("quantity", D, required=True),
            Column("priceperunit", D),
            Column("baseamount", D),
            Column("extendedamount", D),
            Column("lineitemnumber", I, minimum=0, maximum=2**31 - 1),
            _lookup("uomid", "uoms", "uomid"),
            Column("description", M, max_length=2000),
            _lookup("msdyn_agreement", "msdyn_agreements", "msdyn_Agreement"),
            # Field Service CRM solution: "Has Agreement Origin" (true when the line comes from an agreement)
            Column("msdynce_hasagreementorigin", B, read_only=True),
            *_SYSTEM,
        ),
    ),
)
