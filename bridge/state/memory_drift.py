"""The in-memory state double's drift checks and watermarks (as ``bridge.state.sqlite_drift``).

A mixin of ``bridge.state.memory.MemoryState``; its data is ``MemoryDriftData``, a part of the
store's ``MemoryStateData``, so a store opened again on the same data sees what the last one wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bridge.state.drift_codec import drift_json, drift_of, utc
from bridge.state.driftport import DriftCheck


@dataclass
class MemoryDriftData:
    checks: dict[str, str] = field(default_factory=dict)  # map -> its last check as JSON (a copy)
    watermarks: dict[tuple[str, str], datetime] = field(default_factory=dict)


class MemoryDriftTables:
    @property
    def drift_data(self) -> MemoryDriftData:
        raise NotImplementedError  # MemoryState gives its data's part

    async def put_drift_check(self, check: DriftCheck) -> None:
        self.drift_data.checks[check.entity] = drift_json(check)

    async def drift_checks(self) -> list[DriftCheck]:
        checks = self.drift_data.checks
        return [drift_of(checks[name]) for name in sorted(checks)]

    async def drift_check(self, entity: str) -> DriftCheck | None:
        text = self.drift_data.checks.get(entity)
        return None if text is None else drift_of(text)

    async def watermark(self, entity: str, side: str) -> datetime | None:
        return self.drift_data.watermarks.get((entity, side))

    async def put_watermark(self, entity: str, side: str, at: datetime) -> None:
        marks = self.drift_data.watermarks
        at = utc(at)
        if (entity, side) not in marks or at > marks[(entity, side)]:
            marks[(entity, side)] = at
