"""The drift check: both systems' mapped values compared, record by record, and optionally repaired.

For each map (in dependency order) and company, both systems are read in key order, page by page
(``bridge.systems.pages``), and paired by company and natural key (``bridge.core.pairing``). A pair
drifts when one side lacks the record, or when bringing its sides together would write something
(``bridge.core.compare.plan_record``: values compared in the ledger's form, lookups resolved
through Dataverse as a write resolves them). A drifted record lists its differing fields in both
systems' column names.

A repair copies each drifted record ``--from`` one side through the live resync
(``EngineController.resync``: the rules, the ledger and the activity log as for any resync): a
record missing there is deleted from the other side, one missing on the other side is created
there. A record whose only differing fields flow the other way (a warehouse's ``msdyn_name``,
which comes from F&O's ``WarehouseId``) is copied from the side they flow from. A repair that
fails because a record it points at is repaired later in the same map is tried once more at the
end of the map.

Each map's result is kept in the state store (``DriftPort``): the dashboard and ``/api/drift``
show the last check per map.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from bridge.core.compare import Resolved, lookups_needed, plan_record
from bridge.core.entitymap import EntityMap
from bridge.core.errors import ConfigError, RejectedError, SyncError
from bridge.core.events import System
from bridge.core.maporder import order_for
from bridge.core.mapping import MappingSet
from bridge.core.pairing import Pairer, RecordPair
from bridge.engine.control import EngineController
from bridge.engine.sideports import Sides
from bridge.state.driftport import DRIFT_KEPT, DriftCheck, DriftedRecord, DriftPort
from bridge.systems.connect import Systems
from bridge.systems.pages import cds_pages, companies, scm_pages

log = logging.getLogger(__name__)
ACTOR = "drift check"


@dataclass
class _Tally:
    """One map's figures while its check runs."""

    read: dict[str, int] = field(default_factory=lambda: {"cds": 0, "scm": 0})
    missing: dict[str, int] = field(default_factory=lambda: {"cds": 0, "scm": 0})
    different: int = 0
    unchanged: int = 0
    drift: list[DriftedRecord] = field(default_factory=list)
    drifted: int = 0

    def note(self, record: DriftedRecord) -> None:
        self.drifted += 1
        if record.missing_on is not None:
            self.missing[record.missing_on] += 1
        else:
            self.different += 1
        if len(self.drift) < DRIFT_KEPT:
            self.drift.append(record)


class DriftChecker:
    """Checks (and repairs) maps over the bridge's own clients, sides, controller and state."""

    def __init__(
        self,
        *,
        mappings: MappingSet,
        systems: Systems,
        sides: Sides,
        controller: EngineController,
        drift: DriftPort,
    ) -> None:
        self.mappings = mappings
        self.systems = systems
        self.sides = sides
        self.controller = controller
        self.drift = drift

    def names(self, maps: Sequence[str] | None) -> list[str]:
        """The maps asked for (all when None), in dependency order; an unknown one is a ConfigError."""
        records = self.mappings.record_maps()
        wanted = list(maps) if maps else sorted(records)
        unknown = sorted(set(wanted) - set(records))
        if unknown:
            # Document maps are one way and written whole: their next save or a resync repairs them.
            raise ConfigError(
                f"no map {', '.join(unknown)} a drift check compares (known: {', '.join(sorted(records))})"
            )
        return [step.name for step in order_for(records.values(), wanted)]

    async def check(
        self,
        maps: Sequence[str] | None = None,
        *,
        company: str | None = None,
        repair_from: System | None = None,
        actor: str | None = None,
    ) -> list[DriftCheck]:
        """Check each map (and repair it from ``repair_from``); each map's result is stored."""
        results = []
        for name in self.names(maps):
            result = await self._check_map(self.mappings.maps[name], company, repair_from, actor or ACTOR)
            await self.drift.put_drift_check(result)
            log.info(
                "drift check of %s: %d drifted (%s)%s",
                name,
                result.drifted,
                ", ".join(f"missing on {s}: {n}" for s, n in result.missing.items()),
                f"; {result.repaired} repaired from {repair_from.value}" if repair_from else "",
            )
            results.append(result)
        return results

    async def _check_map(
        self, emap: EntityMap, company: str | None, repair_from: System | None, actor: str
    ) -> DriftCheck:
        started = datetime.now(UTC)
        tally = _Tally()
        codes: list[str] = []
        try:
            codes = [company.upper()] if company else await companies(self.systems.cds, self.systems.scm)
            for code in codes:
                await self._check_company(emap, code, tally)
        except SyncError as exc:
            return _result(emap, started, codes, tally, error=f"{exc.system or 'bridge'}: {exc.message}")
        result = _result(emap, started, codes, tally)
        if repair_from is None or not tally.drift:
            return result
        return await self._repair(emap, result, repair_from, actor)

    async def _check_company(self, emap: EntityMap, company: str, tally: _Tally) -> None:
        pairer = Pairer()
        readers = {
            System.CDS: cds_pages(self.systems.cds, emap, company),
            System.SCM: scm_pages(self.systems.scm, emap, company),
        }
        live = dict(readers)
        # Both readers advance by turns, so the pairer holds only the records between them.
        while live:
            for side, reader in list(live.items()):
                page = await anext(reader, None)
                if page is None:
                    del live[side]
                    pairs = pairer.end(side)
                else:
                    tally.read[side.value] += len(page.records)
                    pairs = pairer.add(side, page.records)
                    if page.last:
                        del live[side]
                        pairs += pairer.end(side)
                for pair in pairs:
                    await self._compare(emap, pair, tally)
        for pair in pairer.finish():
            await self._compare(emap, pair, tally)

    async def _compare(self, emap: EntityMap, pair: RecordPair, tally: _Tally) -> None:
        only = pair.only_on
        if only is not None:
            tally.note(DriftedRecord(pair.company, pair.key, only.other.value))
            return
        columns = await self._differing(emap, pair)
        if columns:
            tally.note(DriftedRecord(pair.company, pair.key, None, columns))
        else:
            tally.unchanged += 1

    async def _differing(self, emap: EntityMap, pair: RecordPair) -> dict[str, list[str]]:
        """The fields whose values differ, in both systems' column names ({} when the sides agree)."""
        resolved: dict[System, dict[str, str | None]] = {System.CDS: {}, System.SCM: {}}
        unresolved: list[str] = []
        for need in lookups_needed(emap, pair, System.CDS):
            if need.source is System.CDS:
                value = await self.sides.cds.natural_key(need.spec, need.value)
            else:
                value = await self.sides.cds.guid_of(need.spec, pair.company, need.value)
            resolved[need.source][need.spec.name] = value
            if value is None:  # points at a record the other side lacks: that field differs
                unresolved.append(need.spec.name)
        differing = {i for i, f in enumerate(emap.fields) if f.cds in unresolved}
        if not unresolved:
            try:
                plan = plan_record(emap, pair, System.CDS, _frozen(resolved))
            except RejectedError as exc:  # a value no value map converts: that is drift too
                return {"cds": [], "scm": [], "error": [exc.message]}
            written = {(w.target, c) for w in plan.writes for c in w.columns}
            differing = {
                i for i, f in enumerate(emap.fields) if any((t, f.column(t)) in written for t in System)
            }
        if not differing:
            return {}
        ordered = [f for i, f in enumerate(emap.fields) if i in differing]
        return {
            "cds": [f.column(System.CDS) for f in ordered],
            "scm": [f.column(System.SCM) for f in ordered],
        }

    async def _repair(
        self, emap: EntityMap, result: DriftCheck, repair_from: System, actor: str
    ) -> DriftCheck:
        repaired: dict[tuple[str, str], str] = {}
        again: list[DriftedRecord] = []
        for record in result.drift:
            outcome = await self._resync(emap, record, repair_from, actor)
            if outcome.startswith("failed") and "lookup-missing" in outcome:
                again.append(record)  # it may point at a record repaired after it
            repaired[(record.company, record.key)] = outcome
        for record in again:
            repaired[(record.company, record.key)] = await self._resync(emap, record, repair_from, actor)
        drift = tuple(replace(r, repair=repaired[(r.company, r.key)]) for r in result.drift)
        failed = sum(1 for r in drift if r.repair and r.repair.startswith("failed"))
        return replace(
            result,
            drift=drift,
            repaired_from=repair_from.value,
            repaired=len(drift) - failed,
            repair_failed=failed,
            finished_at=datetime.now(UTC),
        )

    async def _resync(self, emap: EntityMap, record: DriftedRecord, repair_from: System, actor: str) -> str:
        side = _copy_side(emap, record, repair_from)
        done = await self.controller.resync(emap.name, record.company, record.key, side, actor=actor)
        if done.outcome == "failed":
            return f"failed: {done.message}"
        return done.outcome if side is repair_from else f"{done.outcome} (from {side.value})"


def _copy_side(emap: EntityMap, record: DriftedRecord, repair_from: System) -> System:
    """``repair_from``, unless every differing field flows only out of the other side."""
    if record.missing_on is not None or not record.fields.get("cds"):
        return repair_from
    names = set(record.fields["cds"])
    fields = [f for f in emap.fields if f.column(System.CDS) in names]
    if fields and not any(f.direction.flows_from(repair_from) for f in fields):
        return repair_from.other
    return repair_from


def _frozen(resolved: dict[System, dict[str, str | None]]) -> Resolved:
    return {side: dict(values) for side, values in resolved.items()}


def _result(
    emap: EntityMap, started: datetime, codes: list[str], tally: _Tally, *, error: str | None = None
) -> DriftCheck:
    return DriftCheck(
        entity=emap.name,
        started_at=started,
        finished_at=datetime.now(UTC),
        companies=tuple(codes),
        read=dict(tally.read),
        missing=dict(tally.missing),
        different=tally.different,
        unchanged=tally.unchanged,
        drift=tuple(tally.drift),
        error=error,
    )


def exit_status(checks: Sequence[DriftCheck]) -> int:
    """As diff: 0 no drift, 1 drift found, 2 trouble (a check that could not finish, a failed repair)."""
    if any(c.error or c.repair_failed for c in checks):
        return 2
    return 1 if any(c.drifted for c in checks) else 0


class DriftService:
    """The bridge's drift checks: one at a time (``POST /api/drift/check``, the CLI through it, the
    schedule), and every ``[drift] check_every_minutes`` when that is set."""

    def __init__(self, checker: DriftChecker, *, every_minutes: int) -> None:
        self.checker = checker
        self._every = every_minutes
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def every_minutes(self) -> int:
        return self._every

    @property
    def checking(self) -> bool:
        return self._lock.locked()

    async def check(
        self,
        maps: Sequence[str] | None,
        *,
        company: str | None = None,
        repair_from: System | None = None,
        actor: str | None = None,
    ) -> list[DriftCheck]:
        if self._lock.locked():
            raise RuntimeError("a drift check runs already: wait for it (GET /api/drift)")
        async with self._lock:
            return await self.checker.check(maps, company=company, repair_from=repair_from, actor=actor)

    def start(self) -> None:
        if self._every:
            self._task = asyncio.create_task(self._scheduled(), name="dualwrite-drift-check")

    async def _scheduled(self) -> None:
        while True:
            await asyncio.sleep(self._every * 60)
            try:
                checks = await self.check(None, actor="drift schedule")
            except RuntimeError:
                continue  # one asked for runs now: it counts as this round's
            except Exception as exc:  # a system down: logged, the next round tries again
                log.warning("scheduled drift check failed: %s", exc)
                continue
            drifted = sum(c.drifted for c in checks)
            if drifted:
                log.warning("scheduled drift check: %d records drifted (GET /api/drift)", drifted)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
