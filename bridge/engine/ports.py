"""The engine's ports: what the adapters above it call, and the answers they get back.

- ``EventSink`` / ``SinkResult``: the listeners hand every notification to the engine (``Engine.submit``)
  and turn its answer into the webhook's HTTP status.
- ``Controller`` with ``ResumeMode``, ``ResyncResult`` and ``Readiness``: the operations API and the
  dashboard steer the engine through it (``bridge.engine.control.EngineController`` implements it).
- The two systems, as the engine reaches them: ``bridge.engine.sideports`` (``Side``, ``DataverseSide``,
  ``Sides``; ``bridge.systems.sides`` implements them).

Adapters import this module; it imports only the core, so every arrow points down.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from bridge.core.events import ChangeEvent, System
from bridge.core.mapping import EntityMap
from bridge.state.base import ActivityKind


@dataclass(frozen=True, slots=True)
class SinkResult:
    """How a submitted event fared; ``status`` becomes the webhook's HTTP answer.

    E.g. 202 durable (async), 200 applied (sync), 502 rejected by the other system (sync: Dataverse
    rolls back), 503 queue unavailable or the sync budget spent."""

    accepted: bool
    status: int
    message: str = ""


class EventSink(Protocol):
    async def submit(self, event: ChangeEvent) -> SinkResult:
        """Async mode: return once the event is durable. Sync mode: once applied or failed."""
        ...


class ResumeMode(StrEnum):
    CATCH_UP = "catch-up"  # apply the backlog first, then live changes (in order)
    SKIP_KEEP = "skip-keep"  # go live now; the backlog becomes retryable failures (replayable)
    SKIP_DISCARD = "skip-discard"  # go live now; the backlog is dropped


@dataclass(frozen=True, slots=True)
class ResyncResult:
    entity: str
    company: str
    key: str
    from_side: System
    outcome: str  # "applied", "unchanged", "deleted", "failed"
    message: str = ""


@dataclass(frozen=True, slots=True)
class Readiness:
    queue: bool
    cds: bool
    scm: bool
    tokens: bool
    details: dict[str, str]
    state: bool = True  # the state store answers (a shared database may be away while the queue is not)
    replica: str = ""  # this replica's lease owner id (several replicas share one queue)
    stopping: bool = False  # shutting down: handing its leases back, taking no new work

    @property
    def ready(self) -> bool:
        return self.queue and self.state and self.cds and self.scm and self.tokens and not self.stopping


class Controller(Protocol):
    """``actor`` names who acted (the admin session or the API token, ``bridge.ops.actor``); it goes
    into the failures' life cycle and the activity log. None = the bridge itself."""

    def map_names(self) -> list[str]: ...

    async def pause(self, entity: str | None, reason: str, *, actor: str | None = None) -> None:
        """Pause one map (None = all). Changes keep being received and queued; nothing is lost."""
        ...

    async def resume(self, entity: str | None, mode: ResumeMode, *, actor: str | None = None) -> int:
        """Resume one map (None = all) in ``mode``; returns how many backlog events the mode touched."""
        ...

    async def start(self, entity: str, *, actor: str | None = None) -> None:
        """Run a stopped, paused or never started map (its held backlog first)."""
        ...

    async def stop(self, entity: str, reason: str, *, actor: str | None = None) -> None:
        """Stop a map: notifications acknowledged and counted, nothing queued."""
        ...

    async def initializing(self, entity: str, reason: str, *, actor: str | None = None) -> None:
        """Mark the map initializing (its initial sync runs): live changes queue, held, until ``start``."""
        ...

    async def note(
        self, entity: str, kind: ActivityKind, message: str = "", *, actor: str | None = None
    ) -> None:
        """Add an entry to the map's activity log (e.g. an alert that fired)."""
        ...

    async def resync(
        self, entity: str, company: str, key: str, from_side: System, *, actor: str | None = None
    ) -> ResyncResult:
        """Read the record on ``from_side`` and write it to the other side now (or delete it there)."""
        ...

    async def retry_failure(self, failure_id: int, *, actor: str | None = None) -> bool:
        """Re-enqueue the change kept with a retryable failure; False if it has none."""
        ...

    async def discard_failure(self, failure_id: int, *, actor: str | None = None) -> bool:
        """Mark an open or retrying failure discarded; False if there is none such."""
        ...

    async def replay_dead_letters(self, seqs: list[int] | None, *, actor: str | None = None) -> int:
        """Put dead letters (None = all) back in the queue; their failures become retrying."""
        ...

    async def discard_dead_letters(self, seqs: list[int] | None, *, actor: str | None = None) -> int:
        """Drop dead letters (None = all); their failures become discarded."""
        ...

    async def readiness(self) -> Readiness: ...


# ---- parked conflicts (conflict_policy: manual; bridge.engine.parking) ---------------------------


@dataclass(frozen=True, slots=True)
class ConflictResolution:
    """What resolving a parked conflict did."""

    id: int
    outcome: str  # "resolved" | "not-found" | "not-open" | "invalid" | "failed"
    message: str
    winner: System | None = None


@runtime_checkable
class ConflictResolver(Protocol):
    """The admin action behind ``POST /api/conflicts/{id}/resolve`` (``EngineController``)."""

    def conflict_map(self, entity: str) -> EntityMap | None:
        """The loaded map of a parked conflict (its field pairs, for the side-by-side view)."""
        ...

    async def resolve_conflict(
        self, conflict_id: int, winner: System, edits: Mapping[str, Any], by: str
    ) -> ConflictResolution:
        """Write the chosen version (the winner's row with ``edits``) to both systems."""
        ...
