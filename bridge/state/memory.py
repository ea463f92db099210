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
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bridge.core.ledger import LedgerEntry
from bridge.state.base import Failure, MapState, MapStatus
from bridge.state.memory_ops import MemoryOpsData, MemoryOpsTables


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


class MemoryState(MemoryOpsTables):
    """``StatePort`` in this process's memory (tests); alert rules and conflicts in ``memory_ops``."""

    def __init__(self, data: MemoryStateData | None = None) -> None:
        self.data = data if data is not None else MemoryStateData()

    @property
    def ops_data(self) -> MemoryOpsData:
        return self.data.ops

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
        self.data.failures[fid] = dataclasses.replace(
            failure,
            id=fid,
            occurred_at=_utc(failure.occurred_at) or datetime.now(UTC),
            details=_json(failure.details),
        )
        return fid

    def _newest_first(self, failures: Collection[Failure]) -> list[Failure]:
        return sorted(failures, key=lambda f: (f.occurred_at or datetime.min.replace(tzinfo=UTC), f.id or 0))[
            ::-1
        ]

    async def failures(
        self, *, entity: str | None = None, offset: int = 0, limit: int = 100
    ) -> list[Failure]:
        chosen = [f for f in self.data.failures.values() if entity is None or f.entity == entity]
        start = max(offset, 0)
        return self._newest_first(chosen)[start : start + max(limit, 0)]

    async def count_failures(
        self, *, entity: str | None = None, since: datetime | None = None, exclude_kinds: Collection[str] = ()
    ) -> int:
        after = _utc(since)
        return sum(
            1
            for f in self.data.failures.values()
            if f.kind not in exclude_kinds
            and (entity is None or f.entity == entity)
            and (after is None or (f.occurred_at is not None and f.occurred_at >= after))
        )

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
