"""The PostgreSQL state store's sync runs: runs, their checkpoints and per-record errors (as
``bridge.state.sqlite_sync``). A mixin of ``bridge.state.postgres.PostgresState``
(``SyncStatePort``); its tables are the state's migration step ``SYNC_MIGRATION``. Company codes are
kept upper-case, as the SQLite store keeps them.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from bridge.core.ledger import LedgerEntry
from bridge.state.base import SyncCheckpoint, SyncRecordError, SyncRun, SyncRunStatus
from bridge.state.postgres_schema import LEDGER_UPSERT, ledger_row, now, utc
from bridge.storage.postgres import PgDatabase

_Conn = AsyncConnection[Any]

SYNC_MIGRATION = """
CREATE TABLE sync_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    maps        text NOT NULL,               -- JSON list, in sync order
    master      text NOT NULL,
    companies   text NOT NULL,               -- JSON list; empty: every company
    dry_run     boolean NOT NULL,
    failed_only boolean NOT NULL,
    status      text NOT NULL,
    message     text,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz
);
CREATE TABLE sync_checkpoints (
    run_id     bigint NOT NULL,
    entity     text NOT NULL,
    company    text NOT NULL,
    pass_no    integer NOT NULL,
    after_key  text,
    done       boolean NOT NULL,
    counts     text NOT NULL,                -- JSON {side: {figure: n}}
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, entity, company, pass_no)
);
CREATE TABLE sync_errors (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id         bigint NOT NULL,
    entity         text NOT NULL,
    company        text NOT NULL,
    key            text NOT NULL,
    target         text NOT NULL,
    operation      text NOT NULL,
    target_message text,
    source_message text,
    payload        text NOT NULL,            -- JSON
    fields         text NOT NULL,            -- JSON list
    status         integer,
    code           text,
    occurred_at    timestamptz NOT NULL,
    resolved_at    timestamptz
);
CREATE INDEX sync_errors_open ON sync_errors (entity, company, key) WHERE resolved_at IS NULL;
"""

_RUN_COLS = "id, maps, master, companies, dry_run, failed_only, status, message, started_at, finished_at"
_CHECKPOINT_COLS = "run_id, entity, company, pass_no, after_key, done, counts, updated_at"
_ERROR_COLS = (
    "id, run_id, entity, company, key, target, operation, target_message, source_message, payload, "
    "fields, status, code, occurred_at, resolved_at"
)


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
        started_at=started,
        finished_at=finished,
        id=int(rid),
    )


def _checkpoint(row: tuple[Any, ...]) -> SyncCheckpoint:
    run_id, entity, company, pass_no, after, done, counts, updated = row
    return SyncCheckpoint(
        int(run_id), entity, company, pass_no, after, bool(done), json.loads(counts), updated
    )


def _error(row: tuple[Any, ...]) -> SyncRecordError:
    eid, run_id, entity, company, key, target, op, tmsg, smsg, payload, fields, status, code, at, res = row
    return SyncRecordError(
        run_id=int(run_id),
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
        occurred_at=at,
        resolved_at=res,
        id=int(eid),
    )


def _error_where(
    entity: str | None, company: str | None, run_id: int | None, open_only: bool
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("entity", entity), ("company", company), ("run_id", run_id)):
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value.upper() if column == "company" and isinstance(value, str) else value)
    if open_only:
        clauses.append("resolved_at IS NULL")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class PostgresSyncTables:
    """Sync runs, checkpoints and errors on the store's ``PgDatabase``."""

    _db: PgDatabase

    async def _rows(self, query: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        async def q(conn: _Conn) -> list[tuple[Any, ...]]:
            cur = await conn.execute(query, args)
            return await cur.fetchall()

        return await self._db.read(q)

    async def start_sync_run(self, run: SyncRun) -> int:
        values = (
            json.dumps(list(run.maps)),
            run.master,
            json.dumps([c.upper() for c in run.companies]),
            run.dry_run,
            run.failed_only,
            run.status.value,
            run.message,
            utc(run.started_at) or now(),
            utc(run.finished_at),
        )
        [(rid,)] = await self._rows(
            "INSERT INTO sync_runs(maps, master, companies, dry_run, failed_only, status, message, "
            "started_at, finished_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            values,
        )
        return int(rid)

    async def finish_sync_run(
        self, run_id: int, *, status: SyncRunStatus, message: str | None, at: datetime
    ) -> None:
        await self._rows(
            "UPDATE sync_runs SET status = %s, message = %s, finished_at = %s WHERE id = %s RETURNING id",
            (status.value, message, utc(at), run_id),
        )

    async def get_sync_run(self, run_id: int) -> SyncRun | None:
        rows = await self._rows(f"SELECT {_RUN_COLS} FROM sync_runs WHERE id = %s", (run_id,))
        return _run(rows[0]) if rows else None

    async def sync_runs(self, *, limit: int = 20) -> list[SyncRun]:
        rows = await self._rows(f"SELECT {_RUN_COLS} FROM sync_runs ORDER BY id DESC LIMIT %s", (limit,))
        return [_run(r) for r in rows]

    async def put_sync_checkpoints(self, checkpoints: Sequence[SyncCheckpoint]) -> None:
        if not checkpoints:
            return
        stamp = now()
        rows = [
            (
                c.run_id,
                c.entity,
                c.company.upper(),
                c.pass_no,
                c.after_key,
                c.done,
                json.dumps(c.counts),
                stamp,
            )
            for c in checkpoints
        ]

        async def put(conn: _Conn) -> None:
            async with conn.cursor() as cur:
                await cur.executemany(
                    f"INSERT INTO sync_checkpoints({_CHECKPOINT_COLS}) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (run_id, entity, company, pass_no) DO UPDATE SET "
                    "after_key = excluded.after_key, done = excluded.done, counts = excluded.counts, "
                    "updated_at = excluded.updated_at",
                    rows,
                )

        await self._db.run(put)

    async def sync_checkpoints(self, run_id: int) -> list[SyncCheckpoint]:
        rows = await self._rows(
            f"SELECT {_CHECKPOINT_COLS} FROM sync_checkpoints WHERE run_id = %s "
            "ORDER BY entity, company, pass_no",
            (run_id,),
        )
        return [_checkpoint(r) for r in rows]

    async def add_sync_errors(self, errors: Sequence[SyncRecordError]) -> None:
        if not errors:
            return
        stamp = now()
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
                utc(e.occurred_at) or stamp,
                utc(e.resolved_at),
            )
            for e in errors
        ]
        records = sorted({(e.entity, e.company.upper(), e.key) for e in errors})

        async def add(conn: _Conn) -> None:
            async with conn.cursor() as cur:
                await cur.executemany(
                    "UPDATE sync_errors SET resolved_at = %s WHERE entity = %s AND company = %s AND key = %s "
                    "AND resolved_at IS NULL",
                    [(stamp, *r) for r in records],
                )
                await cur.executemany(
                    f"INSERT INTO sync_errors({_ERROR_COLS.removeprefix('id, ')}) "
                    f"VALUES ({', '.join(['%s'] * 14)})",
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
        rows = await self._rows(
            f"SELECT {_ERROR_COLS} FROM sync_errors{where} ORDER BY id DESC LIMIT %s OFFSET %s",
            (*params, limit, offset),
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
        [(n,)] = await self._rows(f"SELECT count(*) FROM sync_errors{where}", params)
        return int(n)

    async def resolve_sync_errors(
        self, entity: str, company: str, keys: Collection[str], *, at: datetime
    ) -> int:
        if not keys:
            return 0
        rows = await self._rows(
            "UPDATE sync_errors SET resolved_at = %s WHERE entity = %s AND company = %s "
            "AND key = ANY(%s::text[]) AND resolved_at IS NULL RETURNING id",
            (utc(at), entity, company.upper(), list(keys)),
        )
        return len(rows)

    async def open_sync_error_keys(self, entity: str, company: str) -> list[str]:
        rows = await self._rows(
            "SELECT DISTINCT key FROM sync_errors WHERE entity = %s AND company = %s AND resolved_at IS NULL",
            (entity, company.upper()),
        )
        return sorted(str(r[0]) for r in rows)

    async def put_ledger_entries(self, entries: Sequence[LedgerEntry]) -> None:
        """``put_ledger`` of each entry in one transaction (a window's records): one commit."""
        if not entries:
            return
        rows = [ledger_row(e) for e in entries]

        async def put(conn: _Conn) -> None:
            async with conn.cursor() as cur:
                await cur.executemany(LEDGER_UPSERT, rows)

        await self._db.run(put)
