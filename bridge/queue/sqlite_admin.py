"""The administration half of the SQLite queue (``QueueAdmin``): figures, dead letters, and a
paused map's backlog. ``SqliteQueue`` (bridge.queue.sqlite) is this plus the work queue, on the same
file, connection and wake-up."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Collection
from datetime import datetime

from bridge.core.events import ChangeEvent
from bridge.queue.base import DeadLetter, QueuedEvent
from bridge.queue.sqlite_schema import DEPTH_SQL, OLDEST_SQL, advance_head, dt, queued
from bridge.storage.sqlite import SqliteDb, transaction

# a head under a lease that has not run out: drain and purge leave its event alone
_ACTIVE_LEASES = "SELECT head_seq FROM heads WHERE entity = ? AND ready_at > ? AND lease_token IS NOT NULL"

_Row = tuple[int, str, int, float, str | None]  # seq, body, attempts, enqueued_at, last_error


class SqliteQueueAdmin:
    """``QueueAdmin`` on the queue file (set up by ``SqliteQueue``)."""

    _db: SqliteDb
    _wake: asyncio.Event

    # ---- dead letters --------------------------------------------------------------------------

    async def dead_letters(self, *, offset: int = 0, limit: int = 100) -> list[DeadLetter]:
        """Dead letters, oldest (lowest seq) first."""
        rows = await self._db.run(
            lambda c: c.execute(
                "SELECT seq, body, attempts, dead_reason, dead_at FROM events "
                "WHERE dead_at IS NOT NULL ORDER BY seq LIMIT ? OFFSET ?",
                (max(limit, 0), max(offset, 0)),
            ).fetchall()
        )
        return [
            DeadLetter(
                seq=seq,
                event=ChangeEvent.model_validate_json(body),
                attempts=attempts,
                reason=reason or "",
                dead_lettered_at=dt(dead_at),
            )
            for seq, body, attempts, reason, dead_at in rows
        ]

    async def replay(self, seqs: Collection[int] | None = None) -> int:
        """Put dead letters back at the head of their records (attempts reset to 0)."""
        n = await self._db.run(lambda c: _settle_dead_tx(c, seqs, replay=True))
        if n:
            self._wake.set()
        return n

    async def discard(self, seqs: Collection[int] | None = None) -> int:
        """Drop dead letters for good; their records' later events become leasable."""
        return await self._db.run(lambda c: _settle_dead_tx(c, seqs, replay=False))

    # ---- skipping a paused map's backlog -------------------------------------------------------

    async def drain(self, entity: str, limit: int) -> list[QueuedEvent]:
        """Remove and return up to ``limit`` queued (not dead-lettered, not leased) events of one map,
        oldest first. The returned items hold no lease (``lease_token`` is empty)."""
        if limit <= 0:
            return []
        rows = await self._db.run(lambda c: _drain_tx(c, entity, limit))
        return [
            queued(seq, body, attempts, "", enqueued_at, last_error)
            for seq, body, attempts, enqueued_at, last_error in rows
        ]

    async def purge(self, entity: str) -> int:
        """Drop every queued (not dead-lettered, not leased) event of one map; returns how many."""
        return await self._db.run(lambda c: _purge_tx(c, entity))

    # ---- gauges --------------------------------------------------------------------------------

    async def depth(self, entity: str | None = None) -> int:
        """Queued events (not dead letters), optionally for one map."""

        def q(conn: sqlite3.Connection) -> int:
            if entity is None:
                return int(conn.execute("SELECT coalesce(sum(n), 0) FROM depth").fetchone()[0])
            row = conn.execute("SELECT n FROM depth WHERE entity = ?", (entity,)).fetchone()
            return 0 if row is None else int(row[0])

        return await self._db.run(q)

    async def oldest_enqueued_at(self, entity: str | None = None) -> datetime | None:
        def q(conn: sqlite3.Connection) -> float | None:
            if entity is None:
                row = conn.execute(
                    "SELECT enqueued_at FROM events WHERE dead_at IS NULL ORDER BY seq LIMIT 1"
                )
            else:
                row = conn.execute(OLDEST_SQL, (entity,))
            row = row.fetchone()
            return None if row is None else float(row[0])

        ts = await self._db.run(q)
        return None if ts is None else dt(ts)


def _settle_dead_tx(conn: sqlite3.Connection, seqs: Collection[int] | None, *, replay: bool) -> int:
    now = time.time()
    with transaction(conn):
        if seqs is None:
            targets = conn.execute(
                "SELECT seq, record_key, entity FROM events WHERE dead_at IS NOT NULL"
            ).fetchall()
        else:
            targets = [
                row
                for seq in set(seqs)
                for row in conn.execute(
                    "SELECT seq, record_key, entity FROM events WHERE seq = ? AND dead_at IS NOT NULL",
                    (seq,),
                )
            ]
        for seq, record_key, entity in targets:
            if replay:
                conn.execute(
                    "UPDATE events SET dead_at = NULL, dead_reason = NULL, attempts = 0 WHERE seq = ?",
                    (seq,),
                )
                conn.execute("UPDATE heads SET ready_at = ? WHERE record_key = ?", (now, record_key))
                conn.execute(DEPTH_SQL, (entity, 1))
            else:
                conn.execute("DELETE FROM events WHERE seq = ?", (seq,))
                advance_head(conn, record_key, seq)
    return len(targets)


def _drain_tx(conn: sqlite3.Connection, entity: str, limit: int) -> list[_Row]:
    now = time.time()
    out: list[_Row] = []
    with transaction(conn):
        rows = conn.execute(
            "SELECT seq, record_key, body, attempts, enqueued_at, last_error FROM events "
            f"WHERE entity = ? AND dead_at IS NULL AND seq NOT IN ({_ACTIVE_LEASES}) "
            "ORDER BY seq LIMIT ?",
            (entity, entity, now, limit),
        ).fetchall()
        # oldest first: a record's head goes before its later events, so advancing stays correct
        for seq, record_key, body, attempts, enqueued_at, last_error in rows:
            conn.execute("DELETE FROM events WHERE seq = ?", (seq,))
            head = conn.execute("SELECT head_seq FROM heads WHERE record_key = ?", (record_key,)).fetchone()
            if head is not None and head[0] == seq:
                advance_head(conn, record_key, seq)
            out.append((seq, body, attempts, enqueued_at, last_error))
        conn.execute("UPDATE depth SET n = n - ? WHERE entity = ?", (len(out), entity))
    return out


def _purge_tx(conn: sqlite3.Connection, entity: str) -> int:
    now = time.time()
    with transaction(conn):
        deleted = conn.execute(
            f"DELETE FROM events WHERE entity = ? AND dead_at IS NULL AND seq NOT IN ({_ACTIVE_LEASES})",
            (entity, entity, now),
        ).rowcount
        # left: heads blocked by a dead letter (NULL ready_at) and heads under an active lease;
        # any later events of both were just deleted, which the head rows do not record
        conn.execute(
            "DELETE FROM heads WHERE entity = ? AND ready_at IS NOT NULL "
            "AND NOT (ready_at > ? AND lease_token IS NOT NULL)",
            (entity, now),
        )
        left = conn.execute(
            "SELECT count(*) FROM events WHERE entity = ? AND dead_at IS NULL", (entity,)
        ).fetchone()[0]
        conn.execute("UPDATE depth SET n = ? WHERE entity = ?", (left, entity))
    return int(deleted)
