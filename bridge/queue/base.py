"""The queue ports: the work queue the engine leases from, and the administration of that queue.

Two protocols, one per kind of caller:
- ``WorkQueue``: enqueue, lease, complete, release with a delay, dead-letter, wait (the engine).
- ``QueueAdmin``: depth, drain, purge, dead letters, replay, discard (operations, pause/resume).
``QueuePort`` is both, for the composition root and callers that need both.

What a backend may lack is an optional capability (``QueueCapability``), declared in its
``capabilities`` and never faked: ``leasing(queue)`` / ``reclaiming(queue)`` give the optional
protocol or None, and a per-map figure asked of a backend without ``MAP_FIGURES`` raises
``CapabilityMissing`` instead of inventing a number.

Implementations: ``bridge.queue.sqlite`` (embedded default), ``bridge.queue.memory`` (the in-memory
double), ``bridge.queue.servicebus`` (Azure Service Bus, a session per record; it lacks every optional
capability, see docs/queue-and-state.md). ``bridge.queue.factory`` builds one from the
settings; one contract suite (tests/contract/test_queue_contract.py) runs against every one.

Guarantees every implementation gives:
- ``enqueue`` returns only once the event is durable; a repeated ``event_id`` (queued or already
  completed within the dedupe window) is not queued again, and returns False with ``DEDUPE_ANSWER``.
- ``lease`` hands out at most one event per record key at a time, always the oldest of that record
  (per-record order), while events of different records are leased in parallel.
- A lease expires: an event leased by a worker that died is handed out again after ``lease_seconds``.
- ``complete`` removes the event for good; ``release`` makes it available again after ``delay``;
  ``dead_letter`` parks it (with ``ORDERED_DEAD_LETTERS``, the record's later events stay behind it
  until it is replayed or discarded).
- A stale lease (expired, and the event leased again by another worker) settles nothing: ``complete``,
  ``release`` and ``dead_letter`` then return False and leave the new lease alone.
- A lease names its owner (the process that took it, ``bridge.storage.owner``): with ``RECLAIM``,
  ``reclaim(owner)`` hands that owner's leases out again at once (a restarted bridge takes back what
  it held when it was killed, instead of waiting for the leases to run out).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, cast, runtime_checkable

from bridge.core.errors import DualWriteError
from bridge.core.events import ChangeEvent


class QueueCapability(StrEnum):
    """What a queue backend may or may not do; each backend lists what it does in ``capabilities``."""

    ENQUEUE_LEASED = "enqueue_leased"  # ``LeasingEnqueue``: enqueue and lease in one durable step
    MAP_FIGURES = "map_figures"  # ``depth(entity)`` / ``oldest_enqueued_at(entity)`` for one map
    RECLAIM = "reclaim"  # ``LeaseReclaim``: leases name their owner; an owner's can be taken back
    DEDUPE_ANSWER = "dedupe_answer"  # ``enqueue`` answers False for a repeated event id (else always True)
    ORDERED_DEAD_LETTERS = "ordered_dead_letters"  # a dead letter holds back its record; replay = head
    QUEUE_AGE = "queue_age"  # ``oldest_enqueued_at()`` at all
    RECORD_VIEW = "record_view"  # ``pending_of`` / ``withdraw``: one record's waiting events
    MAP_BACKLOG = "map_backlog"  # ``drain`` / ``purge`` of one map's backlog
    CLAIM = "claim"  # ``LeaseClaim``: lease one named event when its record's turn has come


class CapabilityMissing(DualWriteError):
    """Asked a backend for something it declared it cannot do (see ``capabilities``)."""

    def __init__(self, backend: object, capability: QueueCapability) -> None:
        super().__init__(f"{type(backend).__name__} cannot do {capability.value}")
        self.capability = capability


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
class WorkQueue(Protocol):
    """What the engine needs: a durable queue leased in per-record order."""

    capabilities: frozenset[QueueCapability]

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def enqueue(self, event: ChangeEvent) -> bool:
        """Durably add ``event``; nothing added if its event_id was seen before, which it answers with
        False under ``DEDUPE_ANSWER`` (without it, True: accepted, and dropped as a repeat)."""
        ...

    async def enqueue_many(self, events: Sequence[ChangeEvent]) -> list[bool]:
        """``enqueue`` for several events in one durable step; one flag per event, in order."""
        ...

    async def pending_of(self, record_key: str) -> list[ChangeEvent]:
        """The record's queued and leased events (not dead letters), oldest first: what a
        synchronous change arriving now would wait behind (``bridge.engine.syncgate``). Only with
        ``RECORD_VIEW`` (else ``CapabilityMissing``), like ``withdraw``."""
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

    async def wait(self, timeout: float) -> None:
        """Return when new work may be available (an enqueue or release here), or after ``timeout``."""
        ...


@runtime_checkable
class QueueAdmin(Protocol):
    """What operations need: the queue's figures, its dead letters, and a paused map's backlog."""

    capabilities: frozenset[QueueCapability]

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def dead_letters(self, *, offset: int = 0, limit: int = 100) -> list[DeadLetter]: ...

    async def replay(self, seqs: Collection[int] | None = None) -> int:
        """Put dead letters back in the queue (None = all); returns how many."""
        ...

    async def discard(self, seqs: Collection[int] | None = None) -> int:
        """Drop dead letters for good (None = all); returns how many."""
        ...

    async def drain(self, entity: str, limit: int) -> list[QueuedEvent]:
        """Remove and return up to ``limit`` queued (not dead-lettered, not leased) events of one map,
        oldest first (resume "skip to live, keep the backlog" turns them into retryable failures).
        Only with ``MAP_BACKLOG`` (else ``CapabilityMissing``), like ``purge``."""
        ...

    async def purge(self, entity: str) -> int:
        """Drop every queued (not dead-lettered, not leased) event of one map; returns how many."""
        ...

    async def depth(self, entity: str | None = None) -> int:
        """Queued events (not dead letters); for one map only with ``MAP_FIGURES`` (else
        ``CapabilityMissing``)."""
        ...

    async def oldest_enqueued_at(self, entity: str | None = None) -> datetime | None:
        """When the oldest queued event was enqueued; at all only with ``QUEUE_AGE``, for one map only
        with ``MAP_FIGURES`` too."""
        ...


@runtime_checkable
class QueuePort(WorkQueue, QueueAdmin, Protocol):
    """Both sides of one queue: what a backend module provides and the composition root holds."""


@runtime_checkable
class LeasingEnqueue(Protocol):
    """Optional (``QueueCapability.ENQUEUE_LEASED``): enqueue and lease in one durable step."""

    async def enqueue_leased(
        self, event: ChangeEvent, lease_seconds: float
    ) -> tuple[bool, QueuedEvent | None]:
        """``enqueue``, and when ``event`` is at once its record's only queued event, lease it to the
        caller in the same durable step (a lease would hand it out next anyway). Returns (added,
        the lease or None: the record has earlier events, or the event was seen before)."""
        ...


@runtime_checkable
class LeaseReclaim(Protocol):
    """Optional (``QueueCapability.RECLAIM``): every lease names its owner, and an owner's leases can
    be handed out again before they run out."""

    @property
    def owner(self) -> str:
        """The owner this queue names on the leases it hands out."""
        ...

    async def reclaim(self, owner: str) -> int:
        """Release every lease ``owner`` holds (leasable again at once, as if each had run out);
        returns how many. Only for an owner that is gone: its own earlier run, or a dead replica."""
        ...


async def map_figures(queue: QueueAdmin, entity: str) -> tuple[int | None, datetime | None]:
    """One map's queue depth and oldest enqueue time, or (None, None) where the backend cannot
    count per map (``MAP_FIGURES``): the dashboard shows "unknown", never a made-up zero."""
    if QueueCapability.MAP_FIGURES not in queue.capabilities:
        return None, None
    return await queue.depth(entity), await queue.oldest_enqueued_at(entity)


@runtime_checkable
class LeaseClaim(Protocol):
    """Optional (``QueueCapability.CLAIM``): lease one named event as soon as its record's turn has
    come, whatever delay a release put on it. The replica that holds a synchronous originator's
    webhook call takes its change so; the other replicas hand such a change back with a delay that
    keeps their own leases off it (``bridge.engine.ownership``; docs/architecture.md)."""

    async def claim(self, event: ChangeEvent, lease_seconds: float) -> QueuedEvent | None:
        """Lease the queued ``event`` (found by its record key and event id) to the caller when it
        is its record's oldest event, no live lease holds the record and no dead letter holds it
        back, even before a release's delay has run out; None (nothing done) otherwise."""
        ...


def claiming(queue: WorkQueue) -> LeaseClaim | None:
    """``queue`` as a ``LeaseClaim`` when it declares ``CLAIM``, else None."""
    if QueueCapability.CLAIM in queue.capabilities:
        return cast(LeaseClaim, queue)
    return None


def leasing(queue: WorkQueue) -> LeasingEnqueue | None:
    """``queue`` as a ``LeasingEnqueue`` when it declares ``ENQUEUE_LEASED``, else None."""
    if QueueCapability.ENQUEUE_LEASED in queue.capabilities:
        return cast(LeasingEnqueue, queue)
    return None


def reclaiming(queue: WorkQueue) -> LeaseReclaim | None:
    """``queue`` as a ``LeaseReclaim`` when it declares ``RECLAIM``, else None."""
    if QueueCapability.RECLAIM in queue.capabilities:
        return cast(LeaseReclaim, queue)
    return None
