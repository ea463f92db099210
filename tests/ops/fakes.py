"""A Controller that records calls and keeps map states in the real StatePort, like the writer does."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bridge.core.events import System
from bridge.core.mapping import EntityMap
from bridge.engine.ports import ConflictResolution, Readiness, ResumeMode, ResyncResult
from bridge.queue.base import QueuePort
from bridge.state.base import Activity, ActivityKind, FailureState, MapState, MapStatus, StatePort

MAPS = ["asset", "warehouse"]


@dataclass
class FakeController:
    state: StatePort
    maps: list[str] = field(default_factory=lambda: list(MAPS))
    calls: list[tuple[str, Any]] = field(default_factory=list)
    retryable: set[int] = field(default_factory=set)
    ready: bool = True
    resync_outcome: str = "applied"
    resolve_outcome: str = "resolved"
    queue: QueuePort | None = None  # dead-letter replay and discard go to it
    actors: list[str | None] = field(default_factory=list)  # who acted, call by call

    def map_names(self) -> list[str]:
        return list(self.maps)

    async def pause(self, entity: str | None, reason: str, *, actor: str | None = None) -> None:
        self.calls.append(("pause", (entity, reason)))
        self.actors.append(actor)
        for name in [entity] if entity else self.maps:
            await self.state.set_map_state(MapState(name, MapStatus.PAUSED, reason, datetime.now(UTC)))

    async def resume(self, entity: str | None, mode: ResumeMode, *, actor: str | None = None) -> int:
        self.calls.append(("resume", (entity, mode)))
        self.actors.append(actor)
        for name in [entity] if entity else self.maps:
            await self.state.set_map_state(MapState(name, MapStatus.RUNNING, None, datetime.now(UTC)))
        return 3

    async def resync(
        self, entity: str, company: str, key: str, from_side: System, *, actor: str | None = None
    ) -> ResyncResult:
        self.calls.append(("resync", (entity, company, key, from_side)))
        self.actors.append(actor)
        message = "SCM said no" if self.resync_outcome == "failed" else ""
        return ResyncResult(entity, company, key, from_side, self.resync_outcome, message)

    async def retry_failure(self, failure_id: int, *, actor: str | None = None) -> bool:
        self.calls.append(("retry", failure_id))
        self.actors.append(actor)
        return failure_id in self.retryable

    async def _status(self, entity: str, status: MapStatus, reason: str | None, actor: str | None) -> None:
        self.actors.append(actor)
        await self.state.set_map_state(MapState(entity, status, reason, datetime.now(UTC)))

    async def start(self, entity: str, *, actor: str | None = None) -> None:
        self.calls.append(("start", entity))
        await self._status(entity, MapStatus.RUNNING, None, actor)

    async def stop(self, entity: str, reason: str, *, actor: str | None = None) -> None:
        self.calls.append(("stop", (entity, reason)))
        await self._status(entity, MapStatus.STOPPED, reason, actor)

    async def initializing(self, entity: str, reason: str, *, actor: str | None = None) -> None:
        self.calls.append(("initializing", (entity, reason)))
        await self._status(entity, MapStatus.INITIALIZING, reason, actor)

    async def note(
        self, entity: str, kind: ActivityKind, message: str = "", *, actor: str | None = None
    ) -> None:
        await self.state.add_activity([Activity(entity, kind, message, actor=actor)], keep=100)

    async def discard_failure(self, failure_id: int, *, actor: str | None = None) -> bool:
        self.calls.append(("discard", failure_id))
        self.actors.append(actor)
        moved = await self.state.set_failure_state([failure_id], state=FailureState.DISCARDED, by=actor)
        return bool(moved)

    async def replay_dead_letters(self, seqs: list[int] | None, *, actor: str | None = None) -> int:
        assert self.queue is not None
        self.actors.append(actor)
        return await self.queue.replay(seqs)

    async def discard_dead_letters(self, seqs: list[int] | None, *, actor: str | None = None) -> int:
        assert self.queue is not None
        self.actors.append(actor)
        return await self.queue.discard(seqs)

    async def readiness(self) -> Readiness:
        details = {} if self.ready else {"scm": "connection refused"}
        return Readiness(queue=True, cds=True, scm=self.ready, tokens=True, details=details)

    # ConflictResolver (bridge.engine.parking): records the call; the outcome is configurable
    def conflict_map(self, entity: str) -> EntityMap | None:
        return None

    async def resolve_conflict(
        self, conflict_id: int, winner: System, edits: Mapping[str, Any], by: str
    ) -> ConflictResolution:
        self.calls.append(("resolve_conflict", (conflict_id, winner, dict(edits), by)))
        return ConflictResolution(
            conflict_id, self.resolve_outcome, f"outcome {self.resolve_outcome}", winner
        )
