"""The shared durable queue: PostgreSQL tables every replica leases from (``[queue] backend = "postgres"``).

The same semantics as the SQLite queue (bridge/queue/sqlite.py), with every optional capability,
and safe for several bridges at once (docs/queue-and-state.md):

- Per-record order across replicas: a record's ``heads`` row is its lock. ``lease`` takes ready heads
  ``FOR UPDATE SKIP LOCKED`` and moves their ``ready_at`` to the lease's end, so a record is leased
  by one replica at a time while different records go to every replica; settling a lease locks the
  row and checks the token (a stale token settles nothing).
- Enqueue takes a transaction-scoped advisory lock per record (``pg_advisory_xact_lock``) before it
  numbers the record's event, so a record's events are numbered in the order their enqueues commit
  and its head is always its oldest event.
- Dedupe across replicas: ``seen`` has the event id as its primary key; a second replica enqueueing
  the same id waits on the first's insert and then finds it.
- A dead replica's leases run out (``lease_seconds``, by the database's clock) and every replica's
  next ``lease`` takes them; ``reclaim(owner)`` takes them back at once.
- Wake-ups cross replicas: every enqueue, release, replay and reclaim sends ``NOTIFY`` (on commit),
  and each queue ``LISTEN``\\s on its own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql

from bridge.core.events import ChangeEvent
from bridge.queue.base import QueueCapability, QueuedEvent
from bridge.queue.postgres_admin import PostgresQueueAdmin
from bridge.queue.postgres_claim import claim_tx
from bridge.queue.postgres_schema import (
    COMPLETE_SQL,
    ENQUEUE_SQL,
    HELD_SQL,
    LEASE_SQL,
    MIGRATIONS,
    NEXT_READY_SQL,
    NOTIFY_SQL,
    RECLAIM_SQL,
    advance_heads,
    channel,
    lock_heads,
)
from bridge.storage.batcher import TurnBatcher
from bridge.storage.pgconfig import DEFAULT_OPTIONS, PgOptions
from bridge.storage.postgres import PgDatabase

log = logging.getLogger(__name__)

PRUNE_EVERY = 1000  # enqueues between two lazy prunes of the dedupe table
PRUNE_BATCH = 5000  # ids deleted per prune at most


_Row = tuple[str, str, str, str]  # event_id, record_key, entity, body
_Lease = tuple[str, float]  # token, seconds
_Enqueued = tuple[int | None, datetime | None, bool]  # seq (None: seen before), enqueued_at, leased


def _row(event: ChangeEvent) -> _Row:
    return (event.event_id, event.record_key, event.entity, event.model_dump_json())


class PostgresQueue(PostgresQueueAdmin):
    """``QueuePort`` on PostgreSQL tables in one schema, shared by every replica."""

    capabilities = frozenset(QueueCapability)

    def __init__(
        self,
        url: str,
        *,
        schema: str = "dualwrite",
        owner: str | None = None,
        dedupe_retention_s: float = 7 * 86400,
        options: PgOptions = DEFAULT_OPTIONS,
    ) -> None:
        self._db = PgDatabase(url, schema=schema, component="queue", migrations=MIGRATIONS, options=options)
        self._owner = owner or f"anonymous-{secrets.token_hex(8)}"
        self._retention = dedupe_retention_s
        self._since_prune = 0
        self._wake = asyncio.Event()
        self._channel = channel(self._db.schema)
        self._token_prefix = secrets.token_hex(4) + "-"
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._lookups: set[asyncio.Future[float | None]] = set()  # wait()'s next-ready reads in flight
        # One turn's enqueues (webhook calls) and completions (finished changes) go to the database as
        # one function call each: one round trip and one commit per turn, not per call.
        self._enqueues: TurnBatcher[_Row, _Enqueued] = TurnBatcher(lambda rows: self._enqueue(rows, None))
        self._completes: TurnBatcher[QueuedEvent, bool] = TurnBatcher(self._complete)

    @property
    def owner(self) -> str:
        return self._owner

    @property
    def db(self) -> PgDatabase:
        return self._db

    async def open(self) -> None:
        await self._db.open()
        self._listener = asyncio.create_task(self._listen(), name="dualwrite-queue-listen")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), 10.0)

    async def close(self) -> None:
        await self._enqueues.wait_idle()
        await self._completes.wait_idle()
        if self._lookups:
            await asyncio.gather(*self._lookups, return_exceptions=True)
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await self._db.close()

    async def _listen(self) -> None:
        """LISTEN on a connection of its own; another replica's enqueue or release wakes ``wait``.
        A lost connection is opened again (meanwhile ``wait`` still returns when a lease runs out)."""
        delay = 0.5
        while True:
            try:
                async with await AsyncConnection.connect(
                    self._db.url, autocommit=True, application_name=f"dualwrite-listen {self._db.schema}"[:63]
                ) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    self._listening.set()
                    delay = 0.5
                    async for _ in conn.notifies():
                        self._wake.set()
            except psycopg.OperationalError as exc:
                log.warning(
                    "queue wake-ups from %s lost (%s): listening again in %.1fs", self._db.where, exc, delay
                )
                self._wake.set()  # whatever was missed meanwhile: look again
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    # ---- enqueue -------------------------------------------------------------------------------

    async def enqueue(self, event: ChangeEvent) -> bool:
        """Durably add ``event``; False (and nothing added) if its event_id was seen before."""
        return (await self.enqueue_many([event]))[0]

    async def enqueue_many(self, events: Sequence[ChangeEvent]) -> list[bool]:
        """Add several events in one transaction (one commit); a flag per event as ``enqueue``."""
        if not events:
            return []
        out = await self._enqueues.submit([_row(e) for e in events])
        added = [seq is not None for seq, _, _ in out]
        if any(added):
            self._wake.set()
        return added

    async def enqueue_leased(
        self, event: ChangeEvent, lease_seconds: float
    ) -> tuple[bool, QueuedEvent | None]:
        """``enqueue``, leasing the event to the caller in the same transaction when its record has
        no other queued event."""
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        token = self._next_token()
        [(seq, enqueued_at, leased)] = await self._enqueue([_row(event)], (token, lease_seconds))
        if seq is None or enqueued_at is None:
            return False, None
        if not leased:
            self._wake.set()  # behind the record's earlier events: a worker leases it in turn
            return True, None
        return True, QueuedEvent(seq=seq, event=event, attempts=0, lease_token=token, enqueued_at=enqueued_at)

    async def _enqueue(self, rows: list[_Row], lease: _Lease | None) -> list[_Enqueued]:
        """One call of ``dualwrite_enqueue`` (one round trip, its own transaction): per row its seq
        (None: seen before), when it was enqueued, and whether it was leased with ``lease``."""
        self._since_prune += len(rows)
        if self._since_prune >= PRUNE_EVERY:
            self._since_prune = 0
            await self._db.read(self._prune)
        token, seconds = lease if lease is not None else (None, None)
        args = (
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
            [r[3] for r in rows],
            self._retention,
            f"{self._db.schema}|",
            self._channel,
            seconds,
            token,
            self._owner,
        )

        async def call(conn: AsyncConnection[Any]) -> list[tuple[Any, ...]]:
            cur = await conn.execute(ENQUEUE_SQL, args)
            return await cur.fetchall()

        return [
            (None if seq is None else int(seq), at, bool(leased))
            for seq, at, leased in await self._db.call(call)
        ]

    async def _prune(self, conn: AsyncConnection[Any]) -> None:
        """Forget event ids older than the dedupe window, a batch at a time (lazily, on enqueue)."""
        await conn.execute(
            "DELETE FROM seen WHERE event_id IN (SELECT event_id FROM seen "
            "WHERE seen_at < statement_timestamp() - make_interval(secs => %s) "
            "ORDER BY seen_at LIMIT %s FOR UPDATE SKIP LOCKED)",
            (self._retention, PRUNE_BATCH),
        )

    def _next_token(self) -> str:
        return f"{self._token_prefix}{secrets.token_hex(12)}"

    # ---- lease ---------------------------------------------------------------------------------

    async def lease(
        self, max_items: int, lease_seconds: float, *, exclude_entities: Collection[str] = ()
    ) -> list[QueuedEvent]:
        """Take up to ``max_items`` events, at most one per record key, the oldest of each record;
        records another replica holds (or is leasing this instant) are skipped, never waited on."""
        if max_items <= 0:
            return []
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        params = {
            "n": max_items,
            "excluded": sorted(set(exclude_entities)),
            "lease": lease_seconds,
            "prefix": self._token_prefix,
            "owner": self._owner,
        }

        async def tx(conn: AsyncConnection[Any]) -> list[tuple[Any, ...]]:
            cur = await conn.execute(LEASE_SQL, params)
            return await cur.fetchall()

        rows = await self._db.call(tx)  # one statement: its own transaction
        rows.sort(key=lambda r: (r[6], r[0]))  # oldest ready first, as SQL handed them out
        return [
            QueuedEvent(
                seq=int(seq),
                event=ChangeEvent.model_validate_json(body),
                attempts=int(attempts) - 1,
                lease_token=str(token),
                enqueued_at=enqueued_at,
                last_error=last_error,
            )
            for seq, body, attempts, enqueued_at, last_error, token, _ in rows
        ]

    async def claim(self, event: ChangeEvent, lease_seconds: float) -> QueuedEvent | None:
        """Lease ``event`` when it heads its record, free of a live lease or a dead letter, even
        before a release's delay runs out (``LeaseClaim``, bridge/queue/postgres_claim.py)."""
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        token = self._next_token()
        return await self._db.run(lambda conn: claim_tx(conn, event, lease_seconds, token, self._owner))

    # ---- settle a lease ------------------------------------------------------------------------

    async def complete(self, item: QueuedEvent) -> bool:
        """Remove the event for good. False (a no-op) if the lease was lost to another worker."""
        return (await self.complete_many([item]))[0]

    async def complete_many(self, items: Sequence[QueuedEvent]) -> list[bool]:
        """Complete several leased events in one transaction; a flag per item as ``complete``."""
        if not items:
            return []
        return await self._completes.submit(items)

    async def _complete(self, items: list[QueuedEvent]) -> list[bool]:
        args = (
            [i.event.record_key for i in items],
            [i.seq for i in items],
            [i.lease_token for i in items],
        )

        async def call(conn: AsyncConnection[Any]) -> list[bool]:
            cur = await conn.execute(COMPLETE_SQL, args)
            row = await cur.fetchone()
            assert row is not None
            return [bool(done) for done in row[0]]

        return await self._db.call(call)

    async def release(self, item: QueuedEvent, *, delay: float = 0.0, error: str | None = None) -> bool:
        """Give the event back, leasable again after ``delay`` s. False if the lease was lost."""

        async def tx(conn: AsyncConnection[Any]) -> bool:
            if await self._held(conn, item) is None:
                return False
            await conn.execute("UPDATE events SET last_error = %s WHERE seq = %s", (error, item.seq))
            await conn.execute(
                "UPDATE heads SET ready_at = statement_timestamp() + make_interval(secs => %s), "
                "lease_token = NULL, lease_owner = NULL WHERE record_key = %s",
                (max(delay, 0.0), item.event.record_key),
            )
            await conn.execute(NOTIFY_SQL, (self._channel,))
            return True

        ok = await self._db.run(tx)
        if ok:
            self._wake.set()
        return ok

    async def dead_letter(self, item: QueuedEvent, reason: str) -> bool:
        """Park the event; its record's later events wait behind it. False if the lease was lost."""

        async def tx(conn: AsyncConnection[Any]) -> bool:
            if await self._held(conn, item) is None:
                return False
            await conn.execute(
                "UPDATE events SET dead_at = statement_timestamp(), dead_reason = %s WHERE seq = %s",
                (reason, item.seq),
            )
            await conn.execute(
                "UPDATE heads SET ready_at = NULL, lease_token = NULL, lease_owner = NULL "
                "WHERE record_key = %s",
                (item.event.record_key,),
            )
            return True

        return await self._db.run(tx)

    @staticmethod
    async def _held(conn: AsyncConnection[Any], item: QueuedEvent) -> str | None:
        """The map of ``item`` if its lease token still holds the record's head (row locked)."""
        cur = await conn.execute(HELD_SQL, (item.event.record_key, item.seq, item.lease_token))
        row = await cur.fetchone()
        return None if row is None else str(row[0])

    # ---- taking back a dead owner's leases -----------------------------------------------------

    async def reclaim(self, owner: str) -> int:
        """Release every lease ``owner`` holds: leasable again at once. Only for an owner that is gone
        (this bridge's own run before a crash, or a dead replica)."""

        async def tx(conn: AsyncConnection[Any]) -> int:
            cur = await conn.execute(RECLAIM_SQL, (owner,))
            if cur.rowcount:
                await conn.execute(NOTIFY_SQL, (self._channel,))
            return int(cur.rowcount)

        n = await self._db.run(tx)
        if n:
            self._wake.set()
        return n

    # ---- a synchronous change decided ahead of its record's queue ------------------------------

    async def pending_of(self, record_key: str) -> list[ChangeEvent]:
        """The record's queued and leased events (not dead letters), oldest first."""

        async def q(conn: AsyncConnection[Any]) -> list[tuple[Any, ...]]:
            cur = await conn.execute(
                "SELECT body FROM events WHERE record_key = %s AND dead_at IS NULL ORDER BY seq",
                (record_key,),
            )
            return await cur.fetchall()

        return [ChangeEvent.model_validate_json(body) for (body,) in await self._db.read(q)]

    async def withdraw(self, event_id: str) -> bool:
        """Remove a queued, not leased event; False if it is leased, dead-lettered or not queued."""

        async def tx(conn: AsyncConnection[Any]) -> bool:
            cur = await conn.execute(
                "SELECT record_key FROM events WHERE event_id = %s AND dead_at IS NULL", (event_id,)
            )
            found = await cur.fetchone()
            if found is None:
                return False
            record_key = str(found[0])
            await lock_heads(conn, [record_key])
            cur = await conn.execute(
                "SELECT seq FROM events WHERE event_id = %s AND dead_at IS NULL", (event_id,)
            )
            row = await cur.fetchone()
            if row is None:
                return False  # settled meanwhile
            seq = int(row[0])
            cur = await conn.execute(
                "SELECT head_seq, lease_token FROM heads WHERE record_key = %s", (record_key,)
            )
            head = await cur.fetchone()
            is_head = head is not None and int(head[0]) == seq
            if is_head and head is not None and head[1] is not None:
                return False  # leased (an expired lease's worker may still be applying it)
            await conn.execute("DELETE FROM events WHERE seq = %s", (seq,))
            if is_head:
                await advance_heads(conn, [record_key])
            return True

        return await self._db.run(tx)

    # ---- waiting --------------------------------------------------------------------------------

    def _lookup_done(self, lookup: asyncio.Future[float | None]) -> None:
        self._lookups.discard(lookup)
        if not lookup.cancelled() and lookup.exception() is not None:
            log.debug("next-ready lookup failed: %s", lookup.exception())

    async def wait(self, timeout: float) -> None:
        """Return on an enqueue/release/replay/reclaim here or on another replica, when a lease or
        delay ends, or after ``timeout``. May return early (callers just lease again)."""
        if not self._wake.is_set():

            async def q(conn: AsyncConnection[Any]) -> float | None:
                cur = await conn.execute(NEXT_READY_SQL)
                row = await cur.fetchone()
                return None if row is None or row[0] is None else float(row[0])

            # shielded: a worker cancels its wait whenever other work wakes it first, and a cancelled
            # query costs a cancel request to the server; this one just finishes in the background
            lookup = asyncio.ensure_future(self._db.read(q))
            self._lookups.add(lookup)
            lookup.add_done_callback(self._lookup_done)
            try:
                nxt = await asyncio.shield(lookup)
            except psycopg.Error:
                nxt = None  # the database is away: lease says so (and readiness); here just wait
            if nxt is not None:
                timeout = min(timeout, max(nxt, 0.0) + 0.001)
            try:
                await asyncio.wait_for(self._wake.wait(), max(timeout, 0.0))
            except TimeoutError:
                return
        self._wake.clear()
