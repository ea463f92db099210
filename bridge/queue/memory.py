"""The in-memory queue: the ``QueuePort`` double for tests, with the same guarantees as the SQLite
queue except surviving the process (it passes the same contract suite).

Its data lives in a ``MemoryQueueData`` that outlives ``close()``: a queue opened again on the same
data (``bridge.queue.factory`` keys it by the data directory) sees what the last one left, leases
included, which is what a restart after a crash looks like to a durable backend. Not for production:
nothing survives the process.

``capabilities`` may be narrowed (tests of what callers do with a backend that lacks one); the
operations of a capability not declared then raise ``CapabilityMissing``, as a backend without it
would have nothing to offer.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bridge.core.events import ChangeEvent
from bridge.queue.base import CapabilityMissing, DeadLetter, QueueCapability, QueuedEvent


@dataclass(slots=True)
class _Event:
    seq: int
    event: ChangeEvent
    enqueued_at: float
    attempts: int = 0  # times leased
    last_error: str | None = None
    dead_at: float | None = None
    dead_reason: str | None = None


@dataclass(slots=True)
class _Head:
    """A record's oldest event and when it may next be leased (None: blocked by a dead letter)."""

    entity: str
    ready_at: float | None
    token: str | None = None
    owner: str | None = None

    def leased_at(self, now: float) -> bool:
        return self.token is not None and self.ready_at is not None and self.ready_at > now


@dataclass
class MemoryQueueData:
    """Everything a ``MemoryQueue`` holds; shared by the queues opened on it, one at a time."""

    events: dict[int, _Event] = field(default_factory=dict)
    records: dict[str, list[int]] = field(default_factory=dict)  # record key -> its seqs, oldest first
    heads: dict[str, _Head] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)  # event id -> first enqueued (dedupe)
    next_seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class MemoryQueue:
    """``QueuePort`` in this process's memory (tests)."""

    def __init__(
        self,
        data: MemoryQueueData | None = None,
        *,
        owner: str = "memory",
        dedupe_retention_s: float = 7 * 86400,
        capabilities: Iterable[QueueCapability] = tuple(QueueCapability),
    ) -> None:
        self.data = data if data is not None else MemoryQueueData()
        self.capabilities = frozenset(capabilities)
        self._owner = owner
        self._retention = dedupe_retention_s
        self._wake = asyncio.Event()
        self._tokens = itertools.count(1)
        self._token_prefix = f"{owner}-{id(self):x}-"

    @property
    def owner(self) -> str:
        return self._owner

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _require(self, capability: QueueCapability) -> None:
        if capability not in self.capabilities:
            raise CapabilityMissing(self, capability)

    # ---- enqueue -------------------------------------------------------------------------------

    async def enqueue(self, event: ChangeEvent) -> bool:
        return (await self.enqueue_many([event]))[0]

    async def enqueue_many(self, events: Sequence[ChangeEvent]) -> list[bool]:
        added = [self._add(event, None) is not None for event in events]
        if any(added):
            self._wake.set()
        if QueueCapability.DEDUPE_ANSWER not in self.capabilities:
            return [True] * len(added)  # still deduplicated, but silent about it, as the broker is
        return added

    async def enqueue_leased(
        self, event: ChangeEvent, lease_seconds: float
    ) -> tuple[bool, QueuedEvent | None]:
        self._require(QueueCapability.ENQUEUE_LEASED)
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        entry = self._add(event, lease_seconds)
        if entry is None:
            return False, None
        head = self.data.heads[event.record_key]
        if self.data.records[event.record_key][0] != entry.seq or head.token is None:
            self._wake.set()  # behind the record's earlier events: leased in turn
            return True, None
        return True, QueuedEvent(entry.seq, event, 0, head.token, _dt(entry.enqueued_at))

    def _add(self, event: ChangeEvent, lease_seconds: float | None) -> _Event | None:
        now = time.time()
        first = self.data.seen.get(event.event_id)
        if first is not None and first >= now - self._retention:
            return None
        self.data.seen[event.event_id] = now
        entry = _Event(next(self.data.next_seq), event, now)
        self.data.events[entry.seq] = entry
        key = event.record_key
        self.data.records.setdefault(key, []).append(entry.seq)
        if key not in self.data.heads:
            if lease_seconds is None:
                self.data.heads[key] = _Head(event.entity, now)
            else:  # the record's only event: leased to the caller as ``lease`` would
                entry.attempts = 1
                self.data.heads[key] = _Head(event.entity, now + lease_seconds, self._token(), self._owner)
        return entry

    def _token(self) -> str:
        return f"{self._token_prefix}{next(self._tokens):x}"

    # ---- lease and settle ----------------------------------------------------------------------

    async def lease(
        self, max_items: int, lease_seconds: float, *, exclude_entities: Collection[str] = ()
    ) -> list[QueuedEvent]:
        if max_items <= 0:
            return []
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        now = time.time()
        excluded = frozenset(exclude_entities)
        ready = sorted(
            (head.ready_at, self.data.records[key][0], key)
            for key, head in self.data.heads.items()
            if head.ready_at is not None and head.ready_at <= now and head.entity not in excluded
        )
        out: list[QueuedEvent] = []
        for _, seq, key in ready[:max_items]:
            head, entry = self.data.heads[key], self.data.events[seq]
            head.ready_at, head.token, head.owner = now + lease_seconds, self._token(), self._owner
            entry.attempts += 1
            out.append(
                QueuedEvent(
                    seq, entry.event, entry.attempts - 1, head.token, _dt(entry.enqueued_at), entry.last_error
                )
            )
        return out

    async def claim(self, event: ChangeEvent, lease_seconds: float) -> QueuedEvent | None:
        self._require(QueueCapability.CLAIM)
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        now, key = time.time(), event.record_key
        head, seqs = self.data.heads.get(key), self.data.records.get(key)
        if head is None or not seqs or head.ready_at is None or head.leased_at(now):
            return None  # nothing queued, a dead letter holds the record, or a live lease
        entry = self.data.events[seqs[0]]
        if entry.event.event_id != event.event_id or entry.dead_at is not None:
            return None  # earlier events of the record go first
        head.ready_at, head.token, head.owner = now + lease_seconds, self._token(), self._owner
        entry.attempts += 1
        return QueuedEvent(
            entry.seq, entry.event, entry.attempts - 1, head.token, _dt(entry.enqueued_at), entry.last_error
        )

    def _held(self, item: QueuedEvent) -> _Head | None:
        key = item.event.record_key
        head = self.data.heads.get(key)
        if head is None or head.token != item.lease_token or self.data.records[key][0] != item.seq:
            return None
        return head

    async def complete(self, item: QueuedEvent) -> bool:
        return (await self.complete_many([item]))[0]

    async def complete_many(self, items: Sequence[QueuedEvent]) -> list[bool]:
        done: list[bool] = []
        for item in items:
            if self._held(item) is None:
                done.append(False)
                continue
            self._remove(item.seq)
            done.append(True)
        return done

    async def release(self, item: QueuedEvent, *, delay: float = 0.0, error: str | None = None) -> bool:
        head = self._held(item)
        if head is None:
            return False
        self.data.events[item.seq].last_error = error
        head.ready_at, head.token, head.owner = time.time() + max(delay, 0.0), None, None
        self._wake.set()
        return True

    async def dead_letter(self, item: QueuedEvent, reason: str) -> bool:
        head = self._held(item)
        if head is None:
            return False
        entry = self.data.events[item.seq]
        entry.dead_at, entry.dead_reason = time.time(), reason
        head.ready_at, head.token, head.owner = None, None, None
        return True

    def _remove(self, seq: int) -> None:
        """Drop one event; when it was its record's head, the next event becomes the head."""
        entry = self.data.events.pop(seq)
        key = entry.event.record_key
        seqs = self.data.records[key]
        was_head = seqs[0] == seq
        seqs.remove(seq)
        if not seqs:
            del self.data.records[key]
            self.data.heads.pop(key, None)
        elif was_head:
            nxt = self.data.events[seqs[0]]
            self.data.heads[key] = _Head(entry.event.entity, nxt.enqueued_at)

    async def pending_of(self, record_key: str) -> list[ChangeEvent]:
        self._require(QueueCapability.RECORD_VIEW)
        seqs = self.data.records.get(record_key, [])
        return [e.event for e in (self.data.events[s] for s in seqs) if e.dead_at is None]

    async def withdraw(self, event_id: str) -> bool:
        self._require(QueueCapability.RECORD_VIEW)
        entry = next(
            (e for e in self.data.events.values() if e.event.event_id == event_id and e.dead_at is None), None
        )
        if entry is None:
            return False
        key = entry.event.record_key
        head = self.data.heads.get(key)
        if self.data.records[key][0] == entry.seq and head is not None and head.token is not None:
            return False  # leased (an expired lease's worker may still be applying it)
        self._remove(entry.seq)
        self._wake.set()
        return True

    async def reclaim(self, owner: str) -> int:
        self._require(QueueCapability.RECLAIM)
        now, n = time.time(), 0
        for head in self.data.heads.values():
            if head.owner == owner:
                head.ready_at = now if head.ready_at is None else min(head.ready_at, now)
                head.token, head.owner = None, None
                n += 1
        if n:
            self._wake.set()
        return n

    async def wait(self, timeout: float) -> None:
        if not self._wake.is_set():
            now = time.time()
            later = [
                h.ready_at for h in self.data.heads.values() if h.ready_at is not None and h.ready_at > now
            ]
            if later:
                timeout = min(timeout, min(later) - now + 0.001)
            try:
                await asyncio.wait_for(self._wake.wait(), max(timeout, 0.0))
            except TimeoutError:
                return
        self._wake.clear()

    # ---- administration ------------------------------------------------------------------------

    def _dead(self) -> list[_Event]:
        return sorted((e for e in self.data.events.values() if e.dead_at is not None), key=lambda e: e.seq)

    async def dead_letters(self, *, offset: int = 0, limit: int = 100) -> list[DeadLetter]:
        page = self._dead()[max(offset, 0) : max(offset, 0) + max(limit, 0)]
        return [
            DeadLetter(e.seq, e.event, e.attempts, e.dead_reason or "", _dt(e.dead_at or 0.0)) for e in page
        ]

    def _dead_targets(self, seqs: Collection[int] | None) -> list[_Event]:
        wanted = None if seqs is None else set(seqs)
        return [e for e in self._dead() if wanted is None or e.seq in wanted]

    async def replay(self, seqs: Collection[int] | None = None) -> int:
        targets = self._dead_targets(seqs)
        now = time.time()
        for entry in targets:
            entry.dead_at, entry.dead_reason, entry.attempts = None, None, 0
            self.data.heads[entry.event.record_key].ready_at = now
        if targets:
            self._wake.set()
        return len(targets)

    async def discard(self, seqs: Collection[int] | None = None) -> int:
        targets = self._dead_targets(seqs)
        for entry in targets:
            self._remove(entry.seq)
        return len(targets)

    def _movable(self, entity: str, now: float) -> list[_Event]:
        """A map's queued events that no active lease holds and that are not dead, oldest first."""
        out = []
        for entry in sorted(self.data.events.values(), key=lambda e: e.seq):
            if entry.event.entity != entity or entry.dead_at is not None:
                continue
            key = entry.event.record_key
            head = self.data.heads[key]
            if self.data.records[key][0] == entry.seq and head.leased_at(now):
                continue
            out.append(entry)
        return out

    async def drain(self, entity: str, limit: int) -> list[QueuedEvent]:
        self._require(QueueCapability.MAP_BACKLOG)
        if limit <= 0:
            return []
        taken = self._movable(entity, time.time())[:limit]
        for entry in taken:
            self._remove(entry.seq)
        return [QueuedEvent(e.seq, e.event, e.attempts, "", _dt(e.enqueued_at), e.last_error) for e in taken]

    async def purge(self, entity: str) -> int:
        self._require(QueueCapability.MAP_BACKLOG)
        taken = self._movable(entity, time.time())
        for entry in taken:
            self._remove(entry.seq)
        return len(taken)

    def _queued(self, entity: str | None) -> list[_Event]:
        if entity is not None:
            self._require(QueueCapability.MAP_FIGURES)
        return [
            e
            for e in self.data.events.values()
            if e.dead_at is None and (entity is None or e.event.entity == entity)
        ]

    async def depth(self, entity: str | None = None) -> int:
        return len(self._queued(entity))

    async def oldest_enqueued_at(self, entity: str | None = None) -> datetime | None:
        self._require(QueueCapability.QUEUE_AGE)
        queued = self._queued(entity)
        return None if not queued else _dt(min(queued, key=lambda e: e.seq).enqueued_at)
