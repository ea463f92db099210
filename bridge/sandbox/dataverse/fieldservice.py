"""What Field Service's own plug-ins do on the emulated Dataverse: defaults, the integration columns
the "Field Service CRM solution" maintains, and their propagation between a header and its lines.

From MicrosoftDocs/dynamics-365-unified-operations-public, ``articles/supply-chain/sales-marketing/``:

- ``field-service-work-order.md`` ("Field Service CRM solution"): the work order's *Has Externally
  Maintained Products Only* (true when every product on its lines is externally maintained); on each
  line *Header System Status* (the work order's system status) and *Order Has Externally Maintained
  Products Only*; on service lines *Duration In Hours* / *Estimated Duration In Hours* (minutes / 60)
  and *External Line Order* (Line Order times -1); "The value in Used fields is reset to 0 if the Line
  Status ... is changed from Used to Estimated".
- ``field-service-invoice.md``: the invoice's *Has Lines With Agreement Origin* (true when a line
  originates from an agreement) and the line's *Has Agreement Origin*; "If the Invoice Date column is
  blank ... it's set to the current date when an invoice line that originates from an agreement is
  added"; saving such an invoice with a blank invoice date is a business process error.

A derived change to another row (the header's flag, the lines' header status) is a real update of
that row inside the same transaction, notified like any other (``Depth`` 2), as plug-in writes are.
Defaults the emulator adds: work order number ``WO-00001``…, invoice number ``INV-00001``…, system
status Unscheduled, line status Estimated, billing account = service account, a line's name = its
product's name, a line's price list = its work order's.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bridge.sandbox.dataverse.errors import DvError
from bridge.sandbox.dataverse.host import DataverseHost
from bridge.sandbox.odata.ops import CallContext, Unit
from bridge.sandbox.schema.fs_dataverse import LINE_ESTIMATED, LINE_USED, WO_UNSCHEDULED
from bridge.sandbox.store import TableStore

BUSINESS_PROCESS_ERROR = "0x80040265"  # what a plug-in's InvalidPluginExecutionException answers
WORK_ORDERS, PRODUCT_LINES, SERVICE_LINES = (
    "msdyn_workorders",
    "msdyn_workorderproducts",
    "msdyn_workorderservices",
)
INVOICES, INVOICE_LINES = "invoices", "invoicedetails"
_LINE_PRODUCT = {PRODUCT_LINES: "_msdyn_product_value", SERVICE_LINES: "_msdyn_service_value"}
_USED_RESET = {PRODUCT_LINES: "msdyn_quantity", SERVICE_LINES: "msdyn_duration"}
_NUMBERS = {WORK_ORDERS: ("msdyn_name", "WO-"), INVOICES: ("invoicenumber", "INV-")}
WO_FLAG = "msdynce_hasexternallymaintainedproductsonly"
LINE_FLAG = "msdynce_orderhasexternalmaintainedproductsonly"
HEADER_STATUS = "msdynce_headersystemstatus"
INVOICE_FLAG, INVOICE_LINE_FLAG = "msdynce_haslineswithagreementorigin", "msdynce_hasagreementorigin"


def _today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


class FieldServicePlugins:
    """Called by the Dataverse engine around every write (inside the open transaction)."""

    def __init__(self, svc: DataverseHost) -> None:
        self.svc = svc

    # ------------------------------------------------------------------ before the write
    def prepare(
        self, ts: TableStore, values: Mapping[str, Any], existing: Mapping[str, Any] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(values with defaults added, derived read-only columns) for the row being written."""
        name = ts.sql_name
        out = dict(values)
        if name in _NUMBERS and existing is None and not out.get(_NUMBERS[name][0]):
            out[_NUMBERS[name][0]] = self._next_number(ts, *_NUMBERS[name])
        if name == WORK_ORDERS:
            # a work order without lines has only externally maintained products (none at all)
            return self._work_order(out, existing), ({WO_FLAG: True} if existing is None else {})
        if name in _LINE_PRODUCT:
            return self._line(ts, out, existing)
        if name == INVOICES:
            self._check_invoice_date(out, existing)
            return out, {}
        if name == INVOICE_LINES:
            return out, {INVOICE_LINE_FLAG: bool(_merged(out, existing).get("_msdyn_agreement_value"))}
        return out, {}

    def _work_order(self, out: dict[str, Any], existing: Mapping[str, Any] | None) -> dict[str, Any]:
        if existing is None:
            out.setdefault("msdyn_systemstatus", WO_UNSCHEDULED)
            if out.get("_msdyn_billingaccount_value") is None and out.get("_msdyn_serviceaccount_value"):
                out["_msdyn_billingaccount_value"] = out["_msdyn_serviceaccount_value"]
        return out

    def _line(
        self, ts: TableStore, out: dict[str, Any], existing: Mapping[str, Any] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        row = _merged(out, existing)
        header = self._row(WORK_ORDERS, row.get("_msdyn_workorder_value"))
        product = self._row("products", row.get(_LINE_PRODUCT[ts.sql_name]))
        if existing is None:
            out.setdefault("msdyn_linestatus", LINE_ESTIMATED)
            if not out.get("msdyn_name") and product is not None:
                out["msdyn_name"] = product.get("name")
            if out.get("_msdyn_pricelist_value") is None and header is not None:
                out["_msdyn_pricelist_value"] = header.get("_msdyn_pricelist_value")
        elif existing.get("msdyn_linestatus") == LINE_USED and out.get("msdyn_linestatus") == LINE_ESTIMATED:
            out[_USED_RESET[ts.sql_name]] = 0  # Used → Estimated resets the used value
        row = _merged(out, existing)
        derived: dict[str, Any] = {
            HEADER_STATUS: header.get("msdyn_systemstatus") if header else None,
            LINE_FLAG: bool(header.get(WO_FLAG)) if header else None,
        }
        if ts.sql_name == SERVICE_LINES:
            derived["msdynce_durationinhours"] = _hours(row.get("msdyn_duration"))
            derived["msdynce_estimatedurationinhours"] = _hours(row.get("msdyn_estimateduration"))
            order = row.get("msdyn_lineorder")
            derived["msdynce_externallineorder"] = -order if isinstance(order, int) else None
        return out, derived

    def _check_invoice_date(self, out: Mapping[str, Any], existing: Mapping[str, Any] | None) -> None:
        if existing is None or not existing.get(INVOICE_FLAG):
            return
        if "msdyn_invoicedate" in out and not out["msdyn_invoicedate"]:
            raise DvError(
                400,
                BUSINESS_PROCESS_ERROR,
                f"Invoice {existing.get('invoicenumber')} originates from an agreement: Invoice Date is "
                "required and cannot be blank.",
            )

    # ------------------------------------------------------------------ after the write
    async def after_write(
        self,
        unit: Unit,
        ctx: CallContext,
        ts: TableStore,
        pre: Mapping[str, Any] | None,
        post: Mapping[str, Any] | None,
    ) -> None:
        """Propagate a committed-to-be write to the rows that derive from it (notified, depth 2)."""
        name = ts.sql_name
        if name == WORK_ORDERS and pre is not None and post is not None:
            if pre.get("msdyn_systemstatus") != post.get("msdyn_systemstatus"):
                await self._to_lines(
                    unit, ctx, str(post["msdyn_workorderid"]), HEADER_STATUS, post.get("msdyn_systemstatus")
                )
        elif name in _LINE_PRODUCT:
            for header_id in {r.get("_msdyn_workorder_value") for r in (pre, post) if r is not None}:
                if header_id:
                    await self._refresh_work_order(unit, ctx, str(header_id))
        elif name == INVOICE_LINES:
            for invoice_id in {r.get("_invoiceid_value") for r in (pre, post) if r is not None}:
                if invoice_id:
                    await self._refresh_invoice(unit, ctx, str(invoice_id), added=post)

    async def _refresh_work_order(self, unit: Unit, ctx: CallContext, header_id: str) -> None:
        found = self.svc.store.get(
            self.svc.store.table(WORK_ORDERS), {"msdyn_workorderid": header_id}, writer=True
        )
        if found is None:
            return
        header = found[0]
        flag = all(
            bool(
                (self._row("products", line.get(_LINE_PRODUCT[table])) or {}).get(
                    "msdynce_isexternallymaintained"
                )
            )
            for table in _LINE_PRODUCT
            for line in self._lines(table, header_id)
        )
        if header.get(WO_FLAG) is not flag:
            await self._system_update(unit, ctx, WORK_ORDERS, header, {WO_FLAG: flag})
        await self._to_lines(unit, ctx, header_id, LINE_FLAG, flag)

    async def _refresh_invoice(
        self, unit: Unit, ctx: CallContext, invoice_id: str, *, added: Mapping[str, Any] | None
    ) -> None:
        found = self.svc.store.get(self.svc.store.table(INVOICES), {"invoiceid": invoice_id}, writer=True)
        if found is None:
            return
        invoice = found[0]
        lines = self.svc.store.select(
            self.svc.store.table(INVOICE_LINES),
            where_sql='"_invoiceid_value" = ?',
            params=[invoice_id],
            writer=True,
        )
        flag = any(line.get(INVOICE_LINE_FLAG) for line, _ in lines)
        derived: dict[str, Any] = {}
        if bool(invoice.get(INVOICE_FLAG)) is not flag:
            derived[INVOICE_FLAG] = flag
        if added is not None and added.get(INVOICE_LINE_FLAG) and not invoice.get("msdyn_invoicedate"):
            derived["msdyn_invoicedate"] = _today()
        if derived:
            await self._system_update(unit, ctx, INVOICES, invoice, derived)

    async def _to_lines(self, unit: Unit, ctx: CallContext, header_id: str, column: str, value: Any) -> None:
        for table in _LINE_PRODUCT:
            for line in self._lines(table, header_id):
                if line.get(column) != value:
                    await self._system_update(unit, ctx, table, line, {column: value})

    async def _system_update(
        self, unit: Unit, ctx: CallContext, entity_set: str, existing: dict[str, Any], derived: dict[str, Any]
    ) -> None:
        ts = self.svc.store.table(entity_set)
        row, _ = self.svc.writer.update(ts, existing, {}, user_id=ctx.principal.user_id, derived=derived)
        await self.svc._notify(unit, ctx, ts, "Update", existing, row, dict(derived), depth=2)

    # ------------------------------------------------------------------ reads inside the transaction
    def _row(self, entity_set: str, row_id: Any) -> dict[str, Any] | None:
        if not row_id:
            return None
        ts = self.svc.store.table(entity_set)
        found = self.svc.store.get(ts, {ts.table.primary_id or "": str(row_id)}, writer=True)
        return None if found is None else found[0]

    def _lines(self, entity_set: str, header_id: str) -> list[dict[str, Any]]:
        ts = self.svc.store.table(entity_set)
        rows = self.svc.store.select(
            ts, where_sql='"_msdyn_workorder_value" = ?', params=[header_id], writer=True
        )
        return [row for row, _ in rows]

    def _next_number(self, ts: TableStore, column: str, prefix: str) -> str:
        n = self.svc.store.count(ts) + 1
        while self.svc.store.exists(ts, {column: f"{prefix}{n:05d}"}):
            n += 1
        return f"{prefix}{n:05d}"


def _merged(values: Mapping[str, Any], existing: Mapping[str, Any] | None) -> dict[str, Any]:
    return {**(existing or {}), **values}


def _hours(minutes: Any) -> float | None:
    return round(minutes / 60, 4) if isinstance(minutes, int) else None
