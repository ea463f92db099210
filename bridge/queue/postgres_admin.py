"""The administration half of the PostgreSQL queue (``QueueAdmin``): figures, dead letters, and a
paused map's backlog. ``PostgresQueue`` (bridge.queue.postgres) is this plus the work queue, on the
same pool and wake-up. Every change locks the head rows of the records it touches first, in key
order, as the work queue's writers do."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from bridge.core.events import ChangeEvent
from bridge.queue.base import DeadLetter, QueuedEvent
from bridge.queue.postgres_schema import NOTIFY_SQL, advance_heads, lock_heads
from bridge.storage.postgres import PgDatabase

# a head under a lease that has not run out: drain and purge leave its event alone
_ACTIVE_LEASES = (
    "SELECT head_seq FROM heads WHERE entity = %s AND ready_at > statement_timestamp() "
    "AND lease_token IS NOT NULL"
)
_DRAINABLE = (
    "SELECT seq, record_key, body, attempts, enqueued_at, last_error FROM events "
    f"WHERE entity = %s AND dead_at IS NULL AND seq NOT IN ({_ACTIVE_LEASES}) {{locked}}ORDER BY seq LIMIT %s"
)


class PostgresQueueAdmin:
    """``QueueAdmin`` on the queue's tables (set up by ``PostgresQueue``)."""

    _db: PgDatabase
    _wake: asyncio.Event
    _channel: str

    # ---- dead letters --------------------------------------------------------------------------

    async def dead_letters(self, *, offset: int = 0, limit: int = 100) -> list[DeadLetter]:
        """Dead letters, oldest (lowest seq) first."""

        async def q(conn: AsyncConnection[Any]) -> list[tuple[Any, ...]]:
            cur = await conn.execute(
                "SELECT seq, body, attempts, dead_reason, dead_at FROM events "
                "WHERE dead_at IS NOT NULL ORDER BY seq LIMIT %s OFFSET %s",
                (max(limit, 0), max(offset, 0)),
            )
            return await cur.fetchall()

        return [
            DeadLetter(
                seq=int(seq),
                event=ChangeEvent.model_validate_json(body),
                attempts=int(attempts),
                reason=reason or "",
                dead_lettered_at=dead_at,
            )
            for seq, body, attempts, reason, dead_at in await self._db.read(q)
        ]

    async def replay(self, seqs: Collection[int] | None = None) -> int:
        """Put dead letters back at the head of their records (attempts reset to 0)."""

        async def tx(conn: AsyncConnection[Any]) -> int:
            keys = await _dead_records(conn, seqs)
            if not keys:
                return 0
            await lock_heads(conn, keys)
            cur = await conn.execute(
                "UPDATE events SET dead_at = NULL, dead_reason = NULL, attempts = 0 "
                "WHERE dead_at IS NOT NULL AND record_key = ANY(%s) "
                "AND (%s::bigint[] IS NULL OR seq = ANY(%s)) RETURNING record_key",
                (keys, _seqs(seqs), _seqs(seqs)),
            )
            replayed = [str(k) for (k,) in await cur.fetchall()]
            await conn.execute(
                "UPDATE heads SET ready_at = statement_timestamp() WHERE record_key = ANY(%s)", (replayed,)
            )
            if replayed:
                await conn.execute(NOTIFY_SQL, (self._channel,))
            return len(replayed)

        n = await self._db.run(tx)
        if n:
            self._wake.set()
        return n

    async def discard(self, seqs: Collection[int] | None = None) -> int:
        """Drop dead letters for good; their records' later events become leasable."""

        async def tx(conn: AsyncConnection[Any]) -> int:
            keys = await _dead_records(conn, seqs)
            if not keys:
                return 0
            await lock_heads(conn, keys)
            cur = await conn.execute(
                "DELETE FROM events WHERE dead_at IS NOT NULL AND record_key = ANY(%s) "
                "AND (%s::bigint[] IS NULL OR seq = ANY(%s)) RETURNING record_key",
                (keys, _seqs(seqs), _seqs(seqs)),
            )
            dropped = [str(k) for (k,) in await cur.fetchall()]
            await advance_heads(conn, dropped)  # a dead letter is its record's head
            if dropped:
                await conn.execute(NOTIFY_SQL, (self._channel,))
            return len(dropped)

        return await self._db.run(tx)

    # ---- skipping a paused map's backlog -------------------------------------------------------

    async def drain(self, entity: str, limit: int) -> list[QueuedEvent]:
        """Remove and return up to ``limit`` queued (not dead-lettered, not leased) events of one map,
        oldest first. The returned items hold no lease (``lease_token`` is empty)."""
        if limit <= 0:
            return []

        async def tx(conn: AsyncConnection[Any]) -> list[tuple[Any, ...]]:
            cur = await conn.execute(_DRAINABLE.format(locked=""), (entity, entity, limit))
            keys = sorted({str(r[1]) for r in await cur.fetchall()})
            await lock_heads(conn, keys)
            # again under the locks, and only of the records locked: one settled meanwhile is left out
            cur = await conn.execute(
                _DRAINABLE.format(locked="AND record_key = ANY(%s::text[]) "), (entity, entity, keys, limit)
            )
            rows = await cur.fetchall()
            if not rows:
                return []
            cur = await conn.execute(
                "SELECT record_key FROM heads WHERE head_seq = ANY(%s)", ([int(r[0]) for r in rows],)
            )
            headless = [str(k) for (k,) in await cur.fetchall()]
            await conn.execute("DELETE FROM events WHERE seq = ANY(%s)", ([int(r[0]) for r in rows],))
            await advance_heads(conn, headless)
            return rows

        rows = await self._db.run(tx)
        return [
            QueuedEvent(
                seq=int(seq),
                event=ChangeEvent.model_validate_json(body),
                attempts=int(attempts),
                lease_token="",
                enqueued_at=enqueued_at,
                last_error=last_error,
            )
            for seq, _, body, attempts, enqueued_at, last_error in rows
        ]

    async def purge(self, entity: str) -> int:
        """Drop every queued (not dead-lettered, not leased) event of one map; returns how many."""

        async def tx(conn: AsyncConnection[Any]) -> int:
            await conn.execute(
                "SELECT 1 FROM heads WHERE entity = %s ORDER BY record_key FOR UPDATE", (entity,)
            )
            cur = await conn.execute(
                f"DELETE FROM events WHERE entity = %s AND dead_at IS NULL AND seq NOT IN ({_ACTIVE_LEASES})",
                (entity, entity),
            )
            deleted = int(cur.rowcount)
            # left: heads blocked by a dead letter (NULL ready_at) and heads under an active lease
            await conn.execute(
                "DELETE FROM heads WHERE entity = %s AND ready_at IS NOT NULL "
                "AND NOT (ready_at > statement_timestamp() AND lease_token IS NOT NULL)",
                (entity,),
            )
            return deleted

        return await self._db.run(tx)

    # ---- gauges --------------------------------------------------------------------------------

    async def depth(self, entity: str | None = None) -> int:
        """Queued events (not dead letters), optionally for one map: counted on a partial index."""

        async def q(conn: AsyncConnection[Any]) -> int:
            if entity is None:
                cur = await conn.execute("SELECT count(*) FROM events WHERE dead_at IS NULL")
            else:
                cur = await conn.execute(
                    "SELECT count(*) FROM events WHERE entity = %s AND dead_at IS NULL", (entity,)
                )
            row = await cur.fetchone()
            return 0 if row is None else int(row[0])

        return await self._db.read(q)

    async def oldest_enqueued_at(self, entity: str | None = None) -> datetime | None:
        async def q(conn: AsyncConnection[Any]) -> datetime | None:
            if entity is None:
                cur = await conn.execute(
                    "SELECT enqueued_at FROM events WHERE dead_at IS NULL ORDER BY seq LIMIT 1"
                )
            else:
                cur = await conn.execute(
                    "SELECT enqueued_at FROM events WHERE entity = %s AND dead_at IS NULL "
                    "ORDER BY seq LIMIT 1",
                    (entity,),
                )
            row = await cur.fetchone()
            return None if row is None else row[0]

        return await self._db.read(q)


def _seqs(seqs: Collection[int] | None) -> list[int] | None:
    return None if seqs is None else sorted(set(seqs))


async def _dead_records(conn: AsyncConnection[Any], seqs: Collection[int] | None) -> list[str]:
    """The records of the dead letters named (None: all)."""
    cur = await conn.execute(
        "SELECT DISTINCT record_key FROM events WHERE dead_at IS NOT NULL "
        "AND (%s::bigint[] IS NULL OR seq = ANY(%s))",
        (_seqs(seqs), _seqs(seqs)),
    )
    return sorted(str(k) for (k,) in await cur.fetchall())
