"""The queue port: what the writer needs from a durable queue.

Implementations: ``bridge.queue.sqlite`` (embedded default); Azure Service Bus (sessions = record
keys) next. One contract suite (tests/contract/test_queue_contract.py) runs against every one.

Guarantees every implementation gives:
- ``enqueue`` returns only once the event is durable; a repeated ``event_id`` (queued or already
  completed within the dedupe window) is not queued again and returns False.
- ``lease`` hands out at most one event per record key at a time, always the oldest of that record
  (per-record order), while events of different records are leased in parallel.
- A lease expires: an event leased by a worker that died is handed out again after ``lease_seconds``.
- ``complete`` removes the event for good; ``release`` makes it available again after ``delay``;
  ``dead_letter`` parks it (the record's later events stay behind it until it is replayed or discarded).
- A stale lease (expired, and the event leased again by another worker) settles nothing: ``complete``,
  ``release`` and ``dead_letter`` then return False and leave the new lease alone.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from bridge.core.events import ChangeEvent


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    seq: int  # queue-assigned, increasing in enqueue order
    event: ChangeEvent
    attempts: int  # how many times it was leased before this lease
    lease_token: str
    enqueued_at: datetime
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    seq: int
    event: ChangeEvent
    attempts: int
    reason: str
    dead_lettered_at: datetime


@runtime_checkable
class QueuePort(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def enqueue(self, event: ChangeEvent) -> bool:
        """Durably add ``event``; False (and nothing added) if its event_id was seen before."""
        ...

    async def enqueue_many(self, events: Sequence[ChangeEvent]) -> list[bool]:
        """``enqueue`` for several events in one durable step; one flag per event, in order."""
        ...

    async def enqueue_leased(
        self, event: ChangeEvent, lease_seconds: float
    ) -> tuple[bool, QueuedEvent | None]:
        """``enqueue``, and when ``event`` is at once its record's only queued event, lease it to the
        caller in the same durable step (a lease would hand it out next anyway). Returns (added,
        the lease or None: the record has earlier events, or the event was seen before)."""
        ...

    async def pending_of(self, record_key: str) -> list[ChangeEvent]:
        """The record's queued and leased events (not dead letters), oldest first: what a
        synchronous change arriving now would wait behind (``bridge.engine.syncgate``)."""
        ...

    async def withdraw(self, event_id: str) -> bool:
        """Remove a queued event that is not leased (a synchronous change decided ahead of its
        record's queue); False (nothing done) if it is leased, dead-lettered or not queued."""
        ...

    async def lease(
        self, max_items: int, lease_seconds: float, *, exclude_entities: Collection[str] = ()
    ) -> list[QueuedEvent]:
        """Take up to ``max_items`` events, at most one per record key, the oldest of each record.

        Records whose oldest event is leased, delayed or dead-lettered are skipped;
        ``exclude_entities`` skips whole maps (paused)."""
        ...

    async def complete(self, item: QueuedEvent) -> bool:
        """Remove the event for good; False (nothing done) if the lease was lost."""
        ...

    async def complete_many(self, items: Sequence[QueuedEvent]) -> list[bool]:
        """``complete`` for several leased events in one durable step; one flag per item."""
        ...

    async def release(self, item: QueuedEvent, *, delay: float = 0.0, error: str | None = None) -> bool:
        """Give the event back (attempts + 1), leasable again after ``delay`` seconds."""
        ...

    async def dead_letter(self, item: QueuedEvent, reason: str) -> bool: ...

    async def dead_letters(self, *, offset: int = 0, limit: int = 100) -> list[DeadLetter]: ...

    async def replay(self, seqs: Collection[int] | None = None) -> int:
        """Put dead letters back in the queue (None = all); returns how many."""
        ...

    async def discard(self, seqs: Collection[int] | None = None) -> int:
        """Drop dead letters for good (None = all); returns how many."""
        ...

    async def drain(self, entity: str, limit: int) -> list[QueuedEvent]:
        """Remove and return up to ``limit`` queued (not dead-lettered, not leased) events of one map,
        oldest first (resume "skip to live, keep the backlog" turns them into retryable failures)."""
        ...

    async def purge(self, entity: str) -> int:
        """Drop every queued (not dead-lettered, not leased) event of one map; returns how many."""
        ...

    async def depth(self, entity: str | None = None) -> int:
        """Queued events (not dead letters), optionally for one map."""
        ...

    async def oldest_enqueued_at(self, entity: str | None = None) -> datetime | None: ...

    async def wait(self, timeout: float) -> None:
        """Return when new work may be available (an enqueue or release here), or after ``timeout``."""
        ...
