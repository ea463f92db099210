"""The in-memory state double's sync runs, checkpoints and errors (as ``bridge.state.sqlite_sync``).

A mixin of ``bridge.state.memory.MemoryState``; its data lives in ``MemorySyncData``, a part of the
store's ``MemoryStateData``, so a store opened again on the same data sees what the last one wrote.
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
from bridge.state.base import SyncCheckpoint, SyncRecordError, SyncRun, SyncRunStatus


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


@dataclass
class MemorySyncData:
    runs: dict[int, SyncRun] = field(default_factory=dict)
    next_run_id: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    checkpoints: dict[tuple[int, str, str, int], SyncCheckpoint] = field(default_factory=dict)
    errors: dict[int, SyncRecordError] = field(default_factory=dict)
    next_error_id: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class MemorySyncTables:
    """Sync runs, checkpoints and errors in a ``MemorySyncData``."""

    @property
    def sync_data(self) -> MemorySyncData:
        raise NotImplementedError

    async def put_ledger(self, entry: LedgerEntry, *, drop_journal_of: str | None = None) -> None:
        raise NotImplementedError  # MemoryState's

    async def put_ledger_entries(self, entries: Sequence[LedgerEntry]) -> None:
        for entry in entries:
            await self.put_ledger(entry)

    async def start_sync_run(self, run: SyncRun) -> int:
        rid = next(self.sync_data.next_run_id)
        self.sync_data.runs[rid] = dataclasses.replace(
            run,
            companies=tuple(c.upper() for c in run.companies),
            started_at=_utc(run.started_at) or datetime.now(UTC),
            finished_at=_utc(run.finished_at),
            id=rid,
        )
        return rid

    async def finish_sync_run(
        self, run_id: int, *, status: SyncRunStatus, message: str | None, at: datetime
    ) -> None:
        run = self.sync_data.runs.get(run_id)
        if run is not None:
            self.sync_data.runs[run_id] = dataclasses.replace(
                run, status=status, message=message, finished_at=_utc(at)
            )

    async def get_sync_run(self, run_id: int) -> SyncRun | None:
        return self.sync_data.runs.get(run_id)

    async def sync_runs(self, *, limit: int = 20) -> list[SyncRun]:
        return [self.sync_data.runs[i] for i in sorted(self.sync_data.runs, reverse=True)[:limit]]

    async def put_sync_checkpoints(self, checkpoints: Sequence[SyncCheckpoint]) -> None:
        stamp = datetime.now(UTC)
        for c in checkpoints:
            stored = dataclasses.replace(
                c, company=c.company.upper(), counts=_json(c.counts), updated_at=stamp
            )
            self.sync_data.checkpoints[(c.run_id, c.entity, stored.company, c.pass_no)] = stored

    async def sync_checkpoints(self, run_id: int) -> list[SyncCheckpoint]:
        return [c for k, c in sorted(self.sync_data.checkpoints.items()) if k[0] == run_id]

    async def add_sync_errors(self, errors: Sequence[SyncRecordError]) -> None:
        stamp = datetime.now(UTC)
        records = {(e.entity, e.company.upper(), e.key) for e in errors}
        self._resolve(lambda e: (e.entity, e.company, e.key) in records, stamp)
        for e in errors:
            eid = next(self.sync_data.next_error_id)
            self.sync_data.errors[eid] = dataclasses.replace(
                e,
                company=e.company.upper(),
                payload=_json(e.payload),
                occurred_at=_utc(e.occurred_at) or stamp,
                resolved_at=_utc(e.resolved_at),
                id=eid,
            )

    def _resolve(self, matches: Any, at: datetime) -> int:
        touched = 0
        for eid, e in list(self.sync_data.errors.items()):
            if e.resolved_at is None and matches(e):
                self.sync_data.errors[eid] = dataclasses.replace(e, resolved_at=at)
                touched += 1
        return touched

    def _matching(
        self, entity: str | None, company: str | None, run_id: int | None, open_only: bool
    ) -> list[SyncRecordError]:
        code = company.upper() if company else None
        return [
            e
            for _, e in sorted(self.sync_data.errors.items(), reverse=True)
            if (entity is None or e.entity == entity)
            and (code is None or e.company == code)
            and (run_id is None or e.run_id == run_id)
            and (not open_only or e.resolved_at is None)
        ]

    async def sync_errors(
        self,
        *,
        entity: str | None = None,
        company: str | None = None,
        run_id: int | None = None,
        open_only: bool = False,
        offset: int = 0,
        limit: int = 100,
    ) -> list[SyncRecordError]:
        return self._matching(entity, company, run_id, open_only)[offset : offset + limit]

    async def count_sync_errors(
        self,
        *,
        entity: str | None = None,
        company: str | None = None,
        run_id: int | None = None,
        open_only: bool = False,
    ) -> int:
        return len(self._matching(entity, company, run_id, open_only))

    async def resolve_sync_errors(
        self, entity: str, company: str, keys: Collection[str], *, at: datetime
    ) -> int:
        wanted = set(keys)
        code = company.upper()
        stamp = _utc(at) or datetime.now(UTC)
        return self._resolve(lambda e: e.entity == entity and e.company == code and e.key in wanted, stamp)

    async def open_sync_error_keys(self, entity: str, company: str) -> list[str]:
        return sorted({e.key for e in self._matching(entity, company, None, True)})
