"""What both emulated OData services share: the public surface (hooks, write log, routes, seed, dump,
reset), server-driven paging of a query, and turning a committed write into a ``RecordChange``.

``DataverseService`` and ``FnoService`` subclass ``ODataService`` and supply only what differs
between the two systems: keys, rendering, rules and the error dialect.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from aiohttp import web

from bridge.sandbox.contracts import HookFailed, RecordChange, SystemName, WriteHooks
from bridge.sandbox.odata.http import ErrorFactory, ODataHttp
from bridge.sandbox.odata.ops import CallContext, OpRequest, OpResponse, Transactor, Unit, WriteRecord
from bridge.sandbox.odata.query import QueryOptions, decode_skiptoken, encode_skiptoken, page_size
from bridge.sandbox.rules import build_rules
from bridge.sandbox.schema import Table
from bridge.sandbox.store import Store, TableStore

Render = Callable[[Mapping[str, Any], int], dict[str, Any]]


class SeedError(ValueError):
    """A seeded row broke a rule; the message is the emulated system's own error text."""


class ODataService(ABC):
    system: ClassVar[SystemName]
    rule_error: ClassVar[type[Exception]]  # the dialect's error; its str() is the message
    max_page: ClassVar[int]

    def __init__(
        self, tables: Iterable[Table], *, root: str, http_error: ErrorFactory, hooks: WriteHooks | None
    ) -> None:
        tables = tuple(tables)
        self.tables: dict[str, Table] = {t.entity_set: t for t in tables}
        self.store = Store(tables)
        self.rules = build_rules(tables, self.system)
        self.tx = Transactor(self.store, hooks)
        self.http = ODataHttp(root, self._dispatch, http_error, self.tx.atomic)

    # ------------------------------------------------------------------ public surface
    @property
    def hooks(self) -> WriteHooks:
        return self.tx.hooks

    @hooks.setter
    def hooks(self, value: WriteHooks) -> None:
        self.tx.hooks = value

    @property
    def write_log(self) -> list[WriteRecord]:
        return self.tx.write_log

    def routes(self) -> list[web.AbstractRouteDef]:
        return self.http.routes()

    def add_routes(self, app: web.Application) -> None:
        app.add_routes(self.routes())

    def close(self) -> None:
        self.store.close()

    @abstractmethod
    def seed_defaults(self) -> None: ...

    def seed(self, entity_set: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Insert rows (the system's JSON form) after the same validation as the API, in one
        transaction, without hooks."""
        ts = self._seed_table(entity_set)
        if self.store.in_transaction:
            raise SeedError("A write transaction is open; seed again once it completes.")
        out: list[dict[str, Any]] = []
        self.store.begin()
        try:
            for raw in rows:
                out.append(self._seed_row(ts, raw))
        except self.rule_error as exc:
            self.store.rollback()
            raise SeedError(str(exc)) from exc
        except BaseException:
            self.store.rollback()
            raise
        self.store.commit()
        return out

    def rows(self, entity_set: str) -> list[dict[str, Any]]:
        """Committed rows as stored (including write-only columns: this is not the API)."""
        return [row for row, _ in self.store.select(self._table(entity_set))]

    def get(self, entity_set: str, record_id: str) -> dict[str, Any] | None:
        ts = self._table(entity_set)
        found = self.store.get(ts, self._record_where(ts, record_id))
        return found[0] if found else None

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        return self.store.dump()

    def reset(self) -> None:
        self.store.clear()
        self.write_log.clear()
        self.seed_defaults()

    # ------------------------------------------------------------------ what each system supplies
    @abstractmethod
    async def _dispatch(self, op: OpRequest, ctx: CallContext, unit: Unit | None) -> OpResponse: ...

    @abstractmethod
    def _seed_row(self, ts: TableStore, raw: Any) -> dict[str, Any]:
        """Insert one seeded row; return it rendered. Rule breaks raise ``rule_error``."""

    @abstractmethod
    def _record_where(self, ts: TableStore, record_id: str) -> dict[str, Any]:
        """The key columns' values for ``get``'s record id."""

    @abstractmethod
    def _identity(self, ts: TableStore, row: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """(record id, key values) of a written row, as notifications and the write log name it."""

    @abstractmethod
    def _image(self, ts: TableStore, row: dict[str, Any]) -> dict[str, Any]: ...

    @abstractmethod
    def _hook_error(self, exc: HookFailed) -> Exception:
        """A ``before_commit`` refusal in the dialect's error shape."""

    def _seed_table(self, entity_set: str) -> TableStore:
        return self._table(entity_set)

    def _table(self, entity_set: str) -> TableStore:
        if entity_set not in self.store.tables:
            raise KeyError(f"unknown entity set {entity_set!r}")
        return self.store.table(entity_set)

    # ------------------------------------------------------------------ shared behaviour
    def _page(
        self,
        op: OpRequest,
        ctx: CallContext,
        ts: TableStore,
        opts: QueryOptions,
        *,
        where_sql: str,
        fingerprint: str,
        context: str,
        render: Render,
        count_cap: int | None = None,
        count_annotations: Callable[[int | None], dict[str, Any]] | None = None,
        preferences: tuple[str, ...] = (),
    ) -> OpResponse:
        """One page of a query: at most ``max_page`` rows (or the caller's ``odata.maxpagesize``),
        ``$top`` honoured across pages, and a ``@odata.nextLink`` whose ``$skiptoken`` is bound to
        ``fingerprint`` so it cannot be replayed on another query."""
        size, applied = page_size(ctx.prefer, self.max_page, self.max_page)
        offset = decode_skiptoken(op.query["$skiptoken"], fingerprint) if "$skiptoken" in op.query else 0
        n = size if opts.top is None else max(0, min(size, opts.top - offset))
        rows = self.store.select(
            ts, where_sql=where_sql, order_sql=opts.order_sql, limit=n + 1, offset=opts.skip + offset
        )
        more = len(rows) > n and (opts.top is None or offset + n < opts.top)
        body: dict[str, Any] = {"@odata.context": context}
        total = self.store.count(ts, where_sql=where_sql) if opts.count else None
        if total is not None:
            body["@odata.count"] = total if count_cap is None else min(total, count_cap)
        if count_annotations is not None:
            body.update(count_annotations(total))
        body["value"] = [render(r, v) for r, v in rows[:n]]
        if more:
            query = {k: v for k, v in op.query.items() if k != "$skiptoken"}
            query["$skiptoken"] = encode_skiptoken(offset + n, fingerprint)
            body["@odata.nextLink"] = f"{ctx.base_url}{ts.sql_name}?{urlencode(query, quote_via=quote)}"
        applied_prefs = ((f"odata.maxpagesize={size}",) if applied else ()) + preferences
        headers = {"Preference-Applied": ", ".join(applied_prefs)} if applied_prefs else {}
        return OpResponse.json(200, body, headers)

    async def _notify(
        self,
        unit: Unit,
        ctx: CallContext,
        ts: TableStore,
        message: str,
        pre: dict[str, Any] | None,
        post: dict[str, Any] | None,
        changed: dict[str, Any],
        *,
        depth: int = 1,
    ) -> None:
        """Log the write; for a notifying table run ``before_commit`` (a refusal fails the write)
        and queue the change for ``after_commit``. ``depth`` 2: a write the system made because of
        the caller's (Field Service's own plug-ins, bridge/sandbox/dataverse/fieldservice.py)."""
        rid, keys = self._identity(ts, post or pre or {})
        now = datetime.now(UTC)
        unit.writes.append(WriteRecord(ts.sql_name, message, rid, ctx.principal.client_id, now))
        if not ts.table.notifies:
            return
        change = RecordChange(
            system=self.system,
            entity_set=ts.sql_name,
            logical_name=ts.table.logical_name,
            message=message,  # type: ignore[arg-type]
            record_id=rid,
            keys=keys,
            pre_image=self._image(ts, pre) if pre is not None else None,
            post_image=self._image(ts, post) if post is not None else None,
            changed=changed,
            principal=ctx.principal,
            correlation_id=ctx.correlation_id,
            request_id=str(uuid.uuid4()),
            occurred_at=now,
            depth=depth,
        )
        try:
            await self.tx.hooks.before_commit(change)
        except HookFailed as exc:
            raise self._hook_error(exc) from exc
        unit.changes.append(change)
