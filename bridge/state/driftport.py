"""The drift port (issue 21, item 4): each map's last drift check, and the modified-on watermarks
the catch-up after downtime reads. A port of its own beside ``bridge.state.base.StatePort`` (whose
module is full): the state stores implement both, and ``bridge.state.factory.drift_state`` hands a
store out as this port. Protocols and value types only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class DriftedRecord:
    """One record whose two sides disagree: missing on one side, or on both with other values."""

    company: str
    key: str
    missing_on: str | None  # "cds" | "scm"; None: on both, values differ
    fields: dict[str, list[str]] = field(default_factory=dict)  # side -> its columns that differ
    repair: str | None = None  # after a repair: its outcome (applied, deleted, failed: <message>)


@dataclass(frozen=True, slots=True)
class DriftCheck:
    """One map's check: both systems' mapped values compared (``dualwrite sync check``)."""

    entity: str
    started_at: datetime
    finished_at: datetime
    companies: tuple[str, ...] = ()
    read: dict[str, int] = field(default_factory=dict)  # side -> records read
    missing: dict[str, int] = field(default_factory=dict)  # side -> records missing there
    different: int = 0  # records on both sides whose mapped values differ
    unchanged: int = 0  # records on both sides that agree
    drift: tuple[DriftedRecord, ...] = ()  # the drifted records (the first DRIFT_KEPT)
    repaired_from: str | None = None  # "cds" | "scm" when the check repaired
    repaired: int = 0
    repair_failed: int = 0
    error: str | None = None  # the check could not finish: why (a system's own message)

    @property
    def drifted(self) -> int:
        return sum(self.missing.values()) + self.different


DRIFT_KEPT = 1000  # drifted records kept per map's last check (the counts cover them all)


@runtime_checkable
class DriftPort(Protocol):
    """The last drift check per map, and per map and side the modified-on watermark: the system's
    modified time up to which the bridge has seen every change (``bridge.catchup``). A separate
    port from ``StatePort``: the stores implement both (``bridge.state.factory.drift_state``)."""

    async def put_drift_check(self, check: DriftCheck) -> None:
        """Keep ``check`` as its map's last check (the one before is replaced)."""
        ...

    async def drift_checks(self) -> list[DriftCheck]: ...  # every map's last check, by map name

    async def drift_check(self, entity: str) -> DriftCheck | None: ...

    async def watermark(self, entity: str, side: str) -> datetime | None: ...

    async def put_watermark(self, entity: str, side: str, at: datetime) -> None:
        """Move the watermark to ``at``; a watermark never moves back (an earlier ``at`` is ignored)."""
        ...
