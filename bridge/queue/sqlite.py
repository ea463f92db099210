"""The embedded durable queue: one SQLite file in WAL mode (the default ``QueuePort``).

This module is the work queue (enqueue, lease, settle, wait, reclaim); ``bridge.queue.sqlite_admin``
the administration (figures, dead letters, drain, purge); ``bridge.queue.sqlite_schema`` the tables
and the statements both share. ``SqliteQueue`` is both halves on one file.

Lease tokens: ``complete``/``release``/``dead_letter`` check the token against the record's head.
A stale token (the lease expired and another worker took the event) is a no-op that returns False
and leaves the new lease alone. Completing after expiry but before anyone re-leased still succeeds.
Every lease names its ``owner`` (``heads.lease_owner``): ``reclaim(owner)`` hands that owner's leases
out again at once, so a bridge restarted after a crash applies what it held without waiting the
lease out.

Concurrency: one process owns the file (one dedicated database thread, see bridge.storage.sqlite);
other connections (sqlite3 CLI, a second process) may read at any time (WAL) and writers wait on
the lock (busy timeout), but two bridges must not lease from one file: leases are exclusive only
because every lease goes through one writer.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import sqlite3
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from bridge.core.events import ChangeEvent
from bridge.queue.base import QueueCapability, QueuedEvent
from bridge.queue.sqlite_admin import SqliteQueueAdmin
from bridge.queue.sqlite_schema import (
    DEPTH_SQL,
    LEASE_SQL,
    NEXT_HEAD_SQL,
    NEXT_READY_SQL,
    OLDEST_SQL,
    RECLAIM_SQL,
    SCHEMA,
    advance_head,
    dt,
    migrate,
    queued,
)
from bridge.storage.batcher import TurnBatcher
from bridge.storage.sqlite import SqliteDb, transaction

# the hot-path reads live with the schema; named here too, for the tests that EXPLAIN them
__all__ = ["LEASE_SQL", "NEXT_HEAD_SQL", "NEXT_READY_SQL", "OLDEST_SQL", "SCHEMA", "SqliteQueue"]

PRUNE_EVERY = 1000  # enqueues between two lazy prunes of the dedupe table
PRUNE_BATCH = 5000  # ids deleted per prune at most: keeps one enqueue's worst case small

_SEEN_SQL = (
    "INSERT INTO seen(event_id, seen_at) VALUES (?, ?) "
    "ON CONFLICT(event_id) DO UPDATE SET seen_at = excluded.seen_at WHERE seen.seen_at < ?"
)
_EVENT_SQL = "INSERT INTO events(event_id, record_key, entity, body, enqueued_at) VALUES (?, ?, ?, ?, ?)"
_HEAD_SQL = (
    "INSERT INTO heads(record_key, entity, head_seq, ready_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(record_key) DO NOTHING"
)
_LEASED_HEAD_SQL = (
    "INSERT INTO heads(record_key, entity, head_seq, ready_at, lease_token, lease_owner) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(record_key) DO NOTHING"
)

_Row = tuple[str, str, str, str]  # event_id, record_key, entity, body
_Enqueued = tuple[int | None, tuple[str, float] | None]  # seq (None: seen before), (token, enqueued_at)


def _row(event: ChangeEvent) -> _Row:
    return (event.event_id, event.record_key, event.entity, event.model_dump_json())


class SqliteQueue(SqliteQueueAdmin):
    """``QueuePort`` on one SQLite file, with every optional capability. ``synchronous="FULL"`` also
    survives power loss. ``owner`` is named on every lease (a random one when not given: such a
    queue's leases are never reclaimed, they run out)."""

    capabilities = frozenset(QueueCapability)

    def __init__(
        self,
        path: Path | str,
        *,
        dedupe_retention_s: float = 7 * 86400,
        synchronous: str = "NORMAL",
        owner: str | None = None,
    ) -> None:
        self._db = SqliteDb(
            path, schema=SCHEMA, synchronous=synchronous, name="dualwrite-queue", migrate=migrate
        )
        self._owner = owner or f"anonymous-{secrets.token_hex(8)}"
        self._retention = dedupe_retention_s
        self._since_prune = 0
        self._wake = asyncio.Event()
        # Lease tokens: unique per lease, and across restarts by the random prefix (cheaper than a
        # uuid4 per lease, which reads the OS's random source each time).
        self._token_prefix = secrets.token_hex(8) + "-"
        self._token_seq = itertools.count(1)
        # One turn's enqueues (webhook calls) and completions (finished changes) go to the database
        # thread as one operation each: one savepoint and one counter update per turn, not per call.
        self._enqueues: TurnBatcher[_Row, _Enqueued] = TurnBatcher(
            lambda rows: self._db.run(self._enqueue_op(rows, None))
        )
        self._completes: TurnBatcher[QueuedEvent, bool] = TurnBatcher(
            lambda items: self._db.run(lambda c: self._complete_tx(c, items))
        )

    @property
    def path(self) -> Path:
        return self._db.path

    @property
    def owner(self) -> str:
        return self._owner

    @property
    def db(self) -> SqliteDb:
        """The underlying database and its thread (tests, diagnostics)."""
        return self._db

    async def open(self) -> None:
        await self._db.open()

    async def close(self) -> None:
        await self._enqueues.wait_idle()
        await self._completes.wait_idle()
        await self._db.close()

    # ---- enqueue -------------------------------------------------------------------------------

    async def enqueue(self, event: ChangeEvent) -> bool:
        """Durably add ``event``; False (and nothing added) if its event_id was seen before."""
        return (await self.enqueue_many([event]))[0]

    async def enqueue_many(self, events: Sequence[ChangeEvent]) -> list[bool]:
        """Add several events in one transaction (one commit); a flag per event as ``enqueue``."""
        if not events:
            return []
        added = [seq is not None for seq, _ in await self._enqueues.submit([_row(e) for e in events])]
        if any(added):
            self._wake.set()
        return added

    async def enqueue_leased(
        self, event: ChangeEvent, lease_seconds: float
    ) -> tuple[bool, QueuedEvent | None]:
        """``enqueue``, leasing the event to the caller in the same transaction when its record has
        no other queued event: a change someone waits for (a synchronous one) goes straight to its
        apply, without a lease's hop to the database thread or the worker's wake-up."""
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        [(seq, lease)] = await self._db.run(self._enqueue_op([_row(event)], lease_seconds))
        if seq is None:
            return False, None
        if lease is None:
            self._wake.set()  # behind the record's earlier events: the worker leases it in turn
            return True, None
        token, enqueued_at = lease
        return True, QueuedEvent(
            seq=seq, event=event, attempts=0, lease_token=token, enqueued_at=dt(enqueued_at)
        )

    def _enqueue_op(
        self, rows: list[_Row], lease_seconds: float | None
    ) -> Callable[[sqlite3.Connection], list[_Enqueued]]:
        self._since_prune += len(rows)
        prune = self._since_prune >= PRUNE_EVERY
        if prune:
            self._since_prune = 0
        lease = None if lease_seconds is None else (self._next_token(), lease_seconds)
        return lambda c: self._enqueue_tx(c, rows, prune, lease)

    def _enqueue_tx(
        self,
        conn: sqlite3.Connection,
        rows: list[_Row],
        prune: bool,
        lease: tuple[str, float] | None,
    ) -> list[_Enqueued]:
        """Per row: (its seq, or None if seen before; (token, enqueued_at) if leased here). With
        ``lease`` (token, seconds), a row that is its record's only event is leased with it."""
        now = time.time()
        cutoff = now - self._retention
        out: list[_Enqueued] = []
        per_entity: dict[str, int] = {}
        with transaction(conn):
            for event_id, record_key, entity, body in rows:
                if conn.execute(_SEEN_SQL, (event_id, now, cutoff)).rowcount == 0:
                    out.append((None, None))  # seen within the window (or earlier in this batch)
                    continue
                seq = conn.execute(_EVENT_SQL, (event_id, record_key, entity, body, now)).lastrowid
                assert seq is not None
                per_entity[entity] = per_entity.get(entity, 0) + 1
                if lease is None:
                    conn.execute(_HEAD_SQL, (record_key, entity, seq, now))
                    out.append((seq, None))
                elif conn.execute(
                    _LEASED_HEAD_SQL, (record_key, entity, seq, now + lease[1], lease[0], self._owner)
                ).rowcount:
                    # The record's only event: leased as ``lease`` would (one more attempt).
                    conn.execute("UPDATE events SET attempts = 1 WHERE seq = ?", (seq,))
                    out.append((seq, (lease[0], now)))
                else:
                    out.append((seq, None))  # earlier events of the record go first
            conn.executemany(DEPTH_SQL, per_entity.items())
            if prune:
                conn.execute(
                    "DELETE FROM seen WHERE event_id IN "
                    "(SELECT event_id FROM seen WHERE seen_at < ? ORDER BY seen_at LIMIT ?)",
                    (cutoff, PRUNE_BATCH),
                )
        return out

    def _next_token(self) -> str:
        return f"{self._token_prefix}{next(self._token_seq):x}"

    # ---- lease ---------------------------------------------------------------------------------

    async def lease(
        self, max_items: int, lease_seconds: float, *, exclude_entities: Collection[str] = ()
    ) -> list[QueuedEvent]:
        """Take up to ``max_items`` events, at most one per record key, the oldest of each record."""
        if max_items <= 0:
            return []
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        excluded = frozenset(exclude_entities)
        rows = await self._db.run(lambda c: self._lease_tx(c, max_items, lease_seconds, excluded))
        return [
            QueuedEvent(
                seq=seq,
                event=ChangeEvent.model_validate_json(body),
                attempts=attempts - 1,
                lease_token=token,
                enqueued_at=dt(enqueued_at),
                last_error=last_error,
            )
            for seq, body, attempts, enqueued_at, last_error, token in rows
        ]

    def _lease_tx(
        self, conn: sqlite3.Connection, limit: int, lease_seconds: float, excluded: frozenset[str]
    ) -> list[tuple[int, str, int, float, str | None, str]]:
        now = time.time()
        with transaction(conn):
            entities = [e for (e,) in conn.execute("SELECT entity FROM depth") if e not in excluded]
            # One index range per map (a handful), merged: never touches an excluded map's rows.
            candidates: list[tuple[float, int, str]] = []
            for entity in entities:
                candidates.extend(
                    (ready_at, seq, key)
                    for key, seq, ready_at in conn.execute(LEASE_SQL, (entity, now, limit))
                )
            candidates.sort()
            out: list[tuple[int, str, int, float, str | None, str]] = []
            until = now + lease_seconds
            for _, seq, key in candidates[:limit]:
                token = self._next_token()
                conn.execute(
                    "UPDATE heads SET ready_at = ?, lease_token = ?, lease_owner = ? WHERE record_key = ?",
                    (until, token, self._owner, key),
                )
                body, attempts, enqueued_at, last_error = conn.execute(
                    "UPDATE events SET attempts = attempts + 1 WHERE seq = ? "
                    "RETURNING body, attempts, enqueued_at, last_error",
                    (seq,),
                ).fetchone()
                out.append((seq, body, attempts, enqueued_at, last_error, token))
        return out

    async def claim(self, event: ChangeEvent, lease_seconds: float) -> QueuedEvent | None:
        """Lease ``event`` when it heads its record and no live lease or dead letter holds the
        record, even before a release's delay has run out (``LeaseClaim``); None otherwise."""
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        token = self._next_token()
        key, event_id = event.record_key, event.event_id
        row = await self._db.run(lambda c: self._claim_tx(c, key, event_id, lease_seconds, token))
        return None if row is None else queued(*row)

    def _claim_tx(
        self, conn: sqlite3.Connection, record_key: str, event_id: str, lease_seconds: float, token: str
    ) -> tuple[int, str, int, str, float, str | None] | None:
        now = time.time()
        with transaction(conn):
            # The record's head (by primary keys: no scan), if it is this event, not held by a dead
            # letter (``ready_at`` NULL) nor by a live lease (a release's delay is no lease).
            row = conn.execute(
                "SELECT h.head_seq FROM heads h JOIN events e ON e.seq = h.head_seq "
                "WHERE h.record_key = ? AND e.event_id = ? AND h.ready_at IS NOT NULL "
                "AND (h.lease_token IS NULL OR h.ready_at <= ?)",
                (record_key, event_id, now),
            ).fetchone()
            if row is None:
                return None
            seq = int(row[0])
            conn.execute(
                "UPDATE heads SET ready_at = ?, lease_token = ?, lease_owner = ? WHERE record_key = ?",
                (now + lease_seconds, token, self._owner, record_key),
            )
            body, attempts, enqueued_at, last_error = conn.execute(
                "UPDATE events SET attempts = attempts + 1 WHERE seq = ? "
                "RETURNING body, attempts, enqueued_at, last_error",
                (seq,),
            ).fetchone()
        return seq, body, attempts - 1, token, enqueued_at, last_error

    # ---- settle a lease ------------------------------------------------------------------------

    async def complete(self, item: QueuedEvent) -> bool:
        """Remove the event for good. False (a no-op) if the lease was lost to another worker."""
        return (await self.complete_many([item]))[0]

    async def complete_many(self, items: Sequence[QueuedEvent]) -> list[bool]:
        """Complete several leased events in one transaction; a flag per item as ``complete``."""
        if not items:
            return []
        return await self._completes.submit(items)

    def _complete_tx(self, conn: sqlite3.Connection, items: Sequence[QueuedEvent]) -> list[bool]:
        done: list[bool] = []
        with transaction(conn):
            for item in items:
                entity = self._held(conn, item)
                if entity is None:
                    done.append(False)
                    continue
                conn.execute("DELETE FROM events WHERE seq = ?", (item.seq,))
                conn.execute("UPDATE depth SET n = n - 1 WHERE entity = ?", (entity,))
                advance_head(conn, item.event.record_key, item.seq)
                done.append(True)
        return done

    async def release(self, item: QueuedEvent, *, delay: float = 0.0, error: str | None = None) -> bool:
        """Give the event back, leasable again after ``delay`` s. False if the lease was lost."""
        ok = await self._db.run(lambda c: self._release_tx(c, item, max(delay, 0.0), error))
        if ok:
            self._wake.set()
        return ok

    def _release_tx(
        self, conn: sqlite3.Connection, item: QueuedEvent, delay: float, error: str | None
    ) -> bool:
        with transaction(conn):
            if self._held(conn, item) is None:
                return False
            conn.execute("UPDATE events SET last_error = ? WHERE seq = ?", (error, item.seq))
            conn.execute(
                "UPDATE heads SET ready_at = ?, lease_token = NULL, lease_owner = NULL WHERE record_key = ?",
                (time.time() + delay, item.event.record_key),
            )
        return True

    async def dead_letter(self, item: QueuedEvent, reason: str) -> bool:
        """Park the event; its record's later events wait behind it. False if the lease was lost."""
        return await self._db.run(lambda c: self._dead_letter_tx(c, item, reason))

    def _dead_letter_tx(self, conn: sqlite3.Connection, item: QueuedEvent, reason: str) -> bool:
        with transaction(conn):
            entity = self._held(conn, item)
            if entity is None:
                return False
            conn.execute(
                "UPDATE events SET dead_at = ?, dead_reason = ? WHERE seq = ?",
                (time.time(), reason, item.seq),
            )
            conn.execute(
                "UPDATE heads SET ready_at = NULL, lease_token = NULL, lease_owner = NULL "
                "WHERE record_key = ?",
                (item.event.record_key,),
            )
            conn.execute("UPDATE depth SET n = n - 1 WHERE entity = ?", (entity,))
        return True

    @staticmethod
    def _held(conn: sqlite3.Connection, item: QueuedEvent) -> str | None:
        """The map of ``item`` if its lease token still holds the record's head, else None."""
        row = conn.execute(
            "SELECT entity FROM heads WHERE record_key = ? AND head_seq = ? AND lease_token = ?",
            (item.event.record_key, item.seq, item.lease_token),
        ).fetchone()
        return None if row is None else str(row[0])

    # ---- taking back a dead owner's leases -----------------------------------------------------

    async def reclaim(self, owner: str) -> int:
        """Release every lease ``owner`` holds: leasable again at once. For an owner that is gone
        (this bridge's own run before a crash, or a dead replica): a live owner's work would be
        handed out twice."""
        n = await self._db.run(lambda c: int(c.execute(RECLAIM_SQL, (time.time(), owner)).rowcount))
        if n:
            self._wake.set()
        return n

    # ---- a synchronous change decided ahead of its record's queue ------------------------------

    async def pending_of(self, record_key: str) -> list[ChangeEvent]:
        """The record's queued and leased events (not dead letters), oldest first."""

        def q(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT body FROM events WHERE record_key = ? AND dead_at IS NULL ORDER BY seq",
                (record_key,),
            ).fetchall()
            return [str(r[0]) for r in rows]

        return [ChangeEvent.model_validate_json(body) for body in await self._db.run(q)]

    async def withdraw(self, event_id: str) -> bool:
        """Remove a queued, not leased event; False if it is leased, dead-lettered or not queued."""
        return await self._db.run(lambda c: self._withdraw_tx(c, event_id))

    def _withdraw_tx(self, conn: sqlite3.Connection, event_id: str) -> bool:
        with transaction(conn):
            row = conn.execute(
                "SELECT seq, record_key, entity FROM events WHERE event_id = ? AND dead_at IS NULL",
                (event_id,),
            ).fetchone()
            if row is None:
                return False
            seq, record_key, entity = row
            head = conn.execute(
                "SELECT head_seq, lease_token FROM heads WHERE record_key = ?", (record_key,)
            ).fetchone()
            is_head = head is not None and head[0] == seq
            if is_head and head[1] is not None:
                return False  # leased (an expired lease's worker may still be applying it)
            conn.execute("DELETE FROM events WHERE seq = ?", (seq,))
            conn.execute("UPDATE depth SET n = n - 1 WHERE entity = ?", (entity,))
            if is_head:
                advance_head(conn, record_key, seq)
        return True

    # ---- waiting --------------------------------------------------------------------

    async def wait(self, timeout: float) -> None:
        """Return on an enqueue/release/replay in this process, when a lease or delay ends, or after
        ``timeout``. May return early (callers just lease again)."""
        if not self._wake.is_set():
            now = time.time()
            nxt = await self._db.run(lambda c: c.execute(NEXT_READY_SQL, (now,)).fetchone()[0])
            if nxt is not None:
                timeout = min(timeout, max(float(nxt) - time.time(), 0.0) + 0.001)
            try:
                await asyncio.wait_for(self._wake.wait(), max(timeout, 0.0))
            except TimeoutError:
                return
        self._wake.clear()

    # ---- diagnostics ---------------------------------------------------------------------------

    async def pragma(self, name: str) -> Any:
        """Read one PRAGMA on the queue's own connection (tests, diagnostics)."""
        return await self._db.pragma(name)
