"""A Controller that records calls and keeps map states in the real StatePort, like the writer does."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bridge.core.events import System
from bridge.core.mapping import EntityMap
from bridge.engine.ports import ConflictResolution, Readiness, ResumeMode, ResyncResult
from bridge.state.base import MapState, MapStatus, StatePort

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

    def map_names(self) -> list[str]:
        return list(self.maps)

    async def pause(self, entity: str | None, reason: str) -> None:
        self.calls.append(("pause", (entity, reason)))
        for name in [entity] if entity else self.maps:
            await self.state.set_map_state(MapState(name, MapStatus.PAUSED, reason, datetime.now(UTC)))

    async def resume(self, entity: str | None, mode: ResumeMode) -> int:
        self.calls.append(("resume", (entity, mode)))
        for name in [entity] if entity else self.maps:
            await self.state.set_map_state(MapState(name, MapStatus.RUNNING, None, datetime.now(UTC)))
        return 3

    async def resync(self, entity: str, company: str, key: str, from_side: System) -> ResyncResult:
        self.calls.append(("resync", (entity, company, key, from_side)))
        message = "SCM said no" if self.resync_outcome == "failed" else ""
        return ResyncResult(entity, company, key, from_side, self.resync_outcome, message)

    async def retry_failure(self, failure_id: int) -> bool:
        self.calls.append(("retry", failure_id))
        return failure_id in self.retryable

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
