"""One window of a sync run: the pairs one round of pages made known, planned, written and recorded.

For each pair, in order: resolve its lookups, plan it (``bridge.core.compare``; a refusal of the plan
itself, such as a reference missing on the target, is that record's error), write every record's
writes to each side in change sets (both sides at once), then record: the ledger entry of each
record brought together (both sides' images, ETags, and the run's start as the time both sides were
synced, so a live change made before counts as superseded and one made since is applied after the
run), the errors with both systems' words and the payload, and the figures. A dry run plans and
counts only.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bridge.core.compare import (
    FieldSelection,
    LookupNeed,
    PlannedWrite,
    RecordPlan,
    Resolved,
    WriteKind,
    has_lookups,
    lookups_needed,
    plan_record,
)
from bridge.core.errors import RejectedError
from bridge.core.events import System, record_key
from bridge.core.ledger import LedgerEntry
from bridge.core.mapping import EntityMap
from bridge.core.pairing import RecordPair
from bridge.engine.syncports import BulkOutcome, BulkWrite, HeldChanges, SyncSystems
from bridge.engine.syncprogress import MapProgress, RunProgress
from bridge.state.base import StatePort, SyncRecordError, SyncStatePort

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Window:
    """What one round of reading made known, with when each side's pages were read."""

    pairs: list[RecordPair]
    read_at: dict[System, datetime]


@dataclass
class _Pending:
    plan: RecordPlan
    outcomes: dict[System, BulkOutcome] = field(default_factory=dict)


@dataclass
class WindowRunner:
    """Runs windows of one map in one company and pass."""

    emap: EntityMap
    company: str
    master: System
    selection: FieldSelection
    run_id: int
    systems: SyncSystems
    state: StatePort
    store: SyncStatePort
    progress: RunProgress
    figures: MapProgress
    since: datetime | None = None  # when the run started
    live: HeldChanges | None = None
    dry_run: bool = False
    planned_limit: int = 10_000
    record_unchanged: bool = True  # second passes record only what they wrote
    open_errors: set[str] = field(default_factory=set)  # keys with an open error when the pass began

    def __post_init__(self) -> None:
        self.lookups = has_lookups(self.emap)

    async def run(self, window: Window) -> None:
        errors: list[SyncRecordError] = []
        pending: list[_Pending] = []
        held = await self._held(window.pairs)
        todo: list[RecordPair] = []
        for pair in window.pairs:
            if pair.key in held:
                for side in System:  # its live change, queued meanwhile, brings it together after the run
                    if pair.side(side) is not None:
                        self.figures.add(side.value, "skipped")
            elif self.selection is not FieldSelection.SELF_REFERENCES or pair.only_on is None:
                todo.append(pair)  # (a second pass skips records the first could not create)
        for pair, resolved in zip(todo, await self._resolve(todo, errors), strict=True):
            if resolved is None:
                continue
            plan = self._plan(pair, resolved, errors)
            if plan is not None:
                pending.append(_Pending(plan))
        if self.dry_run:
            self._count_dry(pending)
        else:
            await self._write(pending)
            await self._record(pending, window, errors)
        if errors:
            for e in errors:
                self.figures.add(e.target, "failed")
            await self.store.add_sync_errors(errors)
            self.open_errors.update(e.key for e in errors)

    async def _held(self, pairs: list[RecordPair]) -> set[str]:
        if self.live is None or self.dry_run or not pairs:
            return set()
        keys = {record_key(self.emap.name, p.company, p.key): p.key for p in pairs}
        found = await self.live.held(self.emap.name, list(keys))
        return {keys[k] for k in found}

    async def _resolve(self, pairs: list[RecordPair], errors: list[SyncRecordError]) -> list[Resolved | None]:
        """Every pair's references, resolved for the whole window at once; None for a pair whose
        references cannot even be read (its error is added)."""
        if not self.lookups:
            return [{} for _ in pairs]
        needs: list[list[LookupNeed]] = []
        broken: set[int] = set()
        for i, pair in enumerate(pairs):
            try:
                needs.append(lookups_needed(self.emap, pair, self.master, self.selection))
            except RejectedError as exc:
                needs.append([])
                broken.add(i)
                self._plan_error(pair, exc, errors)
        answers = await self.systems.resolve_many(self.company, needs)
        return [None if i in broken else answer for i, answer in enumerate(answers)]

    def _plan(self, pair: RecordPair, resolved: Resolved, errors: list[SyncRecordError]) -> RecordPlan | None:
        try:
            if self.record_unchanged:
                return plan_record(self.emap, pair, self.master, resolved, self.selection)
            # A second pass writes few of the records it compares: their images only for those.
            plan = plan_record(self.emap, pair, self.master, resolved, self.selection, with_projections=False)
            if plan.unchanged:
                return plan
            return plan_record(self.emap, pair, self.master, resolved, self.selection)
        except RejectedError as exc:
            self._plan_error(pair, exc, errors)
            return None

    def _plan_error(self, pair: RecordPair, exc: RejectedError, errors: list[SyncRecordError]) -> None:
        lead = self.master if pair.side(self.master) is not None else self.master.other
        errors.append(self._error(pair, lead.other, "plan", exc.message, exc.status, exc.code, {}, ()))

    def _count_dry(self, pending: list[_Pending]) -> None:
        for item in pending:
            plan = item.plan
            for write in plan.writes:
                self.figures.add(write.target.value, "written")
                self.progress.planned_total += 1
                if len(self.progress.planned) < self.planned_limit:
                    self.progress.planned.append(_planned(self.emap, plan, write))
            self._count_unchanged(plan)

    def _count_unchanged(self, plan: RecordPlan) -> None:
        for side in System:
            if plan.pair.side(side) is not None and plan.write_to(side) is None:
                self.figures.add(side.value, "unchanged")

    async def _write(self, pending: list[_Pending]) -> None:
        async def side(target: System) -> None:
            items = [p for p in pending if p.plan.write_to(target) is not None]
            if not items:
                return
            writes = [_bulk(p.plan, target) for p in items]
            outcomes = (
                await self.systems.cds.write(self.emap, writes)
                if target is System.CDS
                else (await self.systems.scm.write(self.emap, writes))
            )
            for item, outcome in zip(items, outcomes, strict=True):
                item.outcomes[target] = outcome

        await asyncio.gather(side(System.CDS), side(System.SCM))

    async def _record(self, pending: list[_Pending], window: Window, errors: list[SyncRecordError]) -> None:
        ledger: list[LedgerEntry] = []
        together: list[str] = []
        for item in pending:
            plan = item.plan
            failed = [(t, o) for t, o in item.outcomes.items() if not o.ok]
            for target, outcome in item.outcomes.items():
                if outcome.ok:
                    self.figures.add(target.value, "written")
                    made = plan.write_to(target)
                    if (
                        target is System.CDS
                        and made is not None
                        and made.kind is WriteKind.CREATE
                        and outcome.record_id
                    ):
                        self.systems.created(self.emap, plan.pair.company, plan.pair.key, outcome.record_id)
                elif outcome.changed_since:
                    self.figures.add(target.value, "skipped")  # its live change follows
                else:
                    write = plan.write_to(target)
                    assert write is not None
                    errors.append(self._write_error(plan, write, outcome))
            self._count_unchanged(plan)
            if failed:
                continue
            together.append(plan.pair.key)
            if plan.writes or self.record_unchanged:
                ledger.append(self._ledger_entry(item))
        await self.store.put_ledger_entries(ledger)
        fixed = [key for key in together if key in self.open_errors]
        if fixed:
            await self.store.resolve_sync_errors(self.emap.name, self.company, fixed, at=datetime.now(UTC))
            self.open_errors.difference_update(fixed)

    def _ledger_entry(self, item: _Pending) -> LedgerEntry:
        plan = item.plan
        pair = plan.pair

        def etag(side: System) -> str | None:
            outcome = item.outcomes.get(side)
            if outcome is not None:
                return outcome.etag
            record = pair.side(side)
            return None if record is None else record.etag

        cds_out = item.outcomes.get(System.CDS)
        cds_id = (cds_out.record_id if cds_out is not None else None) or (
            pair.cds.record_id if pair.cds else None
        )
        return LedgerEntry(
            record_key=record_key(self.emap.name, pair.company, pair.key),
            entity=self.emap.name,
            company=pair.company,
            key=pair.key,
            cds_id=cds_id,
            cds_image=plan.projections.get(System.CDS, {}),
            scm_image=plan.projections.get(System.SCM, {}),
            # The run compared what the systems held when it started: a change made before counts as
            # synced (or overwritten by the master); one made since is live, queued while the map
            # initializes and applied after, so the run never undoes a newer change.
            cds_written_at=self.since,
            scm_written_at=self.since,
            last_event_id=f"initial-sync:{self.run_id}",
            updated_at=datetime.now(UTC),
            cds_etag=etag(System.CDS),
            scm_etag=etag(System.SCM),
        )

    def _write_error(self, plan: RecordPlan, write: PlannedWrite, outcome: BulkOutcome) -> SyncRecordError:
        return self._error(
            plan.pair,
            write.target,
            write.kind.value,
            outcome.message,
            outcome.status,
            outcome.code,
            write.payload,
            tuple(write.columns),
        )

    def _error(
        self,
        pair: RecordPair,
        target: System,
        operation: str,
        message: str | None,
        status: int | None,
        code: str | None,
        payload: dict[str, Any],
        fields: Sequence[str],
    ) -> SyncRecordError:
        source = pair.side(target.other)
        source_message = None
        if source is not None:
            side = target.other
            where = self.emap.cds.entity_set if side is System.CDS else self.emap.scm.entity_set
            name = "Dataverse" if side is System.CDS else "F&O"
            role = "the master" if side is self.master else "the record's only side"
            source_message = f"read from {name} {where} {pair.company}/{pair.key} ({role})"
        return SyncRecordError(
            run_id=self.run_id,
            entity=self.emap.name,
            company=pair.company,
            key=pair.key,
            target=target.value,
            operation=operation,
            target_message=message,
            source_message=source_message,
            payload=json.loads(json.dumps(payload, default=str)),
            fields=tuple(fields),
            status=status,
            code=code,
        )


def _bulk(plan: RecordPlan, target: System) -> BulkWrite:
    write = plan.write_to(target)
    assert write is not None
    row = plan.pair.side(target)
    return BulkWrite(
        company=plan.pair.company,
        key=plan.pair.key,
        kind=write.kind,
        payload=write.payload,
        record_id=None if row is None else row.record_id,
        etag=None if row is None else row.etag,
    )


def _planned(emap: EntityMap, plan: RecordPlan, write: PlannedWrite) -> dict[str, Any]:
    """One write a dry run would make, as the report lists it."""
    return {
        "map": emap.name,
        "company": plan.pair.company,
        "key": plan.pair.key,
        "target": write.target.value,
        "operation": write.kind.value,
        "fields": {d.column: {"from": d.current, "to": d.wanted} for d in write.fields},
        "payload": write.payload,
    }
