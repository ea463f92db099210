"""The PostgreSQL state store's alert rules and parked conflicts (as ``bridge.state.sqlite_ops``).

A mixin of ``bridge.state.postgres.PostgresState`` on the same pool. Seeding the rule set and parking
a record's conflict are decided under a lock (the seeded row, the open conflict's unique index), so
two replicas doing either at once leave one rule set and one open conflict per record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from bridge.state.base import ConflictStatus, ParkedConflict, StoredAlertRule
from bridge.state.postgres_schema import CONFLICT_COLS, RULE_COLS, conflict_of, dumps, now, rule_of, utc
from bridge.storage.postgres import PgDatabase

_Conn = AsyncConnection[Any]
_INSERT_RULE = (
    "INSERT INTO alert_rules(entity, failures, minutes, action, url) VALUES (%s, %s, %s, %s, %s) RETURNING id"
)
_MARK_SEEDED = "INSERT INTO alert_rules_seeded(one, seeded_at) VALUES (1, %s) ON CONFLICT (one) DO NOTHING"


class PostgresOpsTables:
    """Alert rules and parked conflicts on the store's ``PgDatabase``."""

    _db: PgDatabase

    # ---- alert rules ---------------------------------------------------------------------------

    async def alert_rules(self) -> list[StoredAlertRule] | None:
        async def q(conn: _Conn) -> list[StoredAlertRule] | None:
            cur = await conn.execute("SELECT 1 FROM alert_rules_seeded")
            if await cur.fetchone() is None:
                return None
            cur = await conn.execute(f"SELECT {RULE_COLS} FROM alert_rules ORDER BY id")
            return [rule_of(r) for r in await cur.fetchall()]

        return await self._db.run(q)

    async def seed_alert_rules(self, rules: list[StoredAlertRule]) -> bool:
        async def seed(conn: _Conn) -> bool:
            # the seeded row first: a second replica seeding at once waits here, then finds it
            cur = await conn.execute(_MARK_SEEDED + " RETURNING one", (now(),))
            if await cur.fetchone() is None:
                return False
            for rule in rules:
                await conn.execute(
                    _INSERT_RULE, (rule.entity, rule.failures, rule.minutes, rule.action, rule.url)
                )
            return True

        return await self._db.run(seed)

    async def put_alert_rule(self, rule: StoredAlertRule) -> int | None:
        values = (rule.entity, rule.failures, rule.minutes, rule.action, rule.url)

        async def put(conn: _Conn) -> int | None:
            if rule.id is None:
                cur = await conn.execute(_INSERT_RULE, values)
            else:
                cur = await conn.execute(
                    "UPDATE alert_rules SET entity = %s, failures = %s, minutes = %s, action = %s, url = %s "
                    "WHERE id = %s RETURNING id",
                    (*values, rule.id),
                )
            row = await cur.fetchone()
            if row is None:
                return None
            await conn.execute(_MARK_SEEDED, (now(),))
            return int(row[0])

        return await self._db.run(put)

    async def delete_alert_rule(self, rule_id: int) -> bool:
        async def delete(conn: _Conn) -> bool:
            cur = await conn.execute("DELETE FROM alert_rules WHERE id = %s", (rule_id,))
            if cur.rowcount:
                await conn.execute(_MARK_SEEDED, (now(),))
            return bool(cur.rowcount)

        return await self._db.run(delete)

    # ---- parked conflicts ----------------------------------------------------------------------

    async def park_conflict(self, conflict: ParkedConflict) -> int:
        """One statement: the open conflict of the record is updated (the partial unique index is
        the arbiter), or a new one inserted."""
        values = (
            conflict.record_key,
            conflict.entity,
            conflict.company,
            conflict.key,
            dumps(conflict.cds_values),
            dumps(conflict.scm_values),
            conflict.event_id,
            utc(conflict.cds_modified_at),
            utc(conflict.scm_modified_at),
            utc(conflict.detected_at) or now(),
        )

        async def park(conn: _Conn) -> int:
            cur = await conn.execute(
                "INSERT INTO conflicts(record_key, entity, company, key, cds_values, scm_values, event_id, "
                "cds_modified_at, scm_modified_at, detected_at, status) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'open') "
                "ON CONFLICT (record_key) WHERE status = 'open' DO UPDATE SET entity = excluded.entity, "
                "company = excluded.company, key = excluded.key, cds_values = excluded.cds_values, "
                "scm_values = excluded.scm_values, event_id = excluded.event_id, "
                "cds_modified_at = excluded.cds_modified_at, scm_modified_at = excluded.scm_modified_at, "
                "detected_at = excluded.detected_at RETURNING id",
                values,
            )
            row = await cur.fetchone()
            assert row is not None
            return int(row[0])

        return await self._db.run(park)

    async def conflicts(
        self, *, entity: str | None = None, status: ConflictStatus | None = None, limit: int = 100
    ) -> list[ParkedConflict]:
        clauses: list[str] = []
        args: list[Any] = []
        if entity is not None:
            clauses.append("entity = %s")
            args.append(entity)
        if status is not None:
            clauses.append("status = %s")
            args.append(status.value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""

        async def q(conn: _Conn) -> list[ParkedConflict]:
            cur = await conn.execute(
                f"SELECT {CONFLICT_COLS} FROM conflicts {where} ORDER BY id DESC LIMIT %s",
                (*args, max(limit, 0)),
            )
            return [conflict_of(r) for r in await cur.fetchall()]

        return await self._db.read(q)

    async def _conflict(self, where: str, arg: Any) -> ParkedConflict | None:
        async def q(conn: _Conn) -> ParkedConflict | None:
            cur = await conn.execute(f"SELECT {CONFLICT_COLS} FROM conflicts WHERE {where}", (arg,))
            row = await cur.fetchone()
            return None if row is None else conflict_of(row)

        return await self._db.read(q)

    async def get_conflict(self, conflict_id: int) -> ParkedConflict | None:
        return await self._conflict("id = %s", conflict_id)

    async def open_conflict_of(self, record_key: str) -> ParkedConflict | None:
        return await self._conflict("record_key = %s AND status = 'open'", record_key)

    async def close_conflict(self, conflict_id: int, *, winner: str, by: str, at: datetime) -> bool:
        async def close(conn: _Conn) -> bool:
            cur = await conn.execute(
                "UPDATE conflicts SET status = 'resolved', winner = %s, resolved_by = %s, resolved_at = %s "
                "WHERE id = %s AND status = 'open'",
                (winner, by, utc(at), conflict_id),
            )
            return bool(cur.rowcount)

        return await self._db.read(close)
