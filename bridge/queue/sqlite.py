"""The embedded durable queue: one SQLite file in WAL mode (the default ``QueuePort``).

Tables (docs/queue-and-state.md has the full schema and how to inspect them):
- ``events``: every queued or dead-lettered event, ``seq`` increasing (AUTOINCREMENT: never reused).
- ``heads``: one row per record key that has events: its oldest event (``head_seq``) and when that
  record may next be leased (``ready_at``: enqueue time, end of a lease, end of a release delay;
  NULL while its head is dead-lettered). ``lease`` reads only ``heads`` through the index
  ``(entity, ready_at)``, one range per map, so its cost does not grow with the backlog and a paused
  map's million queued records are never visited.
- ``depth``: queued (not dead) events per map, kept by every write: ``depth()`` and the list of maps
  for ``lease`` without counting rows.
- ``seen``: event ids with the time they were enqueued, for dedupe; pruned lazily, a bounded batch
  at a time, every ``PRUNE_EVERY`` enqueues.

Lease tokens: ``complete``/``release``/``dead_letter`` check the token against the record's head.
A stale token (the lease expired and another worker took the event) is a no-op that returns False
and leaves the new lease alone. Completing after expiry but before anyone re-leased still succeeds.

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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridge.core.events import ChangeEvent
from bridge.queue.base import DeadLetter, QueuedEvent
from bridge.storage.batcher import TurnBatcher
from bridge.storage.sqlite import SqliteDb, transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL,
    record_key  TEXT NOT NULL,
    entity      TEXT NOT NULL,
    body        TEXT NOT NULL,             -- ChangeEvent.model_dump_json()
    enqueued_at REAL NOT NULL,             -- unix seconds
    attempts    INTEGER NOT NULL DEFAULT 0,  -- times leased
    last_error  TEXT,
    dead_at     REAL,                      -- NULL = queued; set = dead-lettered
    dead_reason TEXT
);
CREATE INDEX IF NOT EXISTS events_record ON events(record_key, seq);
CREATE INDEX IF NOT EXISTS events_entity ON events(entity, seq);
CREATE INDEX IF NOT EXISTS events_dead ON events(seq) WHERE dead_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS heads (
    record_key  TEXT PRIMARY KEY,
    entity      TEXT NOT NULL,
    head_seq    INTEGER NOT NULL,
    ready_at    REAL,                      -- NULL = blocked by a dead letter
    lease_token TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS heads_ready ON heads(entity, ready_at);
CREATE INDEX IF NOT EXISTS heads_next ON heads(ready_at);

CREATE TABLE IF NOT EXISTS depth (
    entity TEXT PRIMARY KEY,
    n      INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS seen (
    event_id TEXT PRIMARY KEY,
    seen_at  REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_age ON seen(seen_at);
"""

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
    "INSERT INTO heads(record_key, entity, head_seq, ready_at, lease_token) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT(record_key) DO NOTHING"
)
# the hot-path reads, named so tests can EXPLAIN them (each must be an index search, never a scan)
LEASE_SQL = (
    "SELECT record_key, head_seq, ready_at FROM heads "
    "WHERE entity = ? AND ready_at <= ? ORDER BY ready_at LIMIT ?"
)
NEXT_HEAD_SQL = "SELECT seq, enqueued_at FROM events WHERE record_key = ? AND seq > ? ORDER BY seq LIMIT 1"
NEXT_READY_SQL = "SELECT min(ready_at) FROM heads WHERE ready_at > ?"
OLDEST_SQL = "SELECT enqueued_at FROM events WHERE entity = ? AND dead_at IS NULL ORDER BY seq LIMIT 1"
_DEPTH_SQL = "INSERT INTO depth(entity, n) VALUES (?, ?) ON CONFLICT(entity) DO UPDATE SET n = n + excluded.n"


_Row = tuple[str, str, str, str]  # event_id, record_key, entity, body
_Enqueued = tuple[int | None, tuple[str, float] | None]  # seq (None: seen before), (token, enqueued_at)


def _row(event: ChangeEvent) -> _Row:
    return (event.event_id, event.record_key, event.entity, event.model_dump_json())


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class SqliteQueue:
    """``QueuePort`` on one SQLite file. ``synchronous="FULL"`` also survives power loss."""

    def __init__(
        self,
        path: Path | str,
        *,
        dedupe_retention_s: float = 7 * 86400,
        synchronous: str = "NORMAL",
    ) -> None:
        self._db = SqliteDb(path, schema=SCHEMA, synchronous=synchronous, name="dualwrite-queue")
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
            seq=seq, event=event, attempts=0, lease_token=token, enqueued_at=_dt(enqueued_at)
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
                    _LEASED_HEAD_SQL, (record_key, entity, seq, now + lease[1], lease[0])
                ).rowcount:
                    # The record's only event: leased as ``lease`` would (one more attempt).
                    conn.execute("UPDATE events SET attempts = 1 WHERE seq = ?", (seq,))
                    out.append((seq, (lease[0], now)))
                else:
                    out.append((seq, None))  # earlier events of the record go first
            conn.executemany(_DEPTH_SQL, per_entity.items())
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
                enqueued_at=_dt(enqueued_at),
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
                    "UPDATE heads SET ready_at = ?, lease_token = ? WHERE record_key = ?", (until, token, key)
                )
                body, attempts, enqueued_at, last_error = conn.execute(
                    "UPDATE events SET attempts = attempts + 1 WHERE seq = ? "
                    "RETURNING body, attempts, enqueued_at, last_error",
                    (seq,),
                ).fetchone()
                out.append((seq, body, attempts, enqueued_at, last_error, token))
        return out

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
                self._advance_head(conn, item.event.record_key, item.seq)
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
                "UPDATE heads SET ready_at = ?, lease_token = NULL WHERE record_key = ?",
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
                "UPDATE heads SET ready_at = NULL, lease_token = NULL WHERE record_key = ?",
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

    @staticmethod
    def _advance_head(conn: sqlite3.Connection, record_key: str, after_seq: int) -> None:
        nxt = conn.execute(NEXT_HEAD_SQL, (record_key, after_seq)).fetchone()
        if nxt is None:
            conn.execute("DELETE FROM heads WHERE record_key = ?", (record_key,))
        else:
            # ready since it was enqueued: the oldest waiting work goes first
            conn.execute(
                "UPDATE heads SET head_seq = ?, ready_at = ?, lease_token = NULL WHERE record_key = ?",
                (nxt[0], nxt[1], record_key),
            )

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
                self._advance_head(conn, record_key, seq)
        return True

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
                dead_lettered_at=_dt(dead_at),
            )
            for seq, body, attempts, reason, dead_at in rows
        ]

    async def replay(self, seqs: Collection[int] | None = None) -> int:
        """Put dead letters back at the head of their records (attempts reset to 0)."""
        n = await self._db.run(lambda c: self._settle_dead_tx(c, seqs, replay=True))
        if n:
            self._wake.set()
        return n

    async def discard(self, seqs: Collection[int] | None = None) -> int:
        """Drop dead letters for good; their records' later events become leasable."""
        return await self._db.run(lambda c: self._settle_dead_tx(c, seqs, replay=False))

    def _settle_dead_tx(self, conn: sqlite3.Connection, seqs: Collection[int] | None, *, replay: bool) -> int:
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
                    conn.execute(_DEPTH_SQL, (entity, 1))
                else:
                    conn.execute("DELETE FROM events WHERE seq = ?", (seq,))
                    self._advance_head(conn, record_key, seq)
        return len(targets)

    # ---- skipping a paused map's backlog -------------------------------------------------------

    _ACTIVE_LEASES = (
        "SELECT head_seq FROM heads WHERE entity = ? AND ready_at > ? AND lease_token IS NOT NULL"
    )

    async def drain(self, entity: str, limit: int) -> list[QueuedEvent]:
        """Remove and return up to ``limit`` queued (not dead-lettered, not leased) events of one map,
        oldest first. The returned items hold no lease (``lease_token`` is empty)."""
        if limit <= 0:
            return []
        rows = await self._db.run(lambda c: self._drain_tx(c, entity, limit))
        return [
            QueuedEvent(
                seq=seq,
                event=ChangeEvent.model_validate_json(body),
                attempts=attempts,
                lease_token="",
                enqueued_at=_dt(enqueued_at),
                last_error=last_error,
            )
            for seq, body, attempts, enqueued_at, last_error in rows
        ]

    def _drain_tx(
        self, conn: sqlite3.Connection, entity: str, limit: int
    ) -> list[tuple[int, str, int, float, str | None]]:
        now = time.time()
        out: list[tuple[int, str, int, float, str | None]] = []
        with transaction(conn):
            rows = conn.execute(
                "SELECT seq, record_key, body, attempts, enqueued_at, last_error FROM events "
                f"WHERE entity = ? AND dead_at IS NULL AND seq NOT IN ({self._ACTIVE_LEASES}) "
                "ORDER BY seq LIMIT ?",
                (entity, entity, now, limit),
            ).fetchall()
            # oldest first: a record's head goes before its later events, so advancing stays correct
            for seq, record_key, body, attempts, enqueued_at, last_error in rows:
                conn.execute("DELETE FROM events WHERE seq = ?", (seq,))
                head = conn.execute(
                    "SELECT head_seq FROM heads WHERE record_key = ?", (record_key,)
                ).fetchone()
                if head is not None and head[0] == seq:
                    self._advance_head(conn, record_key, seq)
                out.append((seq, body, attempts, enqueued_at, last_error))
            conn.execute("UPDATE depth SET n = n - ? WHERE entity = ?", (len(out), entity))
        return out

    async def purge(self, entity: str) -> int:
        """Drop every queued (not dead-lettered, not leased) event of one map; returns how many."""
        return await self._db.run(lambda c: self._purge_tx(c, entity))

    def _purge_tx(self, conn: sqlite3.Connection, entity: str) -> int:
        now = time.time()
        with transaction(conn):
            deleted = conn.execute(
                "DELETE FROM events WHERE entity = ? AND dead_at IS NULL "
                f"AND seq NOT IN ({self._ACTIVE_LEASES})",
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

    # ---- gauges and waiting --------------------------------------------------------------------

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
        return None if ts is None else _dt(ts)

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
