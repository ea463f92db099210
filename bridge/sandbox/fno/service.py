"""The emulated Finance and Operations OData service (``/data/``): composite keys with ``dataAreaId``,
the caller's default company unless ``cross-company=true``, POST/PATCH/DELETE (no upsert), queries,
paging of at most 10,000 rows, ``$batch``. See docs/sandbox-api.md and docs/sandbox-rules.md."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from bridge.sandbox.contracts import HookFailed, WriteHooks
from bridge.sandbox.fno.errors import (
    NOT_FOUND_EXCEPTION,
    ODATA_EXCEPTION,
    FnoError,
    fno_error,
    violation_error,
)
from bridge.sandbox.fno.fieldservice import FieldServiceRules
from bridge.sandbox.metadata import fno_csdl
from bridge.sandbox.odata.expand import ExpandItem, parse_expand, split_top_level
from bridge.sandbox.odata.keys import Key, KeySyntaxError, format_key, parse_key, parse_path
from bridge.sandbox.odata.ops import CallContext, OpRequest, OpResponse, Unit, WriteRecord
from bridge.sandbox.odata.query import Dialect, QueryError, QueryOptions, parse_options
from bridge.sandbox.odata.service import ODataService, SeedError
from bridge.sandbox.rules import FNO_EMPTY_DATE, Rule, Violation
from bridge.sandbox.schema import FNO_TABLES, Kind
from bridge.sandbox.store import StoreError, TableStore

ROOT = "/data/"
MAX_PAGE = 10_000
AREA = "dataAreaId"
_DEFAULTS = {Kind.STRING: "", Kind.MEMO: "", Kind.INT: 0, Kind.DECIMAL: 0.0, Kind.DATE: FNO_EMPTY_DATE}

__all__ = ["FnoService", "SeedError", "WriteRecord", "fno_error"]


def etag(version: int) -> str:
    # Opaque like F&O's own (a base64 blob), but derived from our row version.
    return 'W/"' + base64.b64encode(f"1,{version}".encode()).decode() + '"'


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FnoService(ODataService):
    system = "fno"
    rule_error = FnoError
    max_page = MAX_PAGE

    def __init__(self, *, default_company: str = "usmf", hooks: WriteHooks | None = None) -> None:
        self.default_company = default_company.lower()
        super().__init__(FNO_TABLES, root=ROOT, http_error=_http_error, hooks=hooks)
        self.fs = FieldServiceRules(self)  # number sequences, computed fields, posting (fieldservice.py)
        self.seed_defaults()

    # ------------------------------------------------------------------ public surface
    def seed_defaults(self) -> None:
        self.seed("LegalEntities", [{"LegalEntityId": "USMF", "Name": "Contoso Entertainment System USA"}])
        sites = [{AREA: "usmf", "SiteId": str(n), "SiteName": f"Site {n}"} for n in range(1, 7)]
        self.seed("OperationalSites", sites)
        self.fs.reset()
        # The setup the Field Service templates require (field-service-work-order.md / -invoice.md).
        origin = {"OriginCode": "WorkOrder", "OriginDescription": "Field Service Work Order"}
        self.seed(
            "SalesOrderOriginCodes", [{AREA: "usmf", **origin, "SalesOriginType": "WorkOrderIntegration"}]
        )
        self.seed("MainAccounts", [{"ChartOfAccounts": "Shared", "MainAccountId": "401100", "Name": "Sales"}])

    def _seed_table(self, entity_set: str) -> TableStore:
        if entity_set not in self.store.tables:
            raise SeedError(f"Unknown entity set '{entity_set}'.")
        return self.store.table(entity_set)

    def _seed_row(self, ts: TableStore, raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise FnoError(400, "Each seeded row must be a JSON object.")
        row, version = self._insert(ts, raw)
        return self._render(ts, row, version)

    def _record_where(self, ts: TableStore, record_id: str) -> dict[str, Any]:
        """``record_id`` is the key segment, e.g. "dataAreaId='usmf',WarehouseId='11'"."""
        return self._key_where(ts, parse_key(record_id))

    def exists(self, entity_set: str, where: Mapping[str, Any]) -> bool:
        return self.store.exists(self.store.table(entity_set), where)

    # ------------------------------------------------------------------ dispatch
    async def _dispatch(self, op: OpRequest, ctx: CallContext, unit: Unit | None) -> OpResponse:
        try:
            return await self._route(op, ctx, unit)
        except FnoError as exc:
            return exc.response()
        except QueryError as exc:
            return FnoError(400, exc.message, ODATA_EXCEPTION).response()

    async def _route(self, op: OpRequest, ctx: CallContext, unit: Unit | None) -> OpResponse:
        if op.path in ("", "$metadata"):
            if op.method != "GET":
                raise FnoError(405, f"The resource '{op.path or '/'}' only supports GET.", ODATA_EXCEPTION)
            if op.path == "":
                return OpResponse.json(200, fno_csdl.service_document(self.tables.values(), ctx.base_url))
            body = fno_csdl.metadata_document(self.tables.values())
            return OpResponse(200, {"Content-Type": "application/xml", "OData-Version": "4.0"}, body)
        head, *rest = split_top_level(op.path, "/")
        try:
            path = parse_path(head)
        except KeySyntaxError as exc:
            raise FnoError(400, str(exc), ODATA_EXCEPTION) from exc
        if rest and path.key is not None and op.method == "POST" and self.fs.is_action(path.entity_set, rest):
            ts, action_key = self.store.table(path.entity_set), path.key
            cross = op.query.get("cross-company", "").lower() == "true"
            if unit is not None:
                return await self.fs.post(op, ctx, unit, ts, action_key, cross)
            return await self.tx.atomic(lambda u: self.fs.post(op, ctx, u, ts, action_key, cross))
        if rest and (rest != ["$count"] or path.key is not None or op.method != "GET"):
            raise FnoError(
                404,
                f"No HTTP resource was found that matches the request URI '{ctx.base_url}{op.path}' "
                "(navigation paths and actions are not emulated by the sandbox).",
                ODATA_EXCEPTION,
            )
        if path.entity_set not in self.store.tables:
            raise FnoError(
                404,
                f"No HTTP resource was found that matches the request URI '{ctx.base_url}{op.path}'.",
                ODATA_EXCEPTION,
            )
        ts = self.store.table(path.entity_set)
        cross = op.query.get("cross-company", "").lower() == "true"
        if rest:  # <set>/$count: the number alone, as text/plain (OData URL conventions 4.8)
            opts = self._options(op, ts)
            total = self.store.count(ts, where_sql=self._company_where(ts, opts, cross))
            return OpResponse(
                200, {"Content-Type": "text/plain", "OData-Version": "4.0"}, str(total).encode()
            )
        if op.method == "GET":
            return (
                self._get_one(op, ctx, ts, path.key, cross) if path.key else self._query(op, ctx, ts, cross)
            )
        allowed = "POST" if path.key is None else ("PATCH", "DELETE")
        if op.method not in allowed:
            raise FnoError(
                405, f"The HTTP method '{op.method}' is not allowed on this resource.", ODATA_EXCEPTION
            )
        key = path.key
        if unit is not None:
            return await self._write(op, ctx, unit, ts, key, cross)
        return await self.tx.atomic(lambda u: self._write(op, ctx, u, ts, key, cross))

    # ------------------------------------------------------------------ reads
    def _key_where(self, ts: TableStore, key: Key) -> dict[str, Any]:
        names = dict(key.named)
        if key.is_single and len(ts.key) == 1:
            names = {ts.key[0]: key.single}
        if set(names) != set(ts.key):
            raise FnoError(
                400,
                f"The key of '{ts.sql_name}' is ({', '.join(ts.key)}); the request gave "
                f"({', '.join(names) or 'a single value'}).",
                ODATA_EXCEPTION,
            )
        return {k: names[k] for k in ts.key}

    def _find(
        self, ts: TableStore, key: Key, cross: bool, *, writer: bool
    ) -> tuple[dict[str, Any], dict[str, Any], int] | None:
        where = self._key_where(ts, key)
        company = where.get(AREA)
        if company is not None and not cross and str(company).lower() != self.default_company:
            return None  # other companies are invisible without cross-company=true
        found = self.store.get(ts, where, writer=writer)
        return None if found is None else (where, found[0], found[1])

    def _not_found(self, ts: TableStore, key: Key) -> FnoError:
        return FnoError(
            404,
            f"Resource not found for the segment '{ts.sql_name}({format_key(dict(key.named))})'.",
            NOT_FOUND_EXCEPTION,
        )

    def _render(
        self,
        ts: TableStore,
        row: Mapping[str, Any],
        version: int,
        select: Any = None,
        expand: tuple[ExpandItem, ...] = (),
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"@odata.etag": etag(version)}
        for name in select or ts.columns:
            out[name] = row.get(name)
        for item in expand:
            out[item.nav] = self._related(ts, row, item)
        return out

    def _related(self, ts: TableStore, row: Mapping[str, Any], item: ExpandItem) -> dict[str, Any] | None:
        """The entity a reference field names, in the same company (odata.md: first level only)."""
        column = fno_csdl.navigations(ts.table)[item.nav]
        target = self.store.table(column.target or "")
        if not row.get(column.name):
            return None
        where = {column.target_key or "": row[column.name]}
        if target.table.company_column and ts.table.company_column:
            where[AREA] = row[AREA]
        found = self.store.get(target, where)
        return None if found is None else self._render(target, found[0], found[1], item.select)

    def _options(self, op: OpRequest, ts: TableStore) -> QueryOptions:
        return parse_options(op.query, ts.kinds, allowed=frozenset({"$expand"}), dialect=Dialect.FNO)

    def _expand(self, op: OpRequest, ts: TableStore) -> tuple[ExpandItem, ...]:
        items = parse_expand(op.query["$expand"]) if op.query.get("$expand") else ()
        navs = fno_csdl.navigations(ts.table)
        for item in items:
            if item.nav not in navs:
                raise FnoError(
                    400,
                    f"Could not find a navigation property named '{item.nav}' on type "
                    f"'Microsoft.Dynamics.DataEntities.{ts.table.logical_name}'.",
                    ODATA_EXCEPTION,
                )
            target = self.store.table(navs[item.nav].target or "")
            for name in item.select or ():
                if name not in target.kinds:
                    raise QueryError(f"Could not find a property named '{name}'.", prop=name)
        return items

    def _get_one(self, op: OpRequest, ctx: CallContext, ts: TableStore, key: Key, cross: bool) -> OpResponse:
        opts = self._options(op, ts)
        expand = self._expand(op, ts)
        found = self._find(ts, key, cross, writer=False)
        if found is None:
            raise self._not_found(ts, key)
        _, row, version = found
        body = {
            "@odata.context": f"{ctx.base_url}$metadata#{ts.sql_name}/$entity",
            **self._render(ts, row, version, opts.select, expand),
        }
        return OpResponse.json(200, body, {"ETag": etag(version)})

    def _company_where(self, ts: TableStore, opts: QueryOptions, cross: bool) -> str:
        """odata.md, cross-company behavior: "By default, OData returns only data that belongs to the
        user's default company" — a ``$filter`` on ``dataAreaId`` narrows that, it does not widen it
        (another company's rows need ``cross-company=true`` as well)."""
        where = opts.filter_sql
        if ts.table.company_column and not cross:
            company = self.default_company.replace("'", "''")
            where = f"\"{AREA}\" = '{company}'" + (f" AND ({where})" if where else "")
        return where

    def _query(self, op: OpRequest, ctx: CallContext, ts: TableStore, cross: bool) -> OpResponse:
        opts = self._options(op, ts)
        expand = self._expand(op, ts)
        where = self._company_where(ts, opts, cross)
        fingerprint = "|".join(
            (ts.sql_name, where, opts.order_sql, str(opts.select), str(opts.top), str(opts.skip), str(expand))
        )
        return self._page(
            op,
            ctx,
            ts,
            opts,
            where_sql=where,
            fingerprint=fingerprint,
            context=f"{ctx.base_url}$metadata#{ts.sql_name}",
            render=lambda r, v: self._render(ts, r, v, opts.select, expand),
        )

    # ------------------------------------------------------------------ writes
    async def _write(
        self, op: OpRequest, ctx: CallContext, unit: Unit, ts: TableStore, key: Key | None, cross: bool
    ) -> OpResponse:
        if op.method == "DELETE":
            assert key is not None
            return await self._delete(op, ctx, unit, ts, key, cross)
        try:
            body = json.loads(op.body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise FnoError(400, f"The request body is not valid JSON: {exc}", ODATA_EXCEPTION) from exc
        if not isinstance(body, dict):
            raise FnoError(400, "A JSON object was expected as the request body.", ODATA_EXCEPTION)
        values = {k: v for k, v in body.items() if "@" not in k}  # annotations (@odata.type …) carry no data
        if key is None:
            row, version = self._insert(ts, values)
            await self._notify(unit, ctx, ts, "Create", None, row, {k: row[k] for k in values})
            url = f"{ctx.base_url}{ts.sql_name}({quote(format_key({k: row[k] for k in ts.key}), safe=_SAFE)})"
            headers = {"Location": url, "OData-EntityId": url, "ETag": etag(version)}
            if ctx.prefer.get("return") == "minimal":
                return OpResponse(204, {"OData-Version": "4.0", **headers})
            body_out = {
                "@odata.context": f"{ctx.base_url}$metadata#{ts.sql_name}/$entity",
                **self._render(ts, row, version),
            }
            return OpResponse.json(201, body_out, headers)
        found = self._find(ts, key, cross, writer=True)
        if found is None:
            raise self._not_found(ts, key)  # F&O has no upsert: PATCH of a missing row is a 404
        _, existing, old_version = found
        if_match = op.header("if-match")
        if if_match not in (None, "*") and if_match != etag(old_version):
            raise FnoError(412, "The record has been updated by another user; the ETag does not match.")
        row, version = self._update(ts, existing, values)
        await self._notify(unit, ctx, ts, "Update", existing, row, {k: row[k] for k in values})
        return OpResponse(204, {"OData-Version": "4.0", "ETag": etag(version)})

    def _raise(self, ts: TableStore, violations: list[Violation]) -> None:
        if violations:
            raise violation_error(ts.table.logical_name, ts.sql_name, violations[0])

    def _insert(self, ts: TableStore, values: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
        rules = self.rules[ts.sql_name]
        if ts.table.company_column and values.get(AREA) is None:
            values = {**values, AREA: self.default_company}  # F&O writes into the caller's company
        values = self.fs.prepare_insert(ts, values)
        norm, violations = rules.check_write(values, None)
        self._raise(ts, violations)
        row: dict[str, Any] = {}
        for name, kind in ts.kinds.items():
            col = rules.columns[name]
            default = col.options[0] if kind is Kind.ENUM and col.options else _DEFAULTS.get(kind)
            row[name] = norm.get(name, default)
        if "ModifiedDateTime" in row:
            row["ModifiedDateTime"] = _now()
        if isinstance(row.get(AREA), str):
            row[AREA] = row[AREA].lower()  # F&O keeps company ids in lower case
        violations = rules.check_write(row, None, system=True)[1]  # required after defaults ("" is empty)
        self._raise(ts, violations + rules.check_unique(row, self) + rules.check_references(row, norm, self))
        self.fs.check_row(ts, row, None)
        try:
            self.store.insert(ts, row, 1)
        except StoreError as exc:
            self._raise(ts, [Violation(Rule.DUPLICATE, ",".join(ts.key), {k: row[k] for k in ts.key})])
            raise AssertionError("unreachable") from exc
        return row, 1

    def _update(
        self, ts: TableStore, existing: dict[str, Any], values: Mapping[str, Any]
    ) -> tuple[dict[str, Any], int]:
        rules = self.rules[ts.sql_name]
        norm, violations = rules.check_write(values, existing)
        for k in ts.key:  # key fields identify the row: they cannot change through PATCH
            if k in norm and str(norm[k]).lower() != str(existing[k]).lower():
                violations.append(Violation(Rule.IMMUTABLE, k, norm[k]))
        self._raise(ts, violations)
        found = self.store.get(ts, {k: existing[k] for k in ts.key}, writer=True)
        version = (found[1] if found else 0) + 1
        row = {**existing, **norm}
        if "ModifiedDateTime" in row:
            row["ModifiedDateTime"] = _now()
        self._raise(ts, rules.check_references(row, norm, self))
        self.fs.check_row(ts, row, existing)
        changes = {k: row[k] for k in ts.columns if k in norm or row[k] != existing[k]}
        self.store.update(ts, {k: existing[k] for k in ts.key}, changes, version)
        return row, version

    async def _delete(
        self, op: OpRequest, ctx: CallContext, unit: Unit, ts: TableStore, key: Key, cross: bool
    ) -> OpResponse:
        found = self._find(ts, key, cross, writer=True)
        if found is None:
            raise self._not_found(ts, key)
        _, existing, version = found
        if_match = op.header("if-match")
        if if_match not in (None, "*") and if_match != etag(version):
            raise FnoError(412, "The record has been updated by another user; the ETag does not match.")
        self.fs.check_delete(ts, existing)
        self.store.delete(ts, {k: existing[k] for k in ts.key})
        await self._notify(unit, ctx, ts, "Delete", existing, None, {})
        await self.fs.cascade_delete(unit, ctx, ts, existing)
        return OpResponse(204, {"OData-Version": "4.0"})

    def _identity(self, ts: TableStore, row: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        keys = {k: row[k] for k in ts.key}
        return format_key(keys), keys

    def _image(self, ts: TableStore, row: dict[str, Any]) -> dict[str, Any]:
        return dict(row)

    def _hook_error(self, exc: HookFailed) -> Exception:
        return FnoError(exc.status, exc.message)


_SAFE = "=',"


def _http_error(status: int, message: str) -> OpResponse:
    return FnoError(status, message, ODATA_EXCEPTION).response()
