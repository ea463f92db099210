"""SQLite-backed row store for one emulated system, built from the ``schema`` package.

One SQLite table per schema ``Table`` with real columns (so ``$filter`` transpiles to SQL), lookups
stored as ``_<column>_value``, strings ``COLLATE NOCASE`` (both real systems compare and key text
case-insensitively). Rows go in and out in their Web API JSON form.

Two connections to one WAL database: the *writer* runs the (serialised) write transactions, the
*reader* serves queries. A reader never waits for an open write transaction and sees the last
committed state, which is what lets a synchronous webhook receiver read the store while the
operation that called it is still open.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.sandbox.schema import Column, Kind, Table

_TEXT_KINDS = {Kind.STRING, Kind.MEMO, Kind.GUID, Kind.LOOKUP, Kind.ENUM, Kind.DATE, Kind.DATETIME}
_SQL_TYPE = {Kind.INT: "INTEGER", Kind.OPTIONSET: "INTEGER", Kind.BOOL: "INTEGER", Kind.DECIMAL: "REAL"}
SEQ = "_seq"  # hidden insertion order (stable default order for paging)
ROW_VERSION = "_rv"  # hidden row version (F&O ETag; Dataverse mirrors versionnumber)


def storage_name(column: Column) -> str:
    """Name of a column in storage and on the wire when read (lookups read as ``_<col>_value``)."""
    return f"_{column.name}_value" if column.kind is Kind.LOOKUP else column.name


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class StoreError(Exception):
    """A storage-level constraint failed (a unique index, as a last line of defence)."""


@dataclass(frozen=True)
class TableStore:
    """A table's precomputed names and SQL, so no request does per-request schema work."""

    table: Table
    sql_name: str
    columns: tuple[str, ...]  # storage names, schema order
    kinds: Mapping[str, Kind]
    key: tuple[str, ...]  # storage names of the natural (alternate / composite) key
    pk: tuple[str, ...]  # Dataverse: (primary id,); F&O: the composite key
    insert_sql: str
    select_sql: str  # "SELECT cols FROM t"
    bools: tuple[str, ...]

    def to_wire(self, raw: sqlite3.Row | tuple[Any, ...]) -> dict[str, Any]:
        row = dict(zip(self.columns, raw, strict=False))
        for b in self.bools:
            if row[b] is not None:
                row[b] = bool(row[b])
        return row


def _build(table: Table) -> TableStore:
    cols = tuple(storage_name(c) for c in table.columns)
    kinds = {storage_name(c): c.kind for c in table.columns}
    by_name = {c.name: storage_name(c) for c in table.columns}
    key = tuple(by_name[k] for k in table.key)
    pk = (table.primary_id,) if table.primary_id else key
    sql_name = table.entity_set
    names = ", ".join(_q(c) for c in cols)
    insert = (
        f"INSERT INTO {_q(sql_name)} ({names}, {_q(ROW_VERSION)}) VALUES ({', '.join('?' for _ in cols)}, ?)"
    )
    return TableStore(
        table=table,
        sql_name=sql_name,
        columns=cols,
        kinds=kinds,
        key=key,
        pk=pk,
        insert_sql=insert,
        select_sql=f"SELECT {names}, {_q(ROW_VERSION)} FROM {_q(sql_name)}",
        bools=tuple(c for c, k in kinds.items() if k is Kind.BOOL),
    )


def _ddl(ts: TableStore) -> list[str]:
    defs = [f"{_q(SEQ)} INTEGER PRIMARY KEY AUTOINCREMENT", f"{_q(ROW_VERSION)} INTEGER NOT NULL DEFAULT 1"]
    for c in ts.columns:
        kind = ts.kinds[c]
        collate = " COLLATE NOCASE" if kind in (Kind.STRING, Kind.MEMO, Kind.GUID, Kind.LOOKUP) else ""
        defs.append(f"{_q(c)} {_SQL_TYPE.get(kind, 'TEXT')}{collate}")
    out = [f"CREATE TABLE {_q(ts.sql_name)} ({', '.join(defs)})"]
    if ts.key:  # line tables (invoicedetail, work order lines) have no alternate key
        key_cols = ", ".join(map(_q, ts.key))
        out.append(f"CREATE UNIQUE INDEX {_q('uk_' + ts.sql_name)} ON {_q(ts.sql_name)} ({key_cols})")
    if ts.pk != ts.key:
        pk_cols = ", ".join(map(_q, ts.pk))
        out.append(f"CREATE UNIQUE INDEX {_q('pk_' + ts.sql_name)} ON {_q(ts.sql_name)} ({pk_cols})")
    # References are looked up by the referenced column: index every lookup column.
    for c in ts.columns:
        if ts.kinds[c] is Kind.LOOKUP and c not in ts.key[:1]:
            out.append(f"CREATE INDEX {_q('ix_' + ts.sql_name + '_' + c)} ON {_q(ts.sql_name)} ({_q(c)})")
    return out


class Store:
    """Rows of one system. Not thread-safe: use it from one event loop."""

    def __init__(self, tables: Iterable[Table], path: str | Path | None = None) -> None:
        self.tables: dict[str, TableStore] = {t.entity_set: _build(t) for t in tables}
        if path is None:
            tmp = tempfile.mkdtemp(prefix="dualwrite-sandbox-")
            path = Path(tmp) / "store.sqlite3"
            self._cleanup = weakref.finalize(self, shutil.rmtree, tmp, True)
        self.path = str(path)
        self._w = self._connect()
        self._w.execute("PRAGMA journal_mode=WAL")
        for ts in self.tables.values():
            for stmt in _ddl(ts):
                self._w.execute(stmt)
        self._r = self._connect()
        self._r.execute("PRAGMA query_only=1")
        self.in_transaction = False

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, cached_statements=512)
        # An emulator's durability is the process lifetime: skip fsyncs, keep writes cheap.
        con.execute("PRAGMA synchronous=OFF")
        return con

    def close(self) -> None:
        self._r.close()
        self._w.close()
        cleanup = getattr(self, "_cleanup", None)
        if cleanup is not None:
            cleanup()

    def table(self, entity_set: str) -> TableStore:
        return self.tables[entity_set]

    # ------------------------------------------------------------------ transactions
    def begin(self) -> None:
        self._w.execute("BEGIN IMMEDIATE")
        self.in_transaction = True

    def commit(self) -> None:
        self._w.execute("COMMIT")
        self.in_transaction = False

    def rollback(self) -> None:
        if self._w.in_transaction:
            self._w.execute("ROLLBACK")
        self.in_transaction = False

    def _con(self, writer: bool) -> sqlite3.Connection:
        return self._w if writer else self._r

    # ------------------------------------------------------------------ writes (writer connection)
    def insert(self, ts: TableStore, row: Mapping[str, Any], version: int = 1) -> None:
        try:
            self._w.execute(ts.insert_sql, [row.get(c) for c in ts.columns] + [version])
        except sqlite3.IntegrityError as exc:
            raise StoreError(str(exc)) from exc

    def update(self, ts: TableStore, pk: Mapping[str, Any], values: Mapping[str, Any], version: int) -> int:
        sets = ", ".join(f"{_q(c)} = ?" for c in values)
        where = " AND ".join(f"{_q(c)} = ?" for c in pk)
        sql = f"UPDATE {_q(ts.sql_name)} SET {sets}{', ' if sets else ''}{_q(ROW_VERSION)} = ? WHERE {where}"
        try:
            cur = self._w.execute(sql, [*values.values(), version, *pk.values()])
        except sqlite3.IntegrityError as exc:
            raise StoreError(str(exc)) from exc
        return cur.rowcount

    def delete(self, ts: TableStore, pk: Mapping[str, Any]) -> int:
        where = " AND ".join(f"{_q(c)} = ?" for c in pk)
        return self._w.execute(f"DELETE FROM {_q(ts.sql_name)} WHERE {where}", list(pk.values())).rowcount

    # ------------------------------------------------------------------ reads
    def get(
        self, ts: TableStore, where: Mapping[str, Any], *, writer: bool = False
    ) -> tuple[dict[str, Any], int] | None:
        """The one row matching ``where`` (key columns) and its row version, or None."""
        clause = " AND ".join(f"{_q(c)} = ?" for c in where)
        raw = self._con(writer).execute(f"{ts.select_sql} WHERE {clause}", list(where.values())).fetchone()
        if raw is None:
            return None
        return ts.to_wire(raw), int(raw[-1])

    def exists(self, ts: TableStore, where: Mapping[str, Any], *, writer: bool = True) -> bool:
        clause = " AND ".join(f"{_q(c)} = ?" for c in where)
        sql = f"SELECT 1 FROM {_q(ts.sql_name)} WHERE {clause} LIMIT 1"
        return self._con(writer).execute(sql, list(where.values())).fetchone() is not None

    def select(
        self,
        ts: TableStore,
        *,
        where_sql: str = "",
        params: Iterable[Any] = (),
        order_sql: str = "",
        limit: int | None = None,
        offset: int = 0,
        writer: bool = False,
    ) -> list[tuple[dict[str, Any], int]]:
        sql = ts.select_sql
        if where_sql:
            sql += f" WHERE {where_sql}"
        sql += f" ORDER BY {order_sql + ', ' if order_sql else ''}{_q(SEQ)}"
        sql += f" LIMIT {int(limit) if limit is not None else -1} OFFSET {int(offset)}"
        rows = self._con(writer).execute(sql, list(params)).fetchall()
        return [(ts.to_wire(r), int(r[-1])) for r in rows]

    def count(self, ts: TableStore, *, where_sql: str = "", params: Iterable[Any] = ()) -> int:
        sql = f"SELECT COUNT(*) FROM {_q(ts.sql_name)}" + (f" WHERE {where_sql}" if where_sql else "")
        return int(self._r.execute(sql, list(params)).fetchone()[0])

    # ------------------------------------------------------------------ whole-store
    def dump(self) -> dict[str, list[dict[str, Any]]]:
        """Every table's committed rows, sorted by key then primary id: the same state dumps the same."""
        out: dict[str, list[dict[str, Any]]] = {}
        for name in sorted(self.tables):
            ts = self.tables[name]
            order = ", ".join(_q(c) for c in (*ts.key, *ts.pk))
            rows = self._r.execute(f"{ts.select_sql} ORDER BY {order}").fetchall()
            out[name] = [ts.to_wire(r) for r in rows]
        return out

    def clear(self) -> None:
        self.rollback()
        self._w.execute("BEGIN IMMEDIATE")
        for ts in self.tables.values():
            self._w.execute(f"DELETE FROM {_q(ts.sql_name)}")
        self._w.execute("COMMIT")
