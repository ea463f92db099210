"""The embedded state store: ledger, failures, map states and the undo journal in one SQLite file.

Same thread model and durability settings as the queue (bridge.storage.sqlite). Every write is a
single statement, so autocommit makes each one its own durable transaction. Timestamps are
stored as UTC ISO 8601 text with a fixed width (``2024-05-01T12:00:00.000000+00:00``), so they sort
as text and read as dates in the sqlite3 shell; naive datetimes are taken as UTC. Images, failure
details and journal entries are JSON text.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridge.core.ledger import LedgerEntry
from bridge.state.base import Failure, MapState, MapStatus
from bridge.state.sqlite_ops import OPS_SCHEMA, SqliteOpsTables
from bridge.storage.sqlite import SqliteDb, transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    record_key            TEXT PRIMARY KEY,
    entity                TEXT NOT NULL,
    company               TEXT NOT NULL,
    key                   TEXT NOT NULL,
    cds_id                TEXT,
    cds_image             TEXT NOT NULL,   -- JSON
    scm_image             TEXT NOT NULL,   -- JSON
    cds_written_at       TEXT,
    scm_written_at       TEXT,
    last_event_id         TEXT,
    last_source_timestamp TEXT,
    deleted               INTEGER NOT NULL DEFAULT 0,
    updated_at            TEXT NOT NULL,
    cds_etag              TEXT,
    scm_etag              TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ledger_cds_id ON ledger(cds_id) WHERE cds_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS failures (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    entity         TEXT NOT NULL,
    company        TEXT NOT NULL,
    key            TEXT NOT NULL,
    direction      TEXT NOT NULL,
    operation      TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    source_message TEXT,
    target_message TEXT,
    kind           TEXT NOT NULL,
    correlation_id TEXT,
    attempts       INTEGER NOT NULL,
    occurred_at    TEXT NOT NULL,
    compensated    INTEGER NOT NULL,
    details        TEXT NOT NULL          -- JSON
);
CREATE INDEX IF NOT EXISTS failures_time ON failures(occurred_at, id);
CREATE INDEX IF NOT EXISTS failures_entity_time ON failures(entity, occurred_at, id);
CREATE INDEX IF NOT EXISTS failures_correlation ON failures(correlation_id) WHERE correlation_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS map_states (
    entity     TEXT PRIMARY KEY,
    status     TEXT NOT NULL,
    reason     TEXT,
    changed_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS journal (
    event_id   TEXT PRIMARY KEY,
    entry      TEXT NOT NULL,             -- JSON
    created_at TEXT NOT NULL
) WITHOUT ROWID;
"""

_LEDGER_COLS = (
    "record_key, entity, company, key, cds_id, cds_image, scm_image, cds_written_at, scm_written_at, "
    "last_event_id, last_source_timestamp, deleted, updated_at, cds_etag, scm_etag"
)
_FAILURE_COLS = (
    "entity, company, key, direction, operation, event_id, source_message, target_message, kind, "
    "correlation_id, attempts, occurred_at, compensated, details"
)


def _ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _ledger(row: tuple[Any, ...]) -> LedgerEntry:
    (
        rk,
        entity,
        company,
        key,
        cds_id,
        cds_img,
        scm_img,
        cds_mod,
        scm_mod,
        last_id,
        last_ts,
        deleted,
        upd,
        ce,
        se,
    ) = row
    return LedgerEntry(
        record_key=rk,
        entity=entity,
        company=company,
        key=key,
        cds_id=cds_id,
        cds_image=json.loads(cds_img),
        scm_image=json.loads(scm_img),
        cds_written_at=_dt(cds_mod),
        scm_written_at=_dt(scm_mod),
        last_event_id=last_id,
        last_source_timestamp=_dt(last_ts),
        deleted=bool(deleted),
        updated_at=_dt(upd),
        cds_etag=ce,
        scm_etag=se,
    )


def _failure(row: tuple[Any, ...]) -> Failure:
    (
        fid,
        entity,
        company,
        key,
        direction,
        operation,
        event_id,
        src,
        tgt,
        kind,
        corr,
        attempts,
        at,
        comp,
        det,
    ) = row
    return Failure(
        id=fid,
        entity=entity,
        company=company,
        key=key,
        direction=direction,
        operation=operation,
        event_id=event_id,
        source_message=src,
        target_message=tgt,
        kind=kind,
        correlation_id=corr,
        attempts=attempts,
        occurred_at=_dt(at),
        compensated=bool(comp),
        details=json.loads(det),
    )


class SqliteState(SqliteOpsTables):
    """``StatePort`` on one SQLite file (WAL); alert rules and parked conflicts in ``sqlite_ops``."""

    def __init__(self, path: Path | str, *, synchronous: str = "NORMAL") -> None:
        self._db = SqliteDb(
            path, schema=SCHEMA + OPS_SCHEMA, synchronous=synchronous, cache_kib=8192, name="dualwrite-state"
        )

    @property
    def path(self) -> Path:
        return self._db.path

    async def open(self) -> None:
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()

    # ---- ledger --------------------------------------------------------------------------------

    async def get_ledger(self, record_key: str) -> LedgerEntry | None:
        row = await self._db.run(
            lambda c: c.execute(
                f"SELECT {_LEDGER_COLS} FROM ledger WHERE record_key = ?", (record_key,)
            ).fetchone()
        )
        return None if row is None else _ledger(row)

    async def put_ledger(self, entry: LedgerEntry, *, drop_journal_of: str | None = None) -> None:
        """Insert or replace the entry of ``entry.record_key``; ``updated_at`` defaults to now. With
        ``drop_journal_of``, that event's undo entry goes in the same transaction (one hop)."""
        values = (
            entry.record_key,
            entry.entity,
            entry.company,
            entry.key,
            entry.cds_id,
            json.dumps(entry.cds_image, separators=(",", ":")),
            json.dumps(entry.scm_image, separators=(",", ":")),
            _ts(entry.cds_written_at),
            _ts(entry.scm_written_at),
            entry.last_event_id,
            _ts(entry.last_source_timestamp),
            int(entry.deleted),
            _ts(entry.updated_at) or _now(),
            entry.cds_etag,
            entry.scm_etag,
        )
        sql = f"INSERT OR REPLACE INTO ledger({_LEDGER_COLS}) VALUES ({', '.join('?' * len(values))})"
        if drop_journal_of is None:
            await self._db.run(lambda c: c.execute(sql, values))
            return

        def put_and_drop(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(sql, values)
                conn.execute("DELETE FROM journal WHERE event_id = ?", (drop_journal_of,))

        await self._db.run(put_and_drop)

    async def find_ledger_by_cds_id(self, cds_id: str) -> LedgerEntry | None:
        row = await self._db.run(
            lambda c: c.execute(
                f"SELECT {_LEDGER_COLS} FROM ledger WHERE cds_id = ? LIMIT 1", (cds_id,)
            ).fetchone()
        )
        return None if row is None else _ledger(row)

    # ---- failures ------------------------------------------------------------------------------

    async def add_failure(self, failure: Failure) -> int:
        """Store ``failure`` (``occurred_at`` defaults to now); returns its id (increasing)."""
        values = (
            failure.entity,
            failure.company,
            failure.key,
            failure.direction,
            failure.operation,
            failure.event_id,
            failure.source_message,
            failure.target_message,
            failure.kind,
            failure.correlation_id,
            failure.attempts,
            _ts(failure.occurred_at) or _now(),
            int(failure.compensated),
            json.dumps(failure.details, separators=(",", ":"), default=str),
        )
        sql = f"INSERT INTO failures({_FAILURE_COLS}) VALUES ({', '.join('?' * len(values))})"
        rowid = await self._db.run(lambda c: c.execute(sql, values).lastrowid)
        assert rowid is not None
        return int(rowid)

    async def failures(
        self, *, entity: str | None = None, offset: int = 0, limit: int = 100
    ) -> list[Failure]:
        """Newest first (by ``occurred_at``, then id)."""
        where, args = ("", ()) if entity is None else ("WHERE entity = ?", (entity,))
        sql = (
            f"SELECT id, {_FAILURE_COLS} FROM failures {where} "
            "ORDER BY occurred_at DESC, id DESC LIMIT ? OFFSET ?"
        )
        rows = await self._db.run(lambda c: c.execute(sql, (*args, max(limit, 0), max(offset, 0))).fetchall())
        return [_failure(r) for r in rows]

    async def count_failures(
        self, *, entity: str | None = None, since: datetime | None = None, exclude_kinds: Collection[str] = ()
    ) -> int:
        """How many failures (of one map; that occurred at or after ``since``; not of these kinds)."""
        clauses: list[str] = []
        args: list[str] = []
        if exclude_kinds:
            clauses.append(f"kind NOT IN ({', '.join('?' * len(exclude_kinds))})")
            args.extend(exclude_kinds)
        if entity is not None:
            clauses.append("entity = ?")
            args.append(entity)
        if since is not None:
            clauses.append("occurred_at >= ?")
            args.append(_ts(since) or "")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT count(*) FROM failures {where}"
        return int(await self._db.run(lambda c: c.execute(sql, args).fetchone()[0]))

    async def find_failures(self, *, correlation_id: str) -> list[Failure]:
        """Failures recorded with this (e.g. Dataverse) correlation id, newest first."""
        sql = (
            f"SELECT id, {_FAILURE_COLS} FROM failures WHERE correlation_id = ? "
            "ORDER BY occurred_at DESC, id DESC"
        )
        rows = await self._db.run(lambda c: c.execute(sql, (correlation_id,)).fetchall())
        return [_failure(r) for r in rows]

    async def get_failure(self, failure_id: int) -> Failure | None:
        """One failure by its id, or None."""
        sql = f"SELECT id, {_FAILURE_COLS} FROM failures WHERE id = ?"
        row = await self._db.run(lambda c: c.execute(sql, (failure_id,)).fetchone())
        return None if row is None else _failure(row)

    # ---- map states ----------------------------------------------------------------------------

    async def get_map_state(self, entity: str) -> MapState:
        """The stored state, or RUNNING (no reason, no time) when never set."""
        row = await self._db.run(
            lambda c: c.execute(
                "SELECT status, reason, changed_at FROM map_states WHERE entity = ?", (entity,)
            ).fetchone()
        )
        if row is None:
            return MapState(entity=entity, status=MapStatus.RUNNING)
        return MapState(entity=entity, status=MapStatus(row[0]), reason=row[1], changed_at=_dt(row[2]))

    async def set_map_state(self, state: MapState) -> None:
        """Store ``state`` (``changed_at`` defaults to now)."""
        values = (state.entity, state.status.value, state.reason, _ts(state.changed_at) or _now())
        await self._db.run(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO map_states(entity, status, reason, changed_at) VALUES (?, ?, ?, ?)",
                values,
            )
        )

    # ---- undo journal --------------------------------------------------------------------------

    async def put_journal(self, event_id: str, entry: dict[str, Any]) -> bool:
        """Store the undo entry of ``event_id`` unless it has one (one statement: the check and the
        write are one hop to the database thread); True if stored. Durable before return."""
        text = json.dumps(entry, separators=(",", ":"))
        stored = await self._db.run(
            lambda c: (
                c.execute(
                    "INSERT INTO journal(event_id, entry, created_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(event_id) DO NOTHING",
                    (event_id, text, _now()),
                ).rowcount
            )
        )
        return bool(stored)

    async def get_journal(self, event_id: str) -> dict[str, Any] | None:
        row = await self._db.run(
            lambda c: c.execute("SELECT entry FROM journal WHERE event_id = ?", (event_id,)).fetchone()
        )
        if row is None:
            return None
        entry: dict[str, Any] = json.loads(row[0])
        return entry

    async def drop_journal(self, event_id: str) -> None:
        await self._db.run(lambda c: c.execute("DELETE FROM journal WHERE event_id = ?", (event_id,)))

    async def journal_ids(self) -> list[str]:
        """Event ids with an undo entry still open, oldest first (for recovery after a crash)."""

        def q(conn: sqlite3.Connection) -> list[str]:
            return [r[0] for r in conn.execute("SELECT event_id FROM journal ORDER BY created_at, event_id")]

        return await self._db.run(q)

    async def pragma(self, name: str) -> Any:
        """Read one PRAGMA on the store's own connection (tests, diagnostics)."""
        return await self._db.pragma(name)
