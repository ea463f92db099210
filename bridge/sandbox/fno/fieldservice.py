"""Business rules of the Field Service entities on the emulated F&O (schema/fs_fno.py), beyond what the
schema states: computed fields, the sales order number sequence, blocked customers, posting.

Sources (MicrosoftDocs/dynamics-365-unified-operations-public, articles/supply-chain/sales-marketing/):

- ``field-service-product.md``: "the Field Service product type value on the Sellable released
  products data entity is calculated": Service for product type Service; Inventory for an item that
  is a stocked product; NonInventory for one that is not.
- ``field-service-work-order.md``: "Make sure that the number series that is used for work orders in
  Field Service doesn't overlap the number sequence that is used for sales orders in Supply Chain
  Management. Otherwise, existing sales orders can be incorrectly updated". The emulator's sales order
  number sequence is ``SO-######``: an order created without a number gets the next one, and a number
  given by the caller that has the sequence's format is refused, so an overlap shows at once instead
  of updating somebody else's order. The sales origin's type (Work order integration) is the origin
  code's, set by F&O; the lines carry their header's.
- ``field-service-invoice.md``: updates are possible while the free text invoice's accounting status
  is In process; once it is posted (Completed) they are refused. Posting is the entity action
  ``Microsoft.Dynamics.DataEntities.Post`` (``POST CDSFreeTextInvoiceHeaders(<key>)/Microsoft.Dynamics.
  DataEntities.Post``), as a person posts from the invoice page; it gives the invoice its
  ``FreeTextNumber`` (``FTI-######``) and sets ``IsPosted`` (No = In process, Yes = Completed).
- Customers on hold (``OnHoldStatus``, CustVendorBlocked): ``All`` blocks sales orders and invoices,
  ``Invoice`` blocks free text invoices.
- Deleting a sales order header or a free text invoice header deletes its lines (F&O's header tables
  cascade to their lines), each line deletion notified like any other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from bridge.sandbox.fno.errors import FnoError
from bridge.sandbox.odata.keys import Key
from bridge.sandbox.odata.ops import CallContext, OpRequest, OpResponse, Unit
from bridge.sandbox.store import Store, TableStore

AREA = "dataAreaId"
POST_ACTION = "Microsoft.Dynamics.DataEntities.Post"
PRODUCTS, CUSTOMERS, ORIGINS = "CDSReleasedDistinctProducts", "CustomersV3", "SalesOrderOriginCodes"
ORDERS, ORDER_LINES = "CDSSalesOrderHeaders", "CDSSalesOrderLinesV2"
INVOICES, INVOICE_LINES = "CDSFreeTextInvoiceHeaders", "CDSFreeTextInvoiceLines"


@dataclass
class NumberSequence:
    """A continuous number sequence: ``prefix`` + ``width`` digits."""

    code: str
    prefix: str
    width: int
    next: int = 1

    def owns(self, number: str) -> bool:
        return re.fullmatch(re.escape(self.prefix) + r"\d{" + str(self.width) + "}", number, re.I) is not None

    def take(self, taken: Any) -> str:
        while True:
            number = f"{self.prefix}{self.next:0{self.width}d}"
            self.next += 1
            if not taken(number):
                return number


class FnoHost(Protocol):
    store: Store
    default_company: str

    def _find(
        self, ts: TableStore, key: Key, cross: bool, *, writer: bool
    ) -> tuple[dict[str, Any], dict[str, Any], int] | None: ...

    def _not_found(self, ts: TableStore, key: Key) -> FnoError: ...

    async def _notify(
        self,
        unit: Unit,
        ctx: CallContext,
        ts: TableStore,
        message: str,
        pre: dict[str, Any] | None,
        post: dict[str, Any] | None,
        changed: dict[str, Any],
    ) -> None: ...


def _infolog(entity: str, text: str) -> FnoError:
    return FnoError(400, f"Write failed for table row of type '{entity}'. Infolog: Error: {text}")


class FieldServiceRules:
    def __init__(self, svc: FnoHost) -> None:
        self.svc = svc
        self.reset()

    def reset(self) -> None:
        self.sales_orders = NumberSequence("SalesOrder", "SO-", 6)
        self.free_text_invoices = NumberSequence("FreeTextInvoice", "FTI-", 6)

    # ------------------------------------------------------------------ writes
    def prepare_insert(self, ts: TableStore, values: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(values)
        if ts.sql_name != ORDERS:
            return out
        number = out.get("SalesOrderNumber")
        company = str(out.get(AREA) or self.svc.default_company).lower()
        if number in (None, ""):
            out["SalesOrderNumber"] = self.sales_orders.take(
                lambda n: self.svc.store.exists(ts, {AREA: company, "SalesOrderNumber": n})
            )
        elif isinstance(number, str) and self.sales_orders.owns(number):
            seq = self.sales_orders
            raise _infolog(
                ts.table.logical_name,
                f"Sales order number {number} belongs to the number sequence {seq.code} "
                f"({seq.prefix}{'#' * seq.width}). Numbers from another system must not overlap it: use "
                "a number outside the sequence.",
            )
        return out

    def check_row(self, ts: TableStore, row: dict[str, Any], existing: Mapping[str, Any] | None) -> None:
        """Set the computed fields of ``row`` and refuse what F&O refuses. Runs after the schema rules."""
        name, entity = ts.sql_name, ts.table.logical_name
        if name == PRODUCTS:
            if row.get("ProductType") == "Service":
                row["FieldServiceProductType"] = "Service"
            else:
                row["FieldServiceProductType"] = (
                    "Inventory" if row.get("IsStockedProduct") == "Yes" else "NonInventory"
                )
        elif name == ORDERS:
            origin = (
                self._get(ORIGINS, row, OriginCode=row.get("SalesOrderOriginCode"))
                if row.get("SalesOrderOriginCode")
                else None
            )
            row["SalesOrderOriginType"] = (origin or {}).get("SalesOriginType", "None")
            if existing is None:
                row["SalesOrderStatus"] = "Backorder"  # a new sales order is an open order
            self._check_customer(
                entity, row, ("OrderingCustomerAccountNumber", "InvoiceCustomerAccountNumber"), ("All",)
            )
        elif name == ORDER_LINES:
            header = self._get(ORDERS, row, SalesOrderNumber=row.get("SalesOrderNumber")) or {}
            row["SalesOrderOriginType"] = header.get("SalesOrderOriginType", "None")
            if existing is None:
                row["SalesOrderLineStatus"] = "Backorder"
                product = self._get(PRODUCTS, row, ProductNumber=row.get("ProductNumber")) or {}
                if not row.get("ProductName"):
                    row["ProductName"] = product.get("ProductName", "")
            self._check_customer(
                entity, header, ("OrderingCustomerAccountNumber", "InvoiceCustomerAccountNumber"), ("All",)
            )
        elif name == INVOICES:
            if existing is not None:
                self._check_not_posted(entity, existing)
            self._check_customer(entity, row, ("CustomerAccount", "InvoiceAccount"), ("All", "Invoice"))
        elif name == INVOICE_LINES:
            invoice = self._get(INVOICES, row, ExternalInvoiceId=row.get("ExternalInvoiceId"))
            if invoice is not None:
                self._check_not_posted(entity, invoice)

    def check_delete(self, ts: TableStore, existing: Mapping[str, Any]) -> None:
        if ts.sql_name == INVOICES:
            self._check_not_posted(ts.table.logical_name, existing)
        elif ts.sql_name == INVOICE_LINES:
            header = self._get(INVOICES, existing, ExternalInvoiceId=existing.get("ExternalInvoiceId"))
            if header is not None:
                self._check_not_posted(ts.table.logical_name, header)

    async def cascade_delete(
        self, unit: Unit, ctx: CallContext, ts: TableStore, header: Mapping[str, Any]
    ) -> None:
        """Deleting a sales order or a free text invoice deletes its lines, as F&O's header tables do;
        each line's deletion is a write of its own (with its data event)."""
        lines_set, key_field = {
            ORDERS: (ORDER_LINES, "SalesOrderNumber"),
            INVOICES: (INVOICE_LINES, "ExternalInvoiceId"),
        }.get(ts.sql_name, ("", ""))
        if not lines_set:
            return
        lines_ts = self.svc.store.table(lines_set)
        rows = self.svc.store.select(
            lines_ts,
            where_sql=f'"{AREA}" = ? AND "{key_field}" = ?',
            params=[header[AREA], header[key_field]],
            writer=True,
        )
        for line, _ in rows:
            self.svc.store.delete(lines_ts, {k: line[k] for k in lines_ts.key})
            await self.svc._notify(unit, ctx, lines_ts, "Delete", line, None, {})

    def _check_customer(
        self, entity: str, row: Mapping[str, Any], fields: tuple[str, ...], blocking: tuple[str, ...]
    ) -> None:
        for field in fields:
            account = row.get(field)
            if not account:
                continue
            customer = self._get(CUSTOMERS, row, CustomerAccount=account) or {}
            status = customer.get("OnHoldStatus", "No")
            if status in blocking:
                raise _infolog(
                    entity,
                    f"Customer {account} is on hold (On hold: {status}). The transaction is not allowed.",
                )

    def _check_not_posted(self, entity: str, invoice: Mapping[str, Any]) -> None:
        if invoice.get("IsPosted") == "Yes":
            raise _infolog(
                entity,
                f"Free text invoice {invoice.get('ExternalInvoiceId')} has been posted as "
                f"{invoice.get('FreeTextNumber')} (accounting status: Completed) and can no longer be "
                "changed.",
            )

    # ------------------------------------------------------------------ posting
    def is_action(self, entity_set: str, rest: list[str]) -> bool:
        return entity_set == INVOICES and rest == [POST_ACTION]

    async def post(
        self, op: OpRequest, ctx: CallContext, unit: Unit, ts: TableStore, key: Key, cross: bool
    ) -> OpResponse:
        entity = ts.table.logical_name
        found = self.svc._find(ts, key, cross, writer=True)
        if found is None:
            raise self.svc._not_found(ts, key)
        where, existing, version = found
        self._check_not_posted(entity, existing)
        lines_ts = self.svc.store.table(INVOICE_LINES)
        lines = self.svc.store.select(
            lines_ts,
            where_sql=f'"{AREA}" = ? AND "ExternalInvoiceId" = ?',
            params=[existing[AREA], existing["ExternalInvoiceId"]],
            writer=True,
        )
        if not lines:
            raise _infolog(entity, f"Free text invoice {existing['ExternalInvoiceId']} has no lines to post.")
        self._check_customer(entity, existing, ("CustomerAccount", "InvoiceAccount"), ("All", "Invoice"))
        number = existing.get("FreeTextNumber") or self.free_text_invoices.take(
            lambda n: self.svc.store.exists(ts, {AREA: existing[AREA], "FreeTextNumber": n})
        )
        changes = {
            "IsPosted": "Yes",
            "FreeTextNumber": number,
            "ModifiedDateTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        self.svc.store.update(ts, where, changes, version + 1)
        row = {**existing, **changes}
        await self.svc._notify(unit, ctx, ts, "Update", existing, row, changes)
        body = {"@odata.context": f"{ctx.base_url}$metadata#Edm.String", "value": number}
        return OpResponse.json(200, body)

    # ------------------------------------------------------------------ reads inside the transaction
    def _get(self, entity_set: str, row: Mapping[str, Any], **where: Any) -> dict[str, Any] | None:
        """The row of ``entity_set`` in ``row``'s company whose fields equal ``where``."""
        ts = self.svc.store.table(entity_set)
        found = self.svc.store.get(ts, {AREA: row.get(AREA), **where}, writer=True)
        return None if found is None else found[0]
