"""The embedded state store: ledger, failures, map states, activity and the undo journal in one
SQLite file.

Same thread model and durability settings as the queue (bridge.storage.sqlite). A write is a single
statement (autocommit makes it its own durable transaction) or one explicit transaction. The schema,
its migration and the row converters are in ``bridge.state.sqlite_schema``. Images, failure details
and journal entries are JSON text.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bridge.core.ledger import LedgerEntry
from bridge.state.base import (
    UNRESOLVED,
    Activity,
    ActivityCategory,
    Failure,
    FailureState,
    MapState,
    MapStatus,
    Resolution,
)
from bridge.state.sqlite_drift import DRIFT_SCHEMA, SqliteDriftTables
from bridge.state.sqlite_ops import OPS_SCHEMA, SqliteOpsTables
from bridge.state.sqlite_schema import (
    ACTIVITY_COLS,
    FAILURE_COLS,
    FAILURE_SELECT,
    LEDGER_COLS,
    SCHEMA,
    activity_of,
    dt,
    failure_of,
    ledger_of,
    ledger_row,
    migrate,
    now,
    ts,
)
from bridge.state.sqlite_sync import SYNC_SCHEMA, SqliteSyncTables
from bridge.storage.sqlite import SqliteDb, transaction


class SqliteState(SqliteOpsTables, SqliteSyncTables, SqliteDriftTables):
    """``StatePort`` on one SQLite file (WAL); alert rules and parked conflicts in ``sqlite_ops``,
    sync runs in ``sqlite_sync``, drift checks and watermarks in ``sqlite_drift``."""

    def __init__(self, path: Path | str, *, synchronous: str = "NORMAL") -> None:
        self._db = SqliteDb(
            path,
            schema=SCHEMA + OPS_SCHEMA + SYNC_SCHEMA + DRIFT_SCHEMA,
            synchronous=synchronous,
            cache_kib=8192,
            name="dualwrite-state",
            migrate=migrate,
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
                f"SELECT {LEDGER_COLS} FROM ledger WHERE record_key = ?", (record_key,)
            ).fetchone()
        )
        return None if row is None else ledger_of(row)

    async def put_ledger(self, entry: LedgerEntry, *, drop_journal_of: str | None = None) -> None:
        """Insert or replace the entry of ``entry.record_key``; ``updated_at`` defaults to now. With
        ``drop_journal_of``, that event's undo entry goes in the same transaction (one hop)."""
        values = ledger_row(entry)
        sql = f"INSERT OR REPLACE INTO ledger({LEDGER_COLS}) VALUES ({', '.join('?' * len(values))})"
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
                f"SELECT {LEDGER_COLS} FROM ledger WHERE cds_id = ? LIMIT 1", (cds_id,)
            ).fetchone()
        )
        return None if row is None else ledger_of(row)

    # ---- failures ------------------------------------------------------------------------------

    async def add_failure(self, failure: Failure) -> int:
        """Store ``failure`` (open; ``occurred_at`` defaults to now); returns its id (increasing). The
        record's retrying failures go back to open in the same transaction (their retry failed)."""
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
            ts(failure.occurred_at) or now(),
            int(failure.compensated),
            json.dumps(failure.details, separators=(",", ":"), default=str),
        )
        sql = f"INSERT INTO failures({FAILURE_COLS}) VALUES ({', '.join('?' * len(values))})"
        reopen = (
            "UPDATE failures SET state = 'open', state_changed_at = ?, state_by = NULL, resolution = NULL "
            "WHERE entity = ? AND company = ? AND key = ? AND state = 'retrying'"
        )
        record = (failure.entity, failure.company, failure.key)

        def add(conn: sqlite3.Connection) -> int | None:
            with transaction(conn):
                conn.execute(reopen, (now(), *record))
                return conn.execute(sql, values).lastrowid

        rowid = await self._db.run(add)
        assert rowid is not None
        return int(rowid)

    @staticmethod
    def _where(
        *,
        entity: str | None = None,
        since: datetime | None = None,
        exclude_kinds: Collection[str] = (),
        states: Collection[FailureState] = (),
    ) -> tuple[str, list[str]]:
        clauses: list[str] = []
        args: list[str] = []
        if exclude_kinds:
            clauses.append(f"kind NOT IN ({', '.join('?' * len(exclude_kinds))})")
            args.extend(exclude_kinds)
        if states:
            clauses.append(f"state IN ({', '.join('?' * len(states))})")
            args.extend(s.value for s in states)
        if entity is not None:
            clauses.append("entity = ?")
            args.append(entity)
        if since is not None:
            clauses.append("occurred_at >= ?")
            args.append(ts(since) or "")
        return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), args

    async def failures(
        self,
        *,
        entity: str | None = None,
        offset: int = 0,
        limit: int = 100,
        states: Collection[FailureState] = (),
    ) -> list[Failure]:
        """Newest first (by ``occurred_at``, then id); ``states`` empty = every state."""
        where, args = self._where(entity=entity, states=states)
        sql = f"{FAILURE_SELECT} {where} ORDER BY occurred_at DESC, id DESC LIMIT ? OFFSET ?"
        rows = await self._db.run(lambda c: c.execute(sql, (*args, max(limit, 0), max(offset, 0))).fetchall())
        return [failure_of(r) for r in rows]

    async def count_failures(
        self,
        *,
        entity: str | None = None,
        since: datetime | None = None,
        exclude_kinds: Collection[str] = (),
        states: Collection[FailureState] = (),
    ) -> int:
        """How many failures (of one map; at or after ``since``; not of these kinds; in these states)."""
        where, args = self._where(entity=entity, since=since, exclude_kinds=exclude_kinds, states=states)
        sql = f"SELECT count(*) FROM failures {where}"
        return int(await self._db.run(lambda c: c.execute(sql, args).fetchone()[0]))

    async def set_failure_state(
        self,
        failure_ids: Collection[int] = (),
        *,
        event_ids: Collection[str] = (),
        state: FailureState,
        by: str | None,
        resolution: Resolution | None = None,
        only: Collection[FailureState] = UNRESOLVED,
    ) -> list[int]:
        """Move the named failures that are in a state of ``only`` to ``state``; their ids."""
        if (not failure_ids and not event_ids) or not only:
            return []
        named: list[str] = []
        args: list[Any] = []
        if failure_ids:
            named.append(f"id IN ({', '.join('?' * len(failure_ids))})")
            args.extend(failure_ids)
        if event_ids:
            named.append(f"event_id IN ({', '.join('?' * len(event_ids))})")
            args.extend(event_ids)
        in_only = f"state IN ({', '.join('?' * len(only))})"
        args.extend(s.value for s in only)
        sql = (
            "UPDATE failures SET state = ?, state_changed_at = ?, state_by = ?, resolution = ? "
            f"WHERE ({' OR '.join(named)}) AND {in_only} RETURNING id"
        )
        stamp = (state.value, now(), by, None if resolution is None else resolution.value)

        def update(conn: sqlite3.Connection) -> list[int]:
            with transaction(conn):
                return sorted(int(r[0]) for r in conn.execute(sql, (*stamp, *args)).fetchall())

        return await self._db.run(update)

    async def resolve_record(
        self, entity: str, company: str, key: str, *, resolution: Resolution, by: str | None = None
    ) -> int:
        """The record's open and retrying failures become resolved (a retrying one keeps what it was
        retried by); how many. An index search on the unresolved failures of the record."""
        sql = (
            "UPDATE failures SET state = 'resolved', state_changed_at = ?, "
            "resolution = CASE state WHEN 'retrying' THEN coalesce(resolution, ?) ELSE ? END, "
            "state_by = CASE state WHEN 'retrying' THEN state_by ELSE ? END "
            "WHERE entity = ? AND company = ? AND key = ? AND state IN ('open', 'retrying')"
        )
        values = (now(), resolution.value, resolution.value, by, entity, company, key)
        return int(await self._db.run(lambda c: c.execute(sql, values).rowcount))

    async def find_failures(self, *, correlation_id: str) -> list[Failure]:
        """Failures recorded with this (e.g. Dataverse) correlation id, newest first."""
        sql = f"{FAILURE_SELECT} WHERE correlation_id = ? ORDER BY occurred_at DESC, id DESC"
        rows = await self._db.run(lambda c: c.execute(sql, (correlation_id,)).fetchall())
        return [failure_of(r) for r in rows]

    async def get_failure(self, failure_id: int) -> Failure | None:
        """One failure by its id, or None."""
        sql = f"{FAILURE_SELECT} WHERE id = ?"
        row = await self._db.run(lambda c: c.execute(sql, (failure_id,)).fetchone())
        return None if row is None else failure_of(row)

    # ---- activity ------------------------------------------------------------------------------

    async def add_activity(self, entries: Sequence[Activity], *, keep: int) -> None:
        """Store the entries and prune each touched (map, category) to its last ``keep``, in one
        transaction (the prune is an index search from the newest end)."""
        if not entries:
            return
        rows = [
            (
                e.entity,
                e.kind.category.value,
                e.kind.value,
                ts(e.at) or now(),
                e.message,
                e.actor,
                e.direction,
                e.key,
                e.latency_s,
                e.trace_id,
            )
            for e in entries
        ]
        insert = f"INSERT INTO activity({ACTIVITY_COLS}) VALUES ({', '.join('?' * 10)})"
        touched = sorted({(r[0], r[1]) for r in rows})
        prune = (
            "DELETE FROM activity WHERE entity = ? AND category = ? AND id <= ("
            "SELECT id FROM activity WHERE entity = ? AND category = ? ORDER BY id DESC LIMIT 1 OFFSET ?)"
        )

        def add(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany(insert, rows)
                for entity, category in touched:
                    conn.execute(prune, (entity, category, entity, category, max(keep, 0)))

        await self._db.run(add)

    @staticmethod
    def _activity_where(entity: str | None, category: ActivityCategory | None) -> tuple[str, list[str]]:
        clauses, args = [], []
        if entity is not None:
            clauses.append("entity = ?")
            args.append(entity)
        if category is not None:
            clauses.append("category = ?")
            args.append(category.value)
        return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), args

    async def activity(
        self,
        *,
        entity: str | None = None,
        category: ActivityCategory | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> list[Activity]:
        """Newest first (by id)."""
        where, args = self._activity_where(entity, category)
        sql = f"SELECT id, {ACTIVITY_COLS} FROM activity {where} ORDER BY id DESC LIMIT ? OFFSET ?"
        rows = await self._db.run(lambda c: c.execute(sql, (*args, max(limit, 0), max(offset, 0))).fetchall())
        return [activity_of(r) for r in rows]

    async def count_activity(
        self, *, entity: str | None = None, category: ActivityCategory | None = None
    ) -> int:
        where, args = self._activity_where(entity, category)
        sql = f"SELECT count(*) FROM activity {where}"
        return int(await self._db.run(lambda c: c.execute(sql, args).fetchone()[0]))

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
        return MapState(entity=entity, status=MapStatus(row[0]), reason=row[1], changed_at=dt(row[2]))

    async def set_map_state(self, state: MapState) -> None:
        """Store ``state`` (``changed_at`` defaults to now)."""
        values = (state.entity, state.status.value, state.reason, ts(state.changed_at) or now())
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
                    (event_id, text, now()),
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
