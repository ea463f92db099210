"""The emulated Dataverse Web API (``/api/data/v9.2/``): CRUD, upsert, queries, paging, WhoAmI, $batch.

What is emulated and what is not: docs/sandbox-api.md. Business rules: docs/sandbox-rules.md.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from bridge.sandbox.contracts import HookFailed, WriteHooks
from bridge.sandbox.dataverse import bulk, resources
from bridge.sandbox.dataverse.codec import DvCodec, etag
from bridge.sandbox.dataverse.errors import (
    CONCURRENCY,
    DUPLICATE,
    ODATA,
    PRIVILEGE,
    UNAUTHORIZED,
    UNEXPECTED,
    DvError,
    dataverse_error,
    not_found,
    payload_error,
)
from bridge.sandbox.dataverse.fieldservice import FieldServicePlugins
from bridge.sandbox.dataverse.host import Plugins
from bridge.sandbox.dataverse.reads import COUNT_EXCEEDED, TOTAL_COUNT, Annotations, ReadExtras
from bridge.sandbox.dataverse.rows import RowWriter
from bridge.sandbox.metadata.query import ENTITY_SET as METADATA_SET
from bridge.sandbox.metadata.query import EntityDefinitions
from bridge.sandbox.odata.expand import ExpandItem, context_fragment, parse_expand, split_top_level
from bridge.sandbox.odata.keys import Key, KeySyntaxError, parse_path
from bridge.sandbox.odata.ops import CallContext, OpRequest, OpResponse, Unit, WriteRecord
from bridge.sandbox.odata.query import QueryError, QueryOptions, page_size, parse_options
from bridge.sandbox.odata.service import ODataService, SeedError
from bridge.sandbox.schema import DATAVERSE_REGISTRATION_TABLES, DATAVERSE_TABLES
from bridge.sandbox.store import TableStore

ROOT = "/api/data/v9.2/"
MAX_PAGE = 5000
COUNT_LIMIT = 5000  # count-rows.md: "@odata.count ... up to 5,000"
# Query parameters that run another query language: refused, never silently ignored (which would
# answer with every row). query/overview.md names FetchXML and the (preview) sql= parameter.
NOT_EMULATED_QUERIES = ("fetchxml", "sql", "savedquery", "userquery")
_NS = uuid.NAMESPACE_URL
_COMPANY_ALIASES = ("msdyn_company", "_msdyn_company_value")

__all__ = ["DataverseService", "SeedError", "WriteRecord", "dataverse_error"]


def sandbox_id(*parts: str) -> str:
    """Deterministic ids for seeded rows, so dumps are comparable between runs."""
    return str(uuid.uuid5(_NS, "dualwrite-sandbox:" + ":".join(parts)))


class DataverseService(ODataService):
    system = "dataverse"
    rule_error = DvError
    max_page = MAX_PAGE

    def __init__(
        self,
        *,
        organization_id: str | None = None,
        organization_name: str = "sandbox",
        hooks: WriteHooks | None = None,
    ) -> None:
        self.organization_name = organization_name
        self.organization_id = organization_id or sandbox_id("organization", organization_name)
        self.business_unit_id = sandbox_id("businessunit", self.organization_id)
        tables = (*DATAVERSE_TABLES, *DATAVERSE_REGISTRATION_TABLES)
        super().__init__(tables, root=ROOT, http_error=_http_error, hooks=hooks)
        self.codecs = {t.entity_set: DvCodec(t) for t in tables}
        self.denied: set[tuple[str, str]] = set()  # (client_id, entity_set or "*"): writes get 403
        self.writer = RowWriter(self.store, self.rules)
        self.extras = ReadExtras(self.store, self.codecs, tables)
        self.entity_definitions = EntityDefinitions(tables)
        self.plugins: Plugins = FieldServicePlugins(
            self
        )  # Field Service's own plug-ins (defaults, derived columns)
        self.seed_defaults()

    # ------------------------------------------------------------------ public surface
    def seed_defaults(self) -> None:
        company = sandbox_id("cdm_company", "USMF")
        self.seed(
            "cdm_companies",
            [{"cdm_companyid": company, "cdm_companycode": "USMF", "cdm_name": "Contoso USA"}],
        )
        self.seed(
            "msdyn_operationalsites",
            [
                {
                    "msdyn_operationalsiteid": sandbox_id("msdyn_operationalsite", "USMF", str(n)),
                    "msdyn_siteid": str(n),
                    "msdyn_name": f"Site {n}",
                    "_msdyn_company_value": company,
                }
                for n in range(1, 7)
            ],
        )
        messages = {m: sandbox_id("sdkmessage", m) for m in ("Create", "Update", "Delete")}
        self.seed("sdkmessages", [{"sdkmessageid": i, "name": m} for m, i in messages.items()])
        self.seed(
            "sdkmessagefilters",
            [
                {
                    "sdkmessagefilterid": sandbox_id("sdkmessagefilter", m, t.logical_name),
                    "_sdkmessageid_value": i,
                    "primaryobjecttypecode": t.logical_name,
                }
                for m, i in messages.items()
                for t in DATAVERSE_TABLES
                if t.notifies
            ],
        )

    def _seed_row(self, ts: TableStore, raw: Any) -> dict[str, Any]:
        # Lookups may be given as ``_<col>_value`` or ``<nav>@odata.bind``.
        values, derived = self.plugins.prepare(ts, self._seed_values(ts, raw), None)
        row, version = self.writer.insert(ts, values, user_id=None, derived=derived)
        return self.codecs[ts.sql_name].render(row, version)

    def _seed_values(self, ts: TableStore, raw: Mapping[str, Any]) -> dict[str, Any]:
        lookups = {k: v for k, v in raw.items() if k in self.rules[ts.sql_name].columns and k.startswith("_")}
        rest = {k: v for k, v in raw.items() if k not in lookups}
        parsed = self.codecs[ts.sql_name].parse(rest, self._bind, {})
        return {**lookups, **parsed.values}

    def _record_where(self, ts: TableStore, record_id: str) -> dict[str, Any]:
        return {ts.pk[0]: record_id.lower()}

    def reset(self) -> None:
        self.writer = RowWriter(self.store, self.rules)  # the row version counter starts again
        super().reset()

    # ------------------------------------------------------------------ dispatch
    async def _dispatch(self, op: OpRequest, ctx: CallContext, unit: Unit | None) -> OpResponse:
        try:
            return await self._route(op, ctx, unit)
        except DvError as exc:
            return exc.response()
        except QueryError as exc:
            return DvError(400, ODATA, exc.message).response()

    async def _route(self, op: OpRequest, ctx: CallContext, unit: Unit | None) -> OpResponse:
        if op.path in ("WhoAmI", "WhoAmI()", "", "$metadata") or op.path.startswith(METADATA_SET):
            if op.method != "GET":
                raise DvError(405, ODATA, f"The resource '{op.path or '/'}' only supports GET.")
            return resources.serve(self, op, ctx)
        head, *rest = split_top_level(op.path, "/")
        try:
            path = parse_path(head)
        except KeySyntaxError as exc:
            raise DvError(400, ODATA, str(exc)) from exc
        if rest:
            return await self._segment(op, ctx, unit, path.entity_set, path.key is None, "/".join(rest))
        if path.entity_set not in self.store.tables:
            raise DvError(404, ODATA, f"Resource not found for the segment '{path.entity_set}'.")
        ts = self.store.table(path.entity_set)
        if op.method == "GET":
            return self._get_one(op, ctx, ts, path.key) if path.key else self._query(op, ctx, ts)
        if op.method not in ("POST", "PATCH", "DELETE"):
            raise DvError(405, ODATA, f"The HTTP method '{op.method}' is not allowed on this resource.")
        if (op.method == "POST") != (path.key is None):
            raise DvError(405, ODATA, f"The HTTP method '{op.method}' is not allowed on this resource.")
        self._check_privilege(ctx, ts, op.method)
        if unit is not None:
            return await self._write(op, ctx, unit, ts, path.key)
        key = path.key
        return await self.tx.atomic(lambda u: self._write(op, ctx, u, ts, key))

    def _check_privilege(self, ctx: CallContext, ts: TableStore, method: str) -> None:
        client = ctx.principal.client_id
        if (client, ts.sql_name) in self.denied or (client, "*") in self.denied:
            verb = {"POST": "Create", "PATCH": "Write", "DELETE": "Delete"}[method]
            raise DvError(
                403,
                PRIVILEGE,
                f"Principal user (Id={ctx.principal.user_id}, type=8, roleCount=1) is missing "
                f"prv{verb}{ts.table.logical_name} privilege.",
            )

    async def _segment(
        self, op: OpRequest, ctx: CallContext, unit: Unit | None, entity_set: str, collection: bool, tail: str
    ) -> OpResponse:
        """``<set>/$count`` and ``<set>/Microsoft.Dynamics.CRM.<bulk action>``; other paths are 404."""
        if entity_set not in self.store.tables:
            raise DvError(404, ODATA, f"Resource not found for the segment '{entity_set}'.")
        ts = self.store.table(entity_set)
        if collection and tail == "$count" and op.method == "GET":
            opts = self._options(op, ts)
            total = self.store.count(ts, where_sql=opts.filter_sql)
            # count-rows.md: "To get just a number ... append /$count" (text/plain), capped like $count.
            body = str(min(total, COUNT_LIMIT)).encode()
            return OpResponse(200, {"Content-Type": "text/plain", "OData-Version": "4.0"}, body)
        action = tail.removeprefix(f"{bulk.CRM}.")
        if collection and action in bulk.ACTIONS and tail != action and op.method == "POST":
            self._check_privilege(ctx, ts, "POST" if action == "CreateMultiple" else "PATCH")
            if unit is not None:
                return await bulk.run(self, action, op, ctx, unit, ts)
            return await self.tx.atomic(lambda u: bulk.run(self, action, op, ctx, u, ts))
        raise DvError(
            404 if op.method == "GET" else 405,
            ODATA,
            f"Resource not found for the segment '{tail}' (navigation paths and other actions are not "
            "emulated by the sandbox).",
        )

    # ------------------------------------------------------------------ reads (never take the write lock)
    def _find(
        self, ts: TableStore, key: Key, *, writer: bool
    ) -> tuple[dict[str, Any], dict[str, Any], int] | None:
        """(where, row, version) or None, where ``where`` holds the key's column values."""
        where = self._key_where(ts, key)
        found = self.store.get(ts, where, writer=writer)
        return None if found is None else (where, found[0], found[1])

    def _key_where(self, ts: TableStore, key: Key) -> dict[str, Any]:
        pid = ts.table.primary_id or ""
        if key.is_single:
            return {pid: self._guid(key.single, ts)}
        names = {("_msdyn_company_value" if n in _COMPANY_ALIASES else n): v for n, v in key.named}
        if set(names) == {pid}:
            return {pid: self._guid(names[pid], ts)}
        rules = self.rules[ts.sql_name]
        if set(names) != set(rules.key):
            raise DvError(
                400,
                ODATA,
                f"The key ({', '.join(n for n, _ in key.named)}) is not an alternate key defined for entity "
                f"'{ts.table.logical_name}'. Alternate key: ({', '.join(rules.key)}).",
            )
        return {
            n: (self._guid(v, ts) if n.startswith("_") else v) for n, v in ((k, names[k]) for k in rules.key)
        }

    def _guid(self, value: Any, ts: TableStore) -> str:
        try:
            return str(uuid.UUID(str(value)))
        except ValueError as exc:
            raise DvError(
                400,
                ODATA,
                f"Bad Request - Error in query syntax: '{value}' is not a valid Guid for "
                f"{ts.table.logical_name}.",
            ) from exc

    def _get_one(self, op: OpRequest, ctx: CallContext, ts: TableStore, key: Key) -> OpResponse:
        opts = self._options(op, ts)
        expand = self._expand(op, ts)
        found = self._find(ts, key, writer=False)
        if found is None:
            raise self._missing(ts, key)
        _, row, version = found
        if (op.header("if-none-match") or "") == etag(version):
            return OpResponse(304, {"ETag": etag(version)})
        ann = Annotations(ctx.prefer.get("odata.include-annotations"))
        fragment = context_fragment(opts.select, expand)
        body = {
            "@odata.context": f"{ctx.base_url}$metadata#{ts.sql_name}{fragment}/$entity",
            **self._render(ts, row, version, opts.select, expand, ann),
        }
        return OpResponse.json(200, body, {"ETag": etag(version), **ann.applied})

    def _options(self, op: OpRequest, ts: TableStore) -> QueryOptions:
        lowered = {k.lower() for k in op.query}
        for name in NOT_EMULATED_QUERIES:
            if name in lowered:
                raise DvError(
                    400,
                    ODATA,
                    f"The '{name}' query parameter is not emulated by the sandbox; use OData query options "
                    "($filter, $select, $orderby, $top, $count, $expand).",
                )
        try:
            return parse_options(op.query, ts.kinds, allow_skip=False, allowed=frozenset({"$expand"}))
        except QueryError as exc:
            if exc.prop:
                raise DvError(
                    400,
                    ODATA,
                    f"Could not find a property named '{exc.prop}' on type "
                    f"'Microsoft.Dynamics.CRM.{ts.table.logical_name}'.",
                ) from exc
            raise

    def _expand(self, op: OpRequest, ts: TableStore) -> tuple[ExpandItem, ...]:
        expand = parse_expand(op.query["$expand"]) if op.query.get("$expand") else ()
        self.extras.check_expand(ts.table, expand)
        return expand

    def _render(
        self,
        ts: TableStore,
        row: Mapping[str, Any],
        version: int,
        select: tuple[str, ...] | None,
        expand: tuple[ExpandItem, ...],
        ann: Annotations,
    ) -> dict[str, Any]:
        out = self.extras.annotate(ts.table, self.codecs[ts.sql_name].render(row, version, select), ann)
        self.extras.expand(ts.table, row, out, expand, ann)
        return out

    def _missing(self, ts: TableStore, key: Key) -> DvError:
        if key.is_single or (len(key.named) == 1 and key.named[0][0] == ts.table.primary_id):
            value = key.single if key.is_single else key.named[0][1]
            return not_found(ts.table.logical_name, str(value))
        return DvError(
            404,
            "0x80040217",
            f"A record with the specified key values does not exist in {ts.table.logical_name} entity",
        )

    def _query(self, op: OpRequest, ctx: CallContext, ts: TableStore) -> OpResponse:
        opts = self._options(op, ts)
        expand = self._expand(op, ts)
        if page_size(ctx.prefer, MAX_PAGE, MAX_PAGE)[1]:
            opts.top = None  # page-results.md: "If you include both, $top is ignored."
        ann = Annotations(ctx.prefer.get("odata.include-annotations"))
        fingerprint = "|".join(
            (ts.sql_name, opts.filter_text, opts.order_sql, str(opts.select), str(opts.top), str(expand))
        )

        def count_annotations(total: int | None) -> dict[str, Any]:
            # count-rows.md: the two annotations on request; -1 without $count=true.
            out: dict[str, Any] = {}
            if ann.wants(TOTAL_COUNT):
                out[f"@{TOTAL_COUNT}"] = -1 if total is None else min(total, COUNT_LIMIT)
            if ann.wants(COUNT_EXCEEDED):
                out[f"@{COUNT_EXCEEDED}"] = total is not None and total > COUNT_LIMIT
            return out

        return self._page(
            op,
            ctx,
            ts,
            opts,
            where_sql=opts.filter_sql,
            fingerprint=fingerprint,
            context=f"{ctx.base_url}$metadata#{ts.sql_name}{context_fragment(opts.select, expand)}",
            render=lambda r, v: self._render(ts, r, v, opts.select, expand, ann),
            count_cap=COUNT_LIMIT,
            count_annotations=count_annotations if ann.include else None,
            preferences=tuple(ann.applied.values()),
        )

    # ------------------------------------------------------------------ writes (inside a transaction)
    async def _write(
        self, op: OpRequest, ctx: CallContext, unit: Unit, ts: TableStore, key: Key | None
    ) -> OpResponse:
        if op.method == "DELETE":
            assert key is not None
            return await self._delete(op, ctx, unit, ts, key)
        try:
            body = json.loads(op.body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise payload_error(ts.table.logical_name, f"The request body is not valid JSON: {exc}") from exc
        parsed = self.codecs[ts.sql_name].parse(body, self._bind, ctx.content_ids)
        if key is None:
            values, derived = self.plugins.prepare(ts, parsed.values, None)
            row, version = self.writer.insert(ts, values, user_id=ctx.principal.user_id, derived=derived)
            await self._notify(unit, ctx, ts, "Create", None, row, {k: row[k] for k in parsed.given})
            await self.plugins.after_write(unit, ctx, ts, None, row)
            return self._written(op, ctx, ts, row, version, created=True)
        found = self._find(ts, key, writer=True)
        if_match, if_none = op.header("if-match"), op.header("if-none-match")
        if found is None:
            if if_match is not None:
                raise self._missing(ts, key)
            values, derived = self.plugins.prepare(ts, {**parsed.values, **self._key_where(ts, key)}, None)
            row, version = self.writer.insert(ts, values, user_id=ctx.principal.user_id, derived=derived)
            given = {k: row[k] for k in (*parsed.given, *self._key_where(ts, key))}
            await self._notify(unit, ctx, ts, "Create", None, row, given)
            await self.plugins.after_write(unit, ctx, ts, None, row)
            return self._written(op, ctx, ts, row, version, created=True)
        _, existing, old_version = found
        if if_none == "*":
            raise DvError(412, DUPLICATE, "A record with matching key values already exists.")
        if if_match not in (None, "*") and if_match != etag(old_version):
            raise DvError(
                412,
                CONCURRENCY,
                "The version of the existing record doesn't match the RowVersion property provided.",
            )
        values, derived = self.plugins.prepare(ts, parsed.values, existing)
        row, version = self.writer.update(
            ts, existing, values, user_id=ctx.principal.user_id, derived=derived
        )
        await self._notify(unit, ctx, ts, "Update", existing, row, {k: row[k] for k in parsed.given})
        await self.plugins.after_write(unit, ctx, ts, existing, row)
        return self._written(op, ctx, ts, row, version, created=False)

    def _bind(self, entity_set: str, key: Key) -> str:
        ts = self.store.table(entity_set)
        found = self._find(ts, key, writer=True)
        if found is None:
            if key.is_single:
                return self._guid(key.single, ts)  # existence is a rule (reported as the real 404)
            raise self._missing(ts, key)
        return str(found[1][ts.table.primary_id or ""])

    async def _delete(
        self, op: OpRequest, ctx: CallContext, unit: Unit, ts: TableStore, key: Key
    ) -> OpResponse:
        found = self._find(ts, key, writer=True)
        if found is None:
            raise self._missing(ts, key)
        _, existing, version = found
        if_match = op.header("if-match")
        if if_match not in (None, "*") and if_match != etag(version):
            raise DvError(
                412,
                CONCURRENCY,
                "The version of the existing record doesn't match the RowVersion property provided.",
            )
        pid = ts.table.primary_id or ""
        self.store.delete(ts, {pid: existing[pid]})
        await self._notify(unit, ctx, ts, "Delete", existing, None, {})
        await self.plugins.after_write(unit, ctx, ts, existing, None)
        return OpResponse(204, {"OData-Version": "4.0"})

    def _identity(self, ts: TableStore, row: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        pid = ts.table.primary_id or ""
        rid = str(row[pid])
        return rid, {pid: rid}

    def _image(self, ts: TableStore, row: dict[str, Any]) -> dict[str, Any]:
        return self.codecs[ts.sql_name].image(row)

    def _hook_error(self, exc: HookFailed) -> Exception:
        return DvError(exc.status, exc.code, exc.message)

    def _written(
        self,
        op: OpRequest,
        ctx: CallContext,
        ts: TableStore,
        row: dict[str, Any],
        version: int,
        *,
        created: bool,
    ) -> OpResponse:
        url = f"{ctx.base_url}{ts.sql_name}({row[ts.table.primary_id or '']})"
        headers = {"OData-Version": "4.0", "OData-EntityId": url, "ETag": etag(version)}
        if created:
            headers["Location"] = url
        if ctx.prefer.get("return") != "representation":
            return OpResponse(204, headers)
        opts = parse_options(op.query, ts.kinds, allow_skip=False)
        body = {
            "@odata.context": f"{ctx.base_url}$metadata#{ts.sql_name}{_sel(opts.select)}/$entity",
            **self.codecs[ts.sql_name].render(row, version, opts.select),
        }
        headers["Preference-Applied"] = "return=representation"
        return OpResponse.json(201 if created else 200, body, headers)


def _sel(select: tuple[str, ...] | None) -> str:
    return f"({','.join(select)})" if select else ""


def _http_error(status: int, message: str) -> OpResponse:
    code = {401: UNAUTHORIZED, 413: UNEXPECTED}.get(status, ODATA)
    return DvError(status, code, message).response()
