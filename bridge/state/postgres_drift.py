"""The PostgreSQL state store's drift checks and modified-on watermarks (as ``bridge.state.sqlite_drift``).

A mixin of ``bridge.state.postgres.PostgresState`` (``DriftPort``); its tables are the state's
migration step ``DRIFT_MIGRATION``. A watermark never moves back, also when two replicas move it at
once: the one statement's ``WHERE excluded.at > watermarks.at`` decides.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from bridge.state.drift_codec import drift_json, drift_of, utc
from bridge.state.driftport import DriftCheck
from bridge.storage.postgres import PgDatabase

_Conn = AsyncConnection[Any]

DRIFT_MIGRATION = """
-- each map's last drift check (dualwrite sync check), as JSON text
CREATE TABLE drift_checks (
    entity      text PRIMARY KEY,
    finished_at timestamptz NOT NULL,
    body        text NOT NULL
);
-- per map and side: the system's modified time up to which every change was seen
CREATE TABLE watermarks (
    entity text NOT NULL,
    side   text NOT NULL,
    at     timestamptz NOT NULL,
    PRIMARY KEY (entity, side)
);
"""


class PostgresDriftTables:
    """Drift checks and watermarks on the store's ``PgDatabase``."""

    _db: PgDatabase

    async def _fetch(self, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        async def q(conn: _Conn) -> list[tuple[Any, ...]]:
            cur = await conn.execute(query, args)
            return await cur.fetchall() if cur.description else []

        return await self._db.read(q)

    async def put_drift_check(self, check: DriftCheck) -> None:
        await self._fetch(
            "INSERT INTO drift_checks(entity, finished_at, body) VALUES (%s, %s, %s) "
            "ON CONFLICT (entity) DO UPDATE SET finished_at = excluded.finished_at, body = excluded.body",
            (check.entity, utc(check.finished_at), drift_json(check)),
        )

    async def drift_checks(self) -> list[DriftCheck]:
        return [drift_of(r[0]) for r in await self._fetch("SELECT body FROM drift_checks ORDER BY entity")]

    async def drift_check(self, entity: str) -> DriftCheck | None:
        rows = await self._fetch("SELECT body FROM drift_checks WHERE entity = %s", (entity,))
        return drift_of(rows[0][0]) if rows else None

    async def watermark(self, entity: str, side: str) -> datetime | None:
        rows = await self._fetch("SELECT at FROM watermarks WHERE entity = %s AND side = %s", (entity, side))
        return rows[0][0] if rows else None

    async def put_watermark(self, entity: str, side: str, at: datetime) -> None:
        await self._fetch(
            "INSERT INTO watermarks(entity, side, at) VALUES (%s, %s, %s) "
            "ON CONFLICT (entity, side) DO UPDATE SET at = excluded.at WHERE excluded.at > watermarks.at",
            (entity, side, utc(at)),
        )
