"""The shared state store: ledger, failures, map states, activity and the undo journal in PostgreSQL
tables (``[state] backend = "postgres"``), one schema every replica reads and writes.

The same semantics as the SQLite store (bridge/state/sqlite.py); alert rules and parked conflicts
are in ``bridge.state.postgres_ops``, sync runs in ``postgres_sync``, drift checks and watermarks in
``postgres_drift``, the first tables in ``bridge.state.postgres_schema``. A write is one
statement (autocommit) or one transaction; what several replicas may do at once is decided by one
statement each (``ON CONFLICT``, ``UPDATE ... WHERE state IN ...``), never by a read then a write.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

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
from bridge.state.postgres_drift import DRIFT_MIGRATION, PostgresDriftTables
from bridge.state.postgres_ops import PostgresOpsTables
from bridge.state.postgres_schema import (
    ACTIVITY_COLS,
    FAILURE_COLS,
    FAILURE_SELECT,
    LEDGER_COLS,
    LEDGER_UPSERT,
    activity_of,
    dumps,
    failure_of,
    ledger_of,
    ledger_row,
    now,
    utc,
)
from bridge.state.postgres_schema import MIGRATIONS as BASE_MIGRATIONS
from bridge.state.postgres_sync import SYNC_MIGRATION, PostgresSyncTables
from bridge.storage.pgconfig import DEFAULT_OPTIONS, PgOptions
from bridge.storage.postgres import PgDatabase

_Conn = AsyncConnection[Any]

# every step the state's schema has had, in order: only ever appended to
MIGRATIONS: tuple[str, ...] = (*BASE_MIGRATIONS, SYNC_MIGRATION, DRIFT_MIGRATION)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class PostgresState(PostgresOpsTables, PostgresSyncTables, PostgresDriftTables):
    """``StatePort`` (and ``SyncStatePort``, ``DriftPort``) on PostgreSQL tables in one schema, shared by
    every replica; alert rules and conflicts in ``postgres_ops``, sync runs in ``postgres_sync``, drift
    checks and watermarks in ``postgres_drift``."""

    def __init__(self, url: str, *, schema: str = "dualwrite", options: PgOptions = DEFAULT_OPTIONS) -> None:
        self._db = PgDatabase(url, schema=schema, component="state", migrations=MIGRATIONS, options=options)

    @property
    def db(self) -> PgDatabase:
        return self._db

    async def open(self) -> None:
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()

    async def ping(self) -> None:
        """One round trip to the database (``/readyz``)."""
        await self._db.ping()

    async def _one(self, query: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        async def q(conn: _Conn) -> tuple[Any, ...] | None:
            cur = await conn.execute(query, args)
            return await cur.fetchone()

        return await self._db.read(q)

    async def _all(self, query: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async def q(conn: _Conn) -> list[tuple[Any, ...]]:
            cur = await conn.execute(query, args)
            return await cur.fetchall()

        return await self._db.read(q)

    async def _write(self, query: str, args: Sequence[Any] = ()) -> int:
        """One statement in autocommit; its row count."""

        async def q(conn: _Conn) -> int:
            cur = await conn.execute(query, args)
            return int(cur.rowcount)

        return await self._db.read(q)

    # ---- ledger --------------------------------------------------------------------------------

    async def get_ledger(self, record_key: str) -> LedgerEntry | None:
        row = await self._one(f"SELECT {LEDGER_COLS} FROM ledger WHERE record_key = %s", (record_key,))
        return None if row is None else ledger_of(row)

    async def put_ledger(self, entry: LedgerEntry, *, drop_journal_of: str | None = None) -> None:
        """Insert or replace the entry of ``entry.record_key``; ``updated_at`` defaults to now. With
        ``drop_journal_of``, that event's undo entry goes in the same transaction."""
        values = ledger_row(entry)
        if drop_journal_of is None:
            await self._write(LEDGER_UPSERT, values)
            return

        async def put_and_drop(conn: _Conn) -> None:
            await conn.execute(LEDGER_UPSERT, values)
            await conn.execute("DELETE FROM journal WHERE event_id = %s", (drop_journal_of,))

        await self._db.run(put_and_drop)

    async def find_ledger_by_cds_id(self, cds_id: str) -> LedgerEntry | None:
        row = await self._one(f"SELECT {LEDGER_COLS} FROM ledger WHERE cds_id = %s LIMIT 1", (cds_id,))
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
            utc(failure.occurred_at) or now(),
            failure.compensated,
            dumps(failure.details),
        )

        async def add(conn: _Conn) -> int:
            await conn.execute(
                "UPDATE failures SET state = 'open', state_changed_at = %s, state_by = NULL, "
                "resolution = NULL WHERE entity = %s AND company = %s AND key = %s AND state = 'retrying'",
                (now(), failure.entity, failure.company, failure.key),
            )
            marks = ", ".join(["%s"] * len(values))
            cur = await conn.execute(
                f"INSERT INTO failures({FAILURE_COLS}) VALUES ({marks}) RETURNING id", values
            )
            row = await cur.fetchone()
            assert row is not None
            return int(row[0])

        return await self._db.run(add)

    @staticmethod
    def _where(
        *,
        entity: str | None = None,
        since: datetime | None = None,
        exclude_kinds: Collection[str] = (),
        states: Collection[FailureState] = (),
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        if exclude_kinds:
            clauses.append("kind <> ALL(%s::text[])")
            args.append(list(exclude_kinds))
        if states:
            clauses.append("state = ANY(%s::text[])")
            args.append([s.value for s in states])
        if entity is not None:
            clauses.append("entity = %s")
            args.append(entity)
        if since is not None:
            clauses.append("occurred_at >= %s")
            args.append(utc(since))
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
        sql = f"{FAILURE_SELECT} {where} ORDER BY occurred_at DESC, id DESC LIMIT %s OFFSET %s"
        return [failure_of(r) for r in await self._all(sql, (*args, max(limit, 0), max(offset, 0)))]

    async def count_failures(
        self,
        *,
        entity: str | None = None,
        since: datetime | None = None,
        exclude_kinds: Collection[str] = (),
        states: Collection[FailureState] = (),
    ) -> int:
        where, args = self._where(entity=entity, since=since, exclude_kinds=exclude_kinds, states=states)
        row = await self._one(f"SELECT count(*) FROM failures {where}", args)
        return 0 if row is None else int(row[0])

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
        rows = await self._all(
            "UPDATE failures SET state = %s, state_changed_at = %s, state_by = %s, resolution = %s "
            "WHERE (id = ANY(%s::bigint[]) OR event_id = ANY(%s::text[])) AND state = ANY(%s::text[]) "
            "RETURNING id",
            (
                state.value,
                now(),
                by,
                None if resolution is None else resolution.value,
                [int(i) for i in failure_ids],
                list(event_ids),
                [s.value for s in only],
            ),
        )
        return sorted(int(r[0]) for r in rows)

    async def resolve_record(
        self, entity: str, company: str, key: str, *, resolution: Resolution, by: str | None = None
    ) -> int:
        """The record's open and retrying failures become resolved (a retrying one keeps what it was
        retried by); how many."""
        return await self._write(
            "UPDATE failures SET state = 'resolved', state_changed_at = %s, "
            "resolution = CASE state WHEN 'retrying' THEN coalesce(resolution, %s) ELSE %s END, "
            "state_by = CASE state WHEN 'retrying' THEN state_by ELSE %s END "
            "WHERE entity = %s AND company = %s AND key = %s AND state IN ('open', 'retrying')",
            (now(), resolution.value, resolution.value, by, entity, company, key),
        )

    async def find_failures(self, *, correlation_id: str) -> list[Failure]:
        sql = f"{FAILURE_SELECT} WHERE correlation_id = %s ORDER BY occurred_at DESC, id DESC"
        return [failure_of(r) for r in await self._all(sql, (correlation_id,))]

    async def get_failure(self, failure_id: int) -> Failure | None:
        row = await self._one(f"{FAILURE_SELECT} WHERE id = %s", (failure_id,))
        return None if row is None else failure_of(row)

    # ---- activity ------------------------------------------------------------------------------

    async def add_activity(self, entries: Sequence[Activity], *, keep: int) -> None:
        """Store the entries and prune each touched (map, category) to its last ``keep``, in one
        transaction."""
        if not entries:
            return
        rows = [
            (
                e.entity,
                e.kind.category.value,
                e.kind.value,
                utc(e.at) or now(),
                e.message,
                e.actor,
                e.direction,
                e.key,
                e.latency_s,
                e.trace_id,
            )
            for e in entries
        ]
        touched = sorted({(r[0], r[1]) for r in rows})

        async def add(conn: _Conn) -> None:
            async with conn.cursor() as cur:
                await cur.executemany(
                    f"INSERT INTO activity({ACTIVITY_COLS}) VALUES ({', '.join(['%s'] * 10)})", rows
                )
            for entity, category in touched:
                await conn.execute(
                    "DELETE FROM activity WHERE entity = %s AND category = %s AND id <= ("
                    "SELECT id FROM activity WHERE entity = %s AND category = %s "
                    "ORDER BY id DESC LIMIT 1 OFFSET %s)",
                    (entity, category, entity, category, max(keep, 0)),
                )

        await self._db.run(add)

    @staticmethod
    def _activity_where(entity: str | None, category: ActivityCategory | None) -> tuple[str, list[str]]:
        clauses, args = [], []
        if entity is not None:
            clauses.append("entity = %s")
            args.append(entity)
        if category is not None:
            clauses.append("category = %s")
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
        sql = f"SELECT id, {ACTIVITY_COLS} FROM activity {where} ORDER BY id DESC LIMIT %s OFFSET %s"
        return [activity_of(r) for r in await self._all(sql, (*args, max(limit, 0), max(offset, 0)))]

    async def count_activity(
        self, *, entity: str | None = None, category: ActivityCategory | None = None
    ) -> int:
        where, args = self._activity_where(entity, category)
        row = await self._one(f"SELECT count(*) FROM activity {where}", args)
        return 0 if row is None else int(row[0])

    # ---- map states ----------------------------------------------------------------------------

    async def get_map_state(self, entity: str) -> MapState:
        """The stored state, or RUNNING (no reason, no time) when never set."""
        row = await self._one(
            "SELECT status, reason, changed_at FROM map_states WHERE entity = %s", (entity,)
        )
        if row is None:
            return MapState(entity=entity, status=MapStatus.RUNNING)
        return MapState(entity=entity, status=MapStatus(row[0]), reason=row[1], changed_at=row[2])

    async def set_map_state(self, state: MapState) -> None:
        """Store ``state`` (``changed_at`` defaults to now)."""
        await self._write(
            "INSERT INTO map_states(entity, status, reason, changed_at) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (entity) DO UPDATE SET status = excluded.status, reason = excluded.reason, "
            "changed_at = excluded.changed_at",
            (state.entity, state.status.value, state.reason, utc(state.changed_at) or now()),
        )

    # ---- undo journal --------------------------------------------------------------------------

    async def put_journal(self, event_id: str, entry: dict[str, Any]) -> bool:
        """Store the undo entry of ``event_id`` unless it has one (one statement: two replicas never
        both store one); True if stored. Durable before return."""
        stored = await self._write(
            "INSERT INTO journal(event_id, entry, created_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (event_id) DO NOTHING",
            (event_id, _compact(entry), now()),
        )
        return bool(stored)

    async def get_journal(self, event_id: str) -> dict[str, Any] | None:
        row = await self._one("SELECT entry FROM journal WHERE event_id = %s", (event_id,))
        if row is None:
            return None
        entry: dict[str, Any] = json.loads(row[0])
        return entry

    async def drop_journal(self, event_id: str) -> None:
        await self._write("DELETE FROM journal WHERE event_id = %s", (event_id,))

    async def journal_ids(self) -> list[str]:
        """Event ids with an undo entry still open, oldest first (for recovery after a crash)."""
        return [
            str(r[0]) for r in await self._all("SELECT event_id FROM journal ORDER BY created_at, event_id")
        ]
