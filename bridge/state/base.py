"""The state port: the bridge's memory beside the queue.

- Ledger: per record, the last image synced (mapped fields, in both systems' names) and each side's
  row id and modified timestamp. Echo and conflict rules compare against it.
- Failures: every change that could not be applied, with both systems' messages, for admins.
- Map states: running / paused / stopped per map, with the reason.

Implementations: ``bridge.state.sqlite`` (embedded default); a shared database next. One contract
suite (tests/contract/test_state_contract.py) runs against every one.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from bridge.core.ledger import LedgerEntry


class MapStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class MapState:
    entity: str
    status: MapStatus
    reason: str | None = None
    changed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    entity: str
    company: str
    key: str
    direction: str  # "cds->scm" or "scm->cds"
    operation: str
    event_id: str
    source_message: str | None  # what the originating system said (e.g. compensation result)
    target_message: str | None  # what the target system said when it rejected the change
    kind: str  # "rejected", "retry-exhausted", "conflict", "compensation-failed", "timeout", ...
    correlation_id: str | None = None
    attempts: int = 1
    occurred_at: datetime | None = None
    compensated: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    id: int | None = None  # assigned by the store


# ---- alert rules and parked conflicts (issue 20, items 6 and 7) -------------------------------


@dataclass(frozen=True, slots=True)
class StoredAlertRule:
    """One alert rule as the store keeps it (``bridge.ops.alerts.AlertRule`` is the typed form)."""

    entity: str  # a map name, or "*" for every map
    failures: int
    minutes: int
    action: str  # "pause" | "webhook" | "log" (bridge.settings.AlertAction)
    url: str | None = None
    id: int | None = None  # assigned by the store


class ConflictStatus(StrEnum):
    OPEN = "open"  # parked, waiting for an administrator
    RESOLVED = "resolved"  # an administrator chose a side and it was written to both systems


@dataclass(frozen=True, slots=True)
class ParkedConflict:
    """A conflict under ``conflict_policy: manual``: both sides changed the record since the last
    sync; nothing is written until an administrator picks a version. One open conflict per record:
    a later change of the same record updates it."""

    entity: str
    company: str
    key: str
    cds_values: dict[str, Any]  # Dataverse's current projection (its column names)
    scm_values: dict[str, Any]  # F&O's current projection (its column names)
    event_id: str  # the change that met the conflict (the newest one)
    cds_modified_at: datetime | None = None
    scm_modified_at: datetime | None = None
    detected_at: datetime | None = None  # set by the store when None
    status: ConflictStatus = ConflictStatus.OPEN
    winner: str | None = None  # "cds" | "scm" once resolved
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    id: int | None = None  # assigned by the store

    @property
    def record_key(self) -> str:
        return f"{self.entity}|{self.company}|{self.key}"


@runtime_checkable
class StatePort(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    # ledger
    async def get_ledger(self, record_key: str) -> LedgerEntry | None: ...

    async def put_ledger(self, entry: LedgerEntry, *, drop_journal_of: str | None = None) -> None:
        """Insert or replace ``entry``; with ``drop_journal_of``, drop that event's undo entry in the
        same durable step (the write it guarded is recorded)."""
        ...

    async def find_ledger_by_cds_id(self, cds_id: str) -> LedgerEntry | None: ...

    # failures
    async def add_failure(self, failure: Failure) -> int: ...

    async def failures(
        self, *, entity: str | None = None, offset: int = 0, limit: int = 100
    ) -> list[Failure]: ...

    async def count_failures(
        self, *, entity: str | None = None, since: datetime | None = None, exclude_kinds: Collection[str] = ()
    ) -> int: ...

    async def find_failures(self, *, correlation_id: str) -> list[Failure]: ...

    async def get_failure(self, failure_id: int) -> Failure | None: ...

    # map states
    async def get_map_state(self, entity: str) -> MapState: ...  # default RUNNING when never set

    async def set_map_state(self, state: MapState) -> None: ...

    # undo journal: what a synchronous write is about to change, written before the write, so a
    # write whose originator rolled back can be undone even after a crash of the bridge
    async def put_journal(self, event_id: str, entry: dict[str, Any]) -> bool:
        """Store the entry unless ``event_id`` has one (an earlier attempt's "before" is the true
        one); True if stored. Durable before return."""
        ...

    async def get_journal(self, event_id: str) -> dict[str, Any] | None: ...

    async def drop_journal(self, event_id: str) -> None: ...

    # alert rules (bridge.state.sqlite_ops / memory_ops): settings seed an empty store, then the store
    # (changed through /api/alerts) is what the bridge uses, across restarts
    async def alert_rules(self) -> list[StoredAlertRule] | None:
        """Every stored rule by id; None when the store was never seeded nor changed."""
        ...

    async def seed_alert_rules(self, rules: list[StoredAlertRule]) -> bool:
        """Store ``rules`` if the store holds no rule set yet (never seeded); True if it did now."""
        ...

    async def put_alert_rule(self, rule: StoredAlertRule) -> int | None:
        """Insert (``id`` None) or replace the rule with ``rule.id``; its id, None if no such rule."""
        ...

    async def delete_alert_rule(self, rule_id: int) -> bool: ...

    # parked conflicts (conflict_policy: manual)
    async def park_conflict(self, conflict: ParkedConflict) -> int:
        """Store an open conflict, or update the open one of the same record (same id); its id."""
        ...

    async def conflicts(
        self, *, entity: str | None = None, status: ConflictStatus | None = None, limit: int = 100
    ) -> list[ParkedConflict]:
        """Newest first (by id)."""
        ...

    async def get_conflict(self, conflict_id: int) -> ParkedConflict | None: ...

    async def open_conflict_of(self, record_key: str) -> ParkedConflict | None: ...

    async def close_conflict(self, conflict_id: int, *, winner: str, by: str, at: datetime) -> bool:
        """Mark an open conflict resolved; False if it is not open (or does not exist)."""
        ...
