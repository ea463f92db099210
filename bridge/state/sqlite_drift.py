"""The SQLite state store's drift checks and modified-on watermarks (issue 21, item 4).

A mixin of ``bridge.state.sqlite.SqliteState`` like ``sqlite_ops``: its tables are created with the
store's schema (``DRIFT_SCHEMA`` is appended to it), on the same connection and thread.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from bridge.state.drift_codec import drift_json, drift_of, utc
from bridge.state.driftport import DriftCheck
from bridge.storage.sqlite import SqliteDb

DRIFT_SCHEMA = """
-- each map's last drift check (dualwrite sync check), as JSON text
CREATE TABLE IF NOT EXISTS drift_checks (
    entity      TEXT PRIMARY KEY,
    finished_at TEXT NOT NULL,
    body        TEXT NOT NULL
);
-- per map and side: the system's modified time up to which every change was seen
CREATE TABLE IF NOT EXISTS watermarks (
    entity TEXT NOT NULL,
    side   TEXT NOT NULL,
    at     TEXT NOT NULL,                  -- UTC ISO 8601: text order is time order
    PRIMARY KEY (entity, side)
);
"""


def _ts(value: datetime) -> str:
    return utc(value).isoformat(timespec="microseconds")


class SqliteDriftTables:
    """Drift checks and watermarks on the store's ``SqliteDb``."""

    _db: SqliteDb

    async def put_drift_check(self, check: DriftCheck) -> None:
        sql = "INSERT OR REPLACE INTO drift_checks(entity, finished_at, body) VALUES (?, ?, ?)"
        values = (check.entity, _ts(check.finished_at), drift_json(check))
        await self._db.run(lambda c: c.execute(sql, values))

    async def drift_checks(self) -> list[DriftCheck]:
        rows = await self._db.run(
            lambda c: c.execute("SELECT body FROM drift_checks ORDER BY entity").fetchall()
        )
        return [drift_of(r[0]) for r in rows]

    async def drift_check(self, entity: str) -> DriftCheck | None:
        sql = "SELECT body FROM drift_checks WHERE entity = ?"
        row = await self._db.run(lambda c: c.execute(sql, (entity,)).fetchone())
        return None if row is None else drift_of(row[0])

    async def watermark(self, entity: str, side: str) -> datetime | None:
        sql = "SELECT at FROM watermarks WHERE entity = ? AND side = ?"
        row = await self._db.run(lambda c: c.execute(sql, (entity, side)).fetchone())
        return None if row is None else datetime.fromisoformat(row[0])

    async def put_watermark(self, entity: str, side: str, at: datetime) -> None:
        def put(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO watermarks(entity, side, at) VALUES (?, ?, ?) "
                "ON CONFLICT(entity, side) DO UPDATE SET at = excluded.at WHERE excluded.at > watermarks.at",
                (entity, side, _ts(at)),
            )

        await self._db.run(put)
