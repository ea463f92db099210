"""The initial sync: bring the records both systems already hold together, map by map.

    for each map, in dependency order (referenced maps first: bridge.core.maporder):
        map -> initializing            (live changes queue, held as when paused)
        for each company, for each pass (self-references second):
            read both sides in key-ordered pages from the checkpoint on, pair them as they come,
            plan, write in change sets, record (bridge.engine.syncbatch), checkpoint the key
        map -> running                 (what queued meanwhile is applied now, in order)

Resumable: every window ends with a checkpoint (the key up to which both sides are done, and the
figures) in the state store, so a run stopped or killed continues after its last window; and since
every plan compares what the systems hold now, whatever a killed run wrote already is found
unchanged, not written twice. ``failed_only`` keeps a run to the records with an open error.
A dry run reads and plans only: no write, no ledger, no checkpoint, no map state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from bridge.core.compare import FieldSelection
from bridge.core.errors import ConfigError
from bridge.core.events import System
from bridge.core.maporder import MapStep, order_for
from bridge.core.mapping import MappingSet
from bridge.core.pairing import Pairer, RecordPair
from bridge.engine.syncbatch import Window, WindowRunner
from bridge.engine.syncports import HeldChanges, InitialRequest, Page, SyncSystems
from bridge.engine.syncprogress import MapProgress, RunProgress
from bridge.state.base import StatePort, SyncCheckpoint, SyncRun, SyncRunStatus, SyncStatePort

log = logging.getLogger(__name__)
T = TypeVar("T")


class MapGate(Protocol):
    """Moves a map through the states admins know (the bridge's controller, or the store directly
    when the run has its own process)."""

    async def initializing(self, entity: str, reason: str) -> None: ...

    async def running(self, entity: str) -> None: ...


def same_request(run: SyncRun, wanted: SyncRun) -> bool:
    return (run.maps, run.master, run.companies, run.dry_run, run.failed_only) == (
        wanted.maps,
        wanted.master,
        wanted.companies,
        wanted.dry_run,
        wanted.failed_only,
    )


class InitialSync:
    def __init__(
        self,
        *,
        mappings: MappingSet,
        state: StatePort,
        store: SyncStatePort,
        systems: SyncSystems,
        gate: MapGate,
        live: HeldChanges | None = None,
        planned_limit: int = 10_000,
    ) -> None:
        self.live = live
        self.mappings = mappings
        self.state = state
        self.store = store
        self.systems = systems
        self.gate = gate
        self.planned_limit = planned_limit
        self.progress: RunProgress | None = None
        self._since = _now()

    def steps(self, request: InitialRequest) -> list[MapStep]:
        records = self.mappings.record_maps()
        names = request.maps or tuple(records)
        unknown = sorted(set(names) - set(self.mappings.maps))
        if unknown:
            raise KeyError(", ".join(unknown))
        if documents := sorted(set(names) - set(records)):
            raise ConfigError(
                f"{', '.join(documents)}: a document map is not brought together by an initial sync;"
                " its next save or a resync (dualwrite sync record) writes the document whole",
                field="--map",
            )
        return order_for(self.mappings, names)

    async def prepare(self, request: InitialRequest) -> tuple[int, list[MapStep]]:
        """The run to do: the unfinished one asking the same (resumed), else a new one."""
        steps = self.steps(request)
        wanted = SyncRun(
            maps=tuple(s.name for s in steps),
            master=request.master.value,
            companies=tuple(c.upper() for c in request.companies),
            dry_run=request.dry_run,
            failed_only=request.failed_only,
        )
        if not request.dry_run:
            unfinished = (SyncRunStatus.RUNNING, SyncRunStatus.FAILED)  # stopped, killed, or a system down
            for run in await self.store.sync_runs(limit=5):
                if run.status in unfinished and run.id is not None and not run.dry_run:
                    if same_request(run, wanted):
                        log.info("initial sync: resuming run %d", run.id)
                        return run.id, steps
                    await self.store.finish_sync_run(
                        run.id, status=SyncRunStatus.SUPERSEDED, message="a new run was asked for", at=_now()
                    )
        return await self.store.start_sync_run(wanted), steps

    async def run(self, request: InitialRequest, run_id: int, steps: list[MapStep]) -> RunProgress:
        progress = RunProgress(
            run_id, request.master.value, request.dry_run, {s.name: MapProgress(s.name) for s in steps}
        )
        self.progress = progress
        checkpoints = {(c.entity, c.company, c.pass_no): c for c in await self.store.sync_checkpoints(run_id)}
        stored = await self.store.get_sync_run(run_id)
        self._since = (stored.started_at if stored else None) or _now()
        try:
            companies = [c.upper() for c in request.companies] or await self.systems.companies()
            for step in steps:  # how many records there are, for the time left
                progress.maps[step.name].expected = await self._expected(step, companies)
            for step in steps:
                await self._map(request, run_id, step, companies, checkpoints, progress)
        except BaseException as exc:
            message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            progress.finish("failed", message)
            if not isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
                with contextlib.suppress(Exception):
                    await self.store.finish_sync_run(
                        run_id, status=SyncRunStatus.FAILED, message=message, at=_now()
                    )
            raise
        summary = f"{progress.total('written')} written, {progress.total('failed')} failed"
        progress.finish("done", summary)
        await self.store.finish_sync_run(run_id, status=SyncRunStatus.DONE, message=summary, at=_now())
        return progress

    async def _map(
        self,
        request: InitialRequest,
        run_id: int,
        step: MapStep,
        companies: list[str],
        checkpoints: dict[tuple[str, str, int], SyncCheckpoint],
        progress: RunProgress,
    ) -> None:
        figures = progress.maps[step.name]
        figures.state = "running"
        for c in checkpoints.values():  # a resumed run goes on with the figures it had
            if c.entity == step.name:
                _add(figures.counts, c.counts, second_pass=c.pass_no > 1)
        if not request.dry_run:
            await self.gate.initializing(
                step.name, f"initial sync run {run_id} (master {request.master.value})"
            )
        for company in companies:
            for pass_no in range(1, step.passes + 1):
                cp = checkpoints.get((step.name, company, pass_no)) or SyncCheckpoint(
                    run_id, step.name, company, pass_no
                )
                if cp.done:
                    continue
                figures.company, figures.pass_no = company, pass_no
                await self._pass(request, run_id, step, cp, figures, progress)
        figures.state = "done"
        if not request.dry_run:
            await self.gate.running(step.name)

    async def _expected(self, step: MapStep, companies: list[str]) -> int | None:
        """Records the map holds (the larger side, per company), for the time left; None if unknown."""
        total = 0
        for company in companies:
            counts = await asyncio.gather(
                self.systems.cds.count(step.emap, company), self.systems.scm.count(step.emap, company)
            )
            if any(c is None for c in counts):
                return None
            total += max(c or 0 for c in counts)
        return total

    async def _pass(
        self,
        request: InitialRequest,
        run_id: int,
        step: MapStep,
        cp: SyncCheckpoint,
        figures: MapProgress,
        progress: RunProgress,
    ) -> None:
        emap = step.emap
        if step.passes == 1:
            selection = FieldSelection.ALL
        else:
            selection = FieldSelection.PLAIN if cp.pass_no == 1 else FieldSelection.SELF_REFERENCES
        open_errors = set(await self.store.open_sync_error_keys(emap.name, cp.company))
        only: set[str] | None = set(open_errors) if request.failed_only else None
        # This company and pass's own figures (the checkpoint keeps them; the map's add them up).
        own = MapProgress(emap.name)
        _add(own.counts, cp.counts)
        runner = WindowRunner(
            emap=emap,
            company=cp.company,
            master=request.master,
            selection=selection,
            run_id=run_id,
            systems=self.systems,
            state=self.state,
            store=self.store,
            progress=progress,
            figures=own,
            since=self._since,
            live=self.live,
            dry_run=request.dry_run,
            planned_limit=self.planned_limit,
            record_unchanged=cp.pass_no == 1,
            open_errors=open_errors,
        )
        after = cp.after_key
        if only == set():
            await self._checkpoint(request, replace(cp, done=True, counts=own.counts))
            return
        before = _copy(own.counts)
        async for window, watermark in _ahead(self._windows(emap.name, cp.company, after, own)):
            pairs = window.pairs if only is None else [p for p in window.pairs if p.key in only]
            await runner.run(Window(pairs, window.read_at))
            if watermark is not None:
                after = watermark
            await self._checkpoint(request, replace(cp, after_key=after, counts=own.counts))
            _add(figures.counts, _minus(own.counts, before), second_pass=cp.pass_no > 1)
            before = _copy(own.counts)
        await self._checkpoint(request, replace(cp, after_key=after, done=True, counts=own.counts))

    async def _checkpoint(self, request: InitialRequest, cp: SyncCheckpoint) -> None:
        if not request.dry_run:
            await self.store.put_sync_checkpoints([replace(cp, counts=_copy(cp.counts))])

    async def _windows(
        self, name: str, company: str, after: str | None, figures: MapProgress
    ) -> AsyncIterator[tuple[Window, str | None]]:
        """Rounds of one page from each side (while both have pages), paired as they come."""
        emap = self.mappings.maps[name]
        readers: dict[System, AsyncIterator[Page]] = {
            System.CDS: self.systems.cds.pages(emap, company, after=after),
            System.SCM: self.systems.scm.pages(emap, company, after=after),
        }
        pairer = Pairer()
        live = set(readers)
        read_at: dict[System, datetime] = {}
        while live:
            sides = sorted(live)
            pages = await asyncio.gather(*(_next(readers[s]) for s in sides))
            pairs: list[RecordPair] = []
            for side, page in zip(sides, pages, strict=True):
                if page is None:
                    live.discard(side)
                    pairs += pairer.end(side)
                    continue
                read_at[side] = page.read_at
                figures.add(side.value, "read", len(page.records))
                pairs += pairer.add(side, page.records)
                if page.last:
                    live.discard(side)
                    pairs += pairer.end(side)
            if not live:
                pairs += pairer.finish()
            yield Window(pairs, dict(read_at)), pairer.watermark


Counts = dict[str, dict[str, int]]


def _copy(counts: Counts) -> Counts:
    return {side: dict(v) for side, v in counts.items()}


def _add(into: Counts, more: Counts, *, second_pass: bool = False) -> None:
    """Add ``more`` to ``into``. A second pass reads every record again and finds most unchanged:
    only its writes, failures and skips count for the map (its reads are not records read twice)."""
    for side, figures in more.items():
        for figure, n in figures.items():
            if second_pass and figure in ("read", "unchanged"):
                continue
            into.setdefault(side, {}).setdefault(figure, 0)
            into[side][figure] += n


def _minus(now: Counts, before: Counts) -> Counts:
    return {s: {f: n - before.get(s, {}).get(f, 0) for f, n in v.items()} for s, v in now.items()}


async def _ahead(items: AsyncIterator[T]) -> AsyncIterator[T]:
    """``items``, the next one read while the caller works on this one: the systems answer the
    next pages while this window is planned and written (both sides' CPUs busy at once)."""
    pending: asyncio.Future[T] = asyncio.ensure_future(anext(items))
    try:
        while True:
            try:
                item = await pending
            except StopAsyncIteration:
                return
            pending = asyncio.ensure_future(anext(items))
            yield item
    finally:
        if not pending.done():
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending


async def _next(pages: AsyncIterator[Page]) -> Page | None:
    try:
        return await anext(pages)
    except StopAsyncIteration:
        return None


def _now() -> datetime:
    return datetime.now(UTC)
