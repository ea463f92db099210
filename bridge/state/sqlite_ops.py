"""The SQLite state store's alert rules and parked conflicts (issue 20, items 6 and 7).

A mixin of ``bridge.state.sqlite.SqliteState``, kept apart so each module stays small: the tables
are created with the store's own schema (``OPS_SCHEMA`` is appended to it), on the same connection
and thread. Values as the rest of the store: UTC ISO 8601 text, JSON text for the versions.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from bridge.state.base import ConflictStatus, ParkedConflict, StoredAlertRule
from bridge.storage.sqlite import SqliteDb, transaction

OPS_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_rules (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    entity   TEXT NOT NULL,                -- a map name or '*'
    failures INTEGER NOT NULL,
    minutes  INTEGER NOT NULL,
    action   TEXT NOT NULL,
    url      TEXT
);
-- one row once the rule set was seeded from settings or changed through the API
CREATE TABLE IF NOT EXISTS alert_rules_seeded (
    one       INTEGER PRIMARY KEY CHECK (one = 1),
    seeded_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS conflicts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    record_key      TEXT NOT NULL,
    entity          TEXT NOT NULL,
    company         TEXT NOT NULL,
    key             TEXT NOT NULL,
    cds_values      TEXT NOT NULL,         -- JSON
    scm_values      TEXT NOT NULL,         -- JSON
    event_id        TEXT NOT NULL,
    cds_modified_at TEXT,
    scm_modified_at TEXT,
    detected_at     TEXT NOT NULL,
    status          TEXT NOT NULL,
    winner          TEXT,
    resolved_by     TEXT,
    resolved_at     TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS conflicts_open ON conflicts(record_key) WHERE status = 'open';
"""

_RULE_COLS = "id, entity, failures, minutes, action, url"
_INSERT_RULE = "INSERT INTO alert_rules(entity, failures, minutes, action, url) VALUES (?, ?, ?, ?, ?)"
_CONFLICT_COLS = (
    "id, entity, company, key, cds_values, scm_values, event_id, cds_modified_at, scm_modified_at, "
    "detected_at, status, winner, resolved_by, resolved_at"
)


def _ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _rule(row: tuple[Any, ...]) -> StoredAlertRule:
    rid, entity, failures, minutes, action, url = row
    return StoredAlertRule(entity=entity, failures=failures, minutes=minutes, action=action, url=url, id=rid)


def _conflict(row: tuple[Any, ...]) -> ParkedConflict:
    cid, entity, company, key, cds, scm, event_id, cds_at, scm_at, detected, status, winner, by, at = row
    return ParkedConflict(
        entity=entity,
        company=company,
        key=key,
        cds_values=json.loads(cds),
        scm_values=json.loads(scm),
        event_id=event_id,
        cds_modified_at=_dt(cds_at),
        scm_modified_at=_dt(scm_at),
        detected_at=_dt(detected),
        status=ConflictStatus(status),
        winner=winner,
        resolved_by=by,
        resolved_at=_dt(at),
        id=cid,
    )


def _mark_seeded(conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO alert_rules_seeded(one, seeded_at) VALUES (1, ?)",
        (_ts(datetime.now(UTC)),),
    )


class SqliteOpsTables:
    """Alert rules and parked conflicts on the store's ``SqliteDb``."""

    _db: SqliteDb

    # ---- alert rules ---------------------------------------------------------------------------

    async def alert_rules(self) -> list[StoredAlertRule] | None:
        def q(conn: sqlite3.Connection) -> list[StoredAlertRule] | None:
            if conn.execute("SELECT 1 FROM alert_rules_seeded").fetchone() is None:
                return None
            return [_rule(r) for r in conn.execute(f"SELECT {_RULE_COLS} FROM alert_rules ORDER BY id")]

        return await self._db.run(q)

    async def seed_alert_rules(self, rules: list[StoredAlertRule]) -> bool:
        def seed(conn: sqlite3.Connection) -> bool:
            with transaction(conn):
                if conn.execute("SELECT 1 FROM alert_rules_seeded").fetchone() is not None:
                    return False
                conn.executemany(
                    _INSERT_RULE,
                    [(r.entity, r.failures, r.minutes, r.action, r.url) for r in rules],
                )
                _mark_seeded(conn)
                return True

        return await self._db.run(seed)

    async def put_alert_rule(self, rule: StoredAlertRule) -> int | None:
        values = (rule.entity, rule.failures, rule.minutes, rule.action, rule.url)

        def put(conn: sqlite3.Connection) -> int | None:
            with transaction(conn):
                if rule.id is None:
                    cur = conn.execute(_INSERT_RULE, values)
                    rid = cur.lastrowid
                else:
                    cur = conn.execute(
                        "UPDATE alert_rules SET entity = ?, failures = ?, minutes = ?, action = ?, url = ? "
                        "WHERE id = ?",
                        (*values, rule.id),
                    )
                    rid = rule.id if cur.rowcount else None
                if rid is not None:
                    _mark_seeded(conn)
                return rid

        return await self._db.run(put)

    async def delete_alert_rule(self, rule_id: int) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            with transaction(conn):
                gone = conn.execute("DELETE FROM alert_rules WHERE id = ?", (rule_id,)).rowcount
                if gone:
                    _mark_seeded(conn)
                return bool(gone)

        return await self._db.run(delete)

    # ---- parked conflicts ----------------------------------------------------------------------

    async def park_conflict(self, conflict: ParkedConflict) -> int:
        values = (
            conflict.entity,
            conflict.company,
            conflict.key,
            json.dumps(conflict.cds_values, separators=(",", ":"), default=str),
            json.dumps(conflict.scm_values, separators=(",", ":"), default=str),
            conflict.event_id,
            _ts(conflict.cds_modified_at),
            _ts(conflict.scm_modified_at),
            _ts(conflict.detected_at) or _ts(datetime.now(UTC)),
        )
        record_key = conflict.record_key

        def park(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                row = conn.execute(
                    "SELECT id FROM conflicts WHERE record_key = ? AND status = 'open'", (record_key,)
                ).fetchone()
                if row is not None:
                    conn.execute(
                        "UPDATE conflicts SET entity = ?, company = ?, key = ?, cds_values = ?, "
                        "scm_values = ?, event_id = ?, cds_modified_at = ?, scm_modified_at = ?, "
                        "detected_at = ? WHERE id = ?",
                        (*values, row[0]),
                    )
                    return int(row[0])
                cur = conn.execute(
                    "INSERT INTO conflicts(record_key, entity, company, key, cds_values, scm_values, "
                    "event_id, cds_modified_at, scm_modified_at, detected_at, status) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open')",
                    (record_key, *values),
                )
                assert cur.lastrowid is not None
                return int(cur.lastrowid)

        return await self._db.run(park)

    async def conflicts(
        self, *, entity: str | None = None, status: ConflictStatus | None = None, limit: int = 100
    ) -> list[ParkedConflict]:
        clauses: list[str] = []
        args: list[Any] = []
        if entity is not None:
            clauses.append("entity = ?")
            args.append(entity)
        if status is not None:
            clauses.append("status = ?")
            args.append(status.value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT {_CONFLICT_COLS} FROM conflicts {where} ORDER BY id DESC LIMIT ?"
        rows = await self._db.run(lambda c: c.execute(sql, (*args, max(limit, 0))).fetchall())
        return [_conflict(r) for r in rows]

    async def get_conflict(self, conflict_id: int) -> ParkedConflict | None:
        sql = f"SELECT {_CONFLICT_COLS} FROM conflicts WHERE id = ?"
        row = await self._db.run(lambda c: c.execute(sql, (conflict_id,)).fetchone())
        return None if row is None else _conflict(row)

    async def open_conflict_of(self, record_key: str) -> ParkedConflict | None:
        sql = f"SELECT {_CONFLICT_COLS} FROM conflicts WHERE record_key = ? AND status = 'open'"
        row = await self._db.run(lambda c: c.execute(sql, (record_key,)).fetchone())
        return None if row is None else _conflict(row)

    async def close_conflict(self, conflict_id: int, *, winner: str, by: str, at: datetime) -> bool:
        sql = (
            "UPDATE conflicts SET status = 'resolved', winner = ?, resolved_by = ?, resolved_at = ? "
            "WHERE id = ? AND status = 'open'"
        )
        changed = await self._db.run(lambda c: c.execute(sql, (winner, by, _ts(at), conflict_id)).rowcount)
        return bool(changed)
