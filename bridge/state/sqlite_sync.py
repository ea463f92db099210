"""The SQLite state store's sync runs: runs, their checkpoints and per-record errors (issue 21).

A mixin of ``bridge.state.sqlite.SqliteState`` (``SyncStatePort``), like ``sqlite_ops``: the tables
are created with the store's own schema (``SYNC_SCHEMA`` is appended to it, ``CREATE ... IF NOT
EXISTS``, so an older file gains them at open). Times are UTC ISO 8601 text, payloads JSON text.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from bridge.core.ledger import LedgerEntry
from bridge.state.base import SyncCheckpoint, SyncRecordError, SyncRun, SyncRunStatus
from bridge.state.sqlite_schema import LEDGER_COLS, ledger_row
from bridge.storage.sqlite import SqliteDb, transaction

SYNC_SCHEMA = """
CREATE TABLE IF NOT EXISTS sync_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    maps        TEXT NOT NULL,             -- JSON list, in sync order
    master      TEXT NOT NULL,
    companies   TEXT NOT NULL,             -- JSON list; empty: every company
    dry_run     INTEGER NOT NULL,
    failed_only INTEGER NOT NULL,
    status      TEXT NOT NULL,
    message     TEXT,
    started_at  TEXT NOT NULL,
    finished_at TEXT
);
CREATE TABLE IF NOT EXISTS sync_checkpoints (
    run_id     INTEGER NOT NULL,
    entity     TEXT NOT NULL,
    company    TEXT NOT NULL,
    pass_no    INTEGER NOT NULL,
    after_key  TEXT,
    done       INTEGER NOT NULL,
    counts     TEXT NOT NULL,              -- JSON {side: {figure: n}}
    updated_at TEXT NOT NULL,
    PRIMARY KEY (run_id, entity, company, pass_no)
);
CREATE TABLE IF NOT EXISTS sync_errors (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id         INTEGER NOT NULL,
    entity         TEXT NOT NULL,
    company        TEXT NOT NULL,
    key            TEXT NOT NULL,
    target         TEXT NOT NULL,
    operation      TEXT NOT NULL,
    target_message TEXT,
    source_message TEXT,
    payload        TEXT NOT NULL,          -- JSON
    fields         TEXT NOT NULL,          -- JSON list
    status         INTEGER,
    code           TEXT,
    occurred_at    TEXT NOT NULL,
    resolved_at    TEXT
);
CREATE INDEX IF NOT EXISTS sync_errors_open ON sync_errors(entity, company, key) WHERE resolved_at IS NULL;
"""

_RUN_COLS = "id, maps, master, companies, dry_run, failed_only, status, message, started_at, finished_at"
_CHECKPOINT_COLS = "run_id, entity, company, pass_no, after_key, done, counts, updated_at"
_ERROR_COLS = (
    "id, run_id, entity, company, key, target, operation, target_message, source_message, payload, "
    "fields, status, code, occurred_at, resolved_at"
)


def _ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _run(row: tuple[Any, ...]) -> SyncRun:
    rid, maps, master, companies, dry, failed, status, message, started, finished = row
    return SyncRun(
        maps=tuple(json.loads(maps)),
        master=master,
        companies=tuple(json.loads(companies)),
        dry_run=bool(dry),
        failed_only=bool(failed),
        status=SyncRunStatus(status),
        message=message,
        started_at=_dt(started),
        finished_at=_dt(finished),
        id=rid,
    )


def _checkpoint(row: tuple[Any, ...]) -> SyncCheckpoint:
    run_id, entity, company, pass_no, after, done, counts, updated = row
    return SyncCheckpoint(
        run_id, entity, company, pass_no, after, bool(done), json.loads(counts), _dt(updated)
    )


def _error(row: tuple[Any, ...]) -> SyncRecordError:
    eid, run_id, entity, company, key, target, op, tmsg, smsg, payload, fields, status, code, at, res = row
    return SyncRecordError(
        run_id=run_id,
        entity=entity,
        company=company,
        key=key,
        target=target,
        operation=op,
        target_message=tmsg,
        source_message=smsg,
        payload=json.loads(payload),
        fields=tuple(json.loads(fields)),
        status=status,
        code=code,
        occurred_at=_dt(at),
        resolved_at=_dt(res),
        id=eid,
    )


def _error_where(
    entity: str | None, company: str | None, run_id: int | None, open_only: bool
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("entity", entity), ("company", company), ("run_id", run_id)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value.upper() if column == "company" and isinstance(value, str) else value)
    if open_only:
        clauses.append("resolved_at IS NULL")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class SqliteSyncTables:
    """Sync runs, checkpoints and errors on the store's ``SqliteDb``."""

    _db: SqliteDb

    async def start_sync_run(self, run: SyncRun) -> int:
        values = (
            json.dumps(list(run.maps)),
            run.master,
            json.dumps([c.upper() for c in run.companies]),
            int(run.dry_run),
            int(run.failed_only),
            run.status.value,
            run.message,
            _ts(run.started_at) or _now(),
            _ts(run.finished_at),
        )

        def insert(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO sync_runs(maps, master, companies, dry_run, failed_only, status, message,"
                " started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            return int(cur.lastrowid or 0)

        return await self._db.run(insert)

    async def finish_sync_run(
        self, run_id: int, *, status: SyncRunStatus, message: str | None, at: datetime
    ) -> None:
        await self._db.run(
            lambda c: c.execute(
                "UPDATE sync_runs SET status = ?, message = ?, finished_at = ? WHERE id = ?",
                (status.value, message, _ts(at), run_id),
            )
        )

    async def get_sync_run(self, run_id: int) -> SyncRun | None:
        row = await self._db.run(
            lambda c: c.execute(f"SELECT {_RUN_COLS} FROM sync_runs WHERE id = ?", (run_id,)).fetchone()
        )
        return None if row is None else _run(row)

    async def sync_runs(self, *, limit: int = 20) -> list[SyncRun]:
        rows = await self._db.run(
            lambda c: c.execute(
                f"SELECT {_RUN_COLS} FROM sync_runs ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        )
        return [_run(r) for r in rows]

    async def put_sync_checkpoints(self, checkpoints: Sequence[SyncCheckpoint]) -> None:
        stamp = _now()
        rows = [
            (
                c.run_id,
                c.entity,
                c.company.upper(),
                c.pass_no,
                c.after_key,
                int(c.done),
                json.dumps(c.counts),
                stamp,
            )
            for c in checkpoints
        ]

        def put(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany(
                    f"INSERT OR REPLACE INTO sync_checkpoints({_CHECKPOINT_COLS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )

        await self._db.run(put)

    async def sync_checkpoints(self, run_id: int) -> list[SyncCheckpoint]:
        rows = await self._db.run(
            lambda c: c.execute(
                f"SELECT {_CHECKPOINT_COLS} FROM sync_checkpoints WHERE run_id = ?"
                " ORDER BY entity, company, pass_no",
                (run_id,),
            ).fetchall()
        )
        return [_checkpoint(r) for r in rows]

    async def add_sync_errors(self, errors: Sequence[SyncRecordError]) -> None:
        if not errors:
            return
        stamp = _now()
        rows = [
            (
                e.run_id,
                e.entity,
                e.company.upper(),
                e.key,
                e.target,
                e.operation,
                e.target_message,
                e.source_message,
                json.dumps(e.payload, default=str),
                json.dumps(list(e.fields)),
                e.status,
                e.code,
                _ts(e.occurred_at) or stamp,
                _ts(e.resolved_at),
            )
            for e in errors
        ]
        records = sorted({(e.entity, e.company.upper(), e.key) for e in errors})

        def add(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany(
                    "UPDATE sync_errors SET resolved_at = ? WHERE entity = ? AND company = ? AND key = ?"
                    " AND resolved_at IS NULL",
                    [(stamp, *r) for r in records],
                )
                conn.executemany(
                    f"INSERT INTO sync_errors({_ERROR_COLS.removeprefix('id, ')})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )

        await self._db.run(add)

    async def sync_errors(
        self,
        *,
        entity: str | None = None,
        company: str | None = None,
        run_id: int | None = None,
        open_only: bool = False,
        offset: int = 0,
        limit: int = 100,
    ) -> list[SyncRecordError]:
        where, params = _error_where(entity, company, run_id, open_only)
        rows = await self._db.run(
            lambda c: c.execute(
                f"SELECT {_ERROR_COLS} FROM sync_errors{where} ORDER BY id DESC LIMIT ? OFFSET ?",
                (*params, limit, offset),
            ).fetchall()
        )
        return [_error(r) for r in rows]

    async def count_sync_errors(
        self,
        *,
        entity: str | None = None,
        company: str | None = None,
        run_id: int | None = None,
        open_only: bool = False,
    ) -> int:
        where, params = _error_where(entity, company, run_id, open_only)
        row = await self._db.run(
            lambda c: c.execute(f"SELECT COUNT(*) FROM sync_errors{where}", params).fetchone()
        )
        return int(row[0])

    async def resolve_sync_errors(
        self, entity: str, company: str, keys: Collection[str], *, at: datetime
    ) -> int:
        if not keys:
            return 0
        stamp, code = _ts(at), company.upper()

        def resolve(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                total = 0
                for key in keys:
                    cur = conn.execute(
                        "UPDATE sync_errors SET resolved_at = ? WHERE entity = ? AND company = ? AND key = ?"
                        " AND resolved_at IS NULL",
                        (stamp, entity, code, key),
                    )
                    total += cur.rowcount
                return total

        return await self._db.run(resolve)

    async def open_sync_error_keys(self, entity: str, company: str) -> list[str]:
        rows = await self._db.run(
            lambda c: c.execute(
                "SELECT DISTINCT key FROM sync_errors"
                " WHERE entity = ? AND company = ? AND resolved_at IS NULL",
                (entity, company.upper()),
            ).fetchall()
        )
        return sorted(str(r[0]) for r in rows)

    async def put_ledger_entries(self, entries: Sequence[LedgerEntry]) -> None:
        if not entries:
            return
        rows = [ledger_row(e) for e in entries]
        sql = f"INSERT OR REPLACE INTO ledger({LEDGER_COLS}) VALUES ({', '.join('?' * len(rows[0]))})"

        def put(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany(sql, rows)

        await self._db.run(put)
