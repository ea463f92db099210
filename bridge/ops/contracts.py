"""The seam between the operations API/dashboard and the bridge's engine.

The writer (``bridge.writer``) implements ``Controller``; ``bridge.metrics.Metrics`` collects the
figures the API and dashboard show (and mirrors them as OpenTelemetry instruments). The ops API only
talks to these two plus the queue and state ports.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bridge.core.events import System


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

    @property
    def ready(self) -> bool:
        return self.queue and self.cds and self.scm and self.tokens


class Controller(Protocol):
    def map_names(self) -> list[str]: ...

    async def pause(self, entity: str | None, reason: str) -> None:
        """Pause one map (None = all). Changes keep being received and queued; nothing is lost."""
        ...

    async def resume(self, entity: str | None, mode: ResumeMode) -> int:
        """Resume one map (None = all) in ``mode``; returns how many backlog events the mode touched."""
        ...

    async def resync(self, entity: str, company: str, key: str, from_side: System) -> ResyncResult:
        """Read the record on ``from_side`` and write it to the other side now (or delete it there)."""
        ...

    async def retry_failure(self, failure_id: int) -> bool:
        """Re-enqueue the change kept with a retryable failure; False if it has none."""
        ...

    async def readiness(self) -> Readiness: ...
