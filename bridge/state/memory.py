"""The in-memory state store: the ``StatePort`` double for tests, with the same behaviour as the
SQLite store except surviving the process (it passes the same contract suite).

Values go in and out as the SQLite store stores them: images, details and journal entries through
JSON (a caller's dict is never shared with the store), times as UTC (naive ones taken as UTC). Its
data lives in a ``MemoryStateData`` that outlives ``close()``, so a store opened again on the same
data (``bridge.state.factory`` keys it by the data directory) sees what the last one wrote.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bridge.core.ledger import LedgerEntry
from bridge.state.base import (
    UNRESOLVED,
    Activity,
    ActivityCategory,
    Failure,
    FailureState,
    MapState,
    MapStatus,
    Resolution,
)
from bridge.state.memory_drift import MemoryDriftData, MemoryDriftTables
from bridge.state.memory_ops import MemoryOpsData, MemoryOpsTables
from bridge.state.memory_sync import MemorySyncData, MemorySyncTables


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


@dataclass
class MemoryStateData:
    """Everything a ``MemoryState`` holds; shared by the stores opened on it, one at a time."""

    ledger: dict[str, LedgerEntry] = field(default_factory=dict)
    failures: dict[int, Failure] = field(default_factory=dict)
    map_states: dict[str, MapState] = field(default_factory=dict)
    journal: dict[str, tuple[datetime, dict[str, Any]]] = field(default_factory=dict)
    next_failure_id: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    ops: MemoryOpsData = field(default_factory=MemoryOpsData)  # alert rules, parked conflicts
    drift: MemoryDriftData = field(default_factory=MemoryDriftData)  # drift checks, watermarks
    activity: dict[int, Activity] = field(default_factory=dict)
    next_activity_id: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    sync: MemorySyncData = field(default_factory=MemorySyncData)  # sync runs, checkpoints, errors


class MemoryState(MemoryOpsTables, MemorySyncTables, MemoryDriftTables):
    """``StatePort`` in this process's memory (tests); alert rules and conflicts in ``memory_ops``."""

    def __init__(self, data: MemoryStateData | None = None) -> None:
        self.data = data if data is not None else MemoryStateData()

    @property
    def ops_data(self) -> MemoryOpsData:
        return self.data.ops

    @property
    def sync_data(self) -> MemorySyncData:
        return self.data.sync

    @property
    def drift_data(self) -> MemoryDriftData:
        return self.data.drift

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    # ---- ledger --------------------------------------------------------------------------------

    async def get_ledger(self, record_key: str) -> LedgerEntry | None:
        return self.data.ledger.get(record_key)

    async def put_ledger(self, entry: LedgerEntry, *, drop_journal_of: str | None = None) -> None:
        self.data.ledger[entry.record_key] = dataclasses.replace(
            entry,
            cds_image=_json(entry.cds_image),
            scm_image=_json(entry.scm_image),
            cds_written_at=_utc(entry.cds_written_at),
            scm_written_at=_utc(entry.scm_written_at),
            last_source_timestamp=_utc(entry.last_source_timestamp),
            updated_at=_utc(entry.updated_at) or datetime.now(UTC),
        )
        if drop_journal_of is not None:
            self.data.journal.pop(drop_journal_of, None)

    async def find_ledger_by_cds_id(self, cds_id: str) -> LedgerEntry | None:
        return next((e for e in self.data.ledger.values() if e.cds_id == cds_id), None)

    # ---- failures ------------------------------------------------------------------------------

    async def add_failure(self, failure: Failure) -> int:
        fid = next(self.data.next_failure_id)
        stamp = datetime.now(UTC)
        for other in list(self.data.failures.values()):
            if other.state is FailureState.RETRYING and _same_record(other, failure):
                self._put(
                    dataclasses.replace(
                        other, state=FailureState.OPEN, state_changed_at=stamp, state_by=None, resolution=None
                    )
                )
        self.data.failures[fid] = dataclasses.replace(
            failure,
            id=fid,
            occurred_at=_utc(failure.occurred_at) or stamp,
            details=_json(failure.details),
            state=FailureState.OPEN,
            state_changed_at=None,
            state_by=None,
            resolution=None,
        )
        return fid

    def _put(self, failure: Failure) -> None:
        assert failure.id is not None
        self.data.failures[failure.id] = failure

    def _newest_first(self, failures: Collection[Failure]) -> list[Failure]:
        return sorted(failures, key=lambda f: (f.occurred_at or datetime.min.replace(tzinfo=UTC), f.id or 0))[
            ::-1
        ]

    async def failures(
        self,
        *,
        entity: str | None = None,
        offset: int = 0,
        limit: int = 100,
        states: Collection[FailureState] = (),
    ) -> list[Failure]:
        chosen = [
            f
            for f in self.data.failures.values()
            if (entity is None or f.entity == entity) and (not states or f.state in states)
        ]
        start = max(offset, 0)
        return self._newest_first(chosen)[start : start + max(limit, 0)]

    async def count_failures(
        self,
        *,
        entity: str | None = None,
        since: datetime | None = None,
        exclude_kinds: Collection[str] = (),
        states: Collection[FailureState] = (),
    ) -> int:
        after = _utc(since)
        return sum(
            1
            for f in self.data.failures.values()
            if f.kind not in exclude_kinds
            and (not states or f.state in states)
            and (entity is None or f.entity == entity)
            and (after is None or (f.occurred_at is not None and f.occurred_at >= after))
        )

    async def set_failure_state(
        self,
        failure_ids: Collection[int] = (),
        *,
        event_ids: Collection[str] = (),
        state: FailureState,
        by: str | None,
        resolution: Resolution | None = None,
        only: Collection[FailureState] = UNRESOLVED,
    ) -> list[int]:
        ids, events, stamp = set(failure_ids), set(event_ids), datetime.now(UTC)
        moved: list[int] = []
        for f in list(self.data.failures.values()):
            if (f.id in ids or f.event_id in events) and f.state in only:
                self._put(
                    dataclasses.replace(
                        f, state=state, state_changed_at=stamp, state_by=by, resolution=resolution
                    )
                )
                moved.append(f.id or 0)
        return sorted(moved)

    async def resolve_record(
        self, entity: str, company: str, key: str, *, resolution: Resolution, by: str | None = None
    ) -> int:
        stamp, count = datetime.now(UTC), 0
        for f in list(self.data.failures.values()):
            if (f.entity, f.company, f.key) != (entity, company, key) or f.state not in UNRESOLVED:
                continue
            retrying = f.state is FailureState.RETRYING
            self._put(
                dataclasses.replace(
                    f,
                    state=FailureState.RESOLVED,
                    state_changed_at=stamp,
                    resolution=(f.resolution or resolution) if retrying else resolution,
                    state_by=f.state_by if retrying else by,
                )
            )
            count += 1
        return count

    async def find_failures(self, *, correlation_id: str) -> list[Failure]:
        return self._newest_first(
            [f for f in self.data.failures.values() if f.correlation_id == correlation_id]
        )

    async def get_failure(self, failure_id: int) -> Failure | None:
        return self.data.failures.get(failure_id)

    # ---- map states ----------------------------------------------------------------------------

    async def get_map_state(self, entity: str) -> MapState:
        return self.data.map_states.get(entity) or MapState(entity=entity, status=MapStatus.RUNNING)

    async def set_map_state(self, state: MapState) -> None:
        self.data.map_states[state.entity] = dataclasses.replace(
            state, changed_at=_utc(state.changed_at) or datetime.now(UTC)
        )

    # ---- activity ----------------------------------------------------------------------------

    async def add_activity(self, entries: Sequence[Activity], *, keep: int) -> None:
        stamp = datetime.now(UTC)
        touched: set[tuple[str, ActivityCategory]] = set()
        for e in entries:
            aid = next(self.data.next_activity_id)
            self.data.activity[aid] = dataclasses.replace(e, id=aid, at=_utc(e.at) or stamp)
            touched.add((e.entity, e.kind.category))
        for entity, category in touched:
            ids = sorted(
                (
                    a.id or 0
                    for a in self.data.activity.values()
                    if (a.entity, a.kind.category) == (entity, category)
                ),
                reverse=True,
            )
            for old in ids[max(keep, 0) :]:
                del self.data.activity[old]

    def _activity_of(self, entity: str | None, category: ActivityCategory | None) -> list[Activity]:
        chosen = [
            a
            for a in self.data.activity.values()
            if (entity is None or a.entity == entity) and (category is None or a.kind.category is category)
        ]
        return sorted(chosen, key=lambda a: a.id or 0, reverse=True)

    async def activity(
        self,
        *,
        entity: str | None = None,
        category: ActivityCategory | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> list[Activity]:
        start = max(offset, 0)
        return self._activity_of(entity, category)[start : start + max(limit, 0)]

    async def count_activity(
        self, *, entity: str | None = None, category: ActivityCategory | None = None
    ) -> int:
        return len(self._activity_of(entity, category))

    # ---- undo journal --------------------------------------------------------------------------

    async def put_journal(self, event_id: str, entry: dict[str, Any]) -> bool:
        if event_id in self.data.journal:
            return False
        self.data.journal[event_id] = (datetime.now(UTC), _json(entry))
        return True

    async def get_journal(self, event_id: str) -> dict[str, Any] | None:
        found = self.data.journal.get(event_id)
        return None if found is None else _json(found[1])

    async def drop_journal(self, event_id: str) -> None:
        self.data.journal.pop(event_id, None)

    async def journal_ids(self) -> list[str]:
        """Event ids with an undo entry still open, oldest first (as the SQLite store's)."""
        return [k for k, _ in sorted(self.data.journal.items(), key=lambda kv: (kv[1][0], kv[0]))]


def _same_record(a: Failure, b: Failure) -> bool:
    return (a.entity, a.company, a.key) == (b.entity, b.company, b.key)
