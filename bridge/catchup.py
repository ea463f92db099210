"""Catching up after downtime: a notification lost while the bridge was down is not lost for good.

Per map and side the state store keeps a modified-on watermark (``DriftPort.watermark``): a time up
to which every change made on that side reached the bridge. While the bridge runs it moves the
watermarks of its running maps on every ``WATERMARK_EVERY_S`` (a change acknowledged is durable in
the queue, so it is seen). On start it asks both systems for the rows of every map modified since
the watermark (less ``[drift] catch_up_margin_s``, for clock skew and changes in flight) and hands
each to the engine as a change from that side. The live rules decide what follows: a row the ledger
already holds is skipped ("no change since last sync"), a changed one is written to the other side,
a conflict is settled by the map's policy. Then the watermark moves to the time of the reads.

Which rows are handed over, and with what time (``catch_up_stamp``; the margin finds many rows the
bridge already has, and a restart after ``kill -9`` runs the queued live changes alongside):

- a row whose ``@odata.etag`` equals the ledger's ETag of that side (``LedgerEntry.cds_etag`` /
  ``scm_etag``, the version as of the last sync) is what the bridge has: not submitted, counted
  ``unchanged``. Without an ETag on either, the row is not submitted when its modified second is
  before the last sync of that side (the bridge's last write there, or the newest change applied):
  the engine would skip it as stale or superseded anyway. A record without a ledger entry (never
  synced, or a tombstone being created again) is always submitted.
- a submitted row is timed at its own modified time, never later: the systems keep whole seconds,
  and timing it at the end of its second (as the catch-up once did) let a side's old image overtake
  a newer change of the other side made in that second, and made a live change of that second,
  after the read, "older" than the catch-up's row, so skipped as stale (lost). It is raised to the
  ledger's ``last_source_timestamp`` only when that falls later within the same second and the
  ledger entry was written before the read began (``updated_at``, the bridge's clock): equal is not
  stale, so a genuine change of that second still applies. The ledger is read after the rows while
  queued live changes run: one applied after the read began may be newer than the row as read, so
  no raise (the row stays stale; raising there wrote a record's older value back in
  ``tests/reliability/test_kill9.py``). A live change after the read carries a later time and still
  wins, and a side's old image read before the bridge then wrote to that side is superseded by the
  write (``is_superseded``).
- document maps (``kind: document``: one way, a header with lines) are not caught up: their events
  are the header's save, whose lines the document path reads itself, and the catch-up's per-row
  events do not fit it. A document saved while the bridge was down travels with its next save;
  ``report.skipped`` (and the start's log) name these maps, so that is never silent.

- Dataverse: ``modifiedon gt <time>`` (every table has ``modifiedon``; powerapps-docs, the table's
  columns), across companies; the company code from the row's company lookup.
- F&O: ``ModifiedDateTime gt <time>`` with ``cross-company=true``. An entity without that property
  answers 400: the catch-up logs it and leaves that map's F&O side to the drift check.

Deletes leave no row to find: the drift check (``dualwrite sync check``) finds those.
A map that is stopped keeps its watermarks where they are: stopped means its changes are dropped,
so they are caught up at the next start of the bridge after the map runs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.core.errors import SyncError
from bridge.core.events import ChangeEvent, Operation, SyncMode, System, record_key
from bridge.core.ledger import LedgerEntry
from bridge.core.mapping import EntityMap, MappingSet
from bridge.engine.ports import EventSink
from bridge.engine.records import etag_of, last_written
from bridge.state.base import MapStatus, StatePort
from bridge.state.driftport import DriftPort
from bridge.systems.dataverse import DataverseClient
from bridge.systems.fno import FnoClient
from bridge.systems.sides import parse_timestamp

log = logging.getLogger(__name__)
WATERMARK_EVERY_S = 15.0
SCM_MODIFIED = "ModifiedDateTime"
CDS_MODIFIED = "modifiedon"


def odata_time(at: datetime) -> str:
    """A DateTimeOffset literal for ``$filter`` (UTC, second precision, rounded down)."""
    return at.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class CatchUpReport:
    """Per map and side: rows found modified since the watermark and handed to the engine."""

    submitted: dict[str, dict[str, int]] = field(default_factory=dict)
    unchanged: dict[str, dict[str, int]] = field(default_factory=dict)  # found, but as last synced
    skipped: dict[str, str] = field(default_factory=dict)  # "<map>/<side>" -> why it was not read

    @property
    def total(self) -> int:
        return sum(n for sides in self.submitted.values() for n in sides.values())


class CatchUp:
    def __init__(
        self,
        *,
        mappings: MappingSet,
        cds: DataverseClient,
        scm: FnoClient,
        sink: EventSink,
        state: StatePort,
        drift: DriftPort,
        margin_s: float,
    ) -> None:
        self.mappings = mappings
        self.cds = cds
        self.scm = scm
        self.sink = sink
        self.state = state
        self.drift = drift
        self.margin = timedelta(seconds=margin_s)
        self._task: asyncio.Task[None] | None = None
        self._caught_up = False
        self.last_report: CatchUpReport | None = None

    def _document_maps(self) -> list[str]:
        return sorted(set(self.mappings.maps) - set(self.mappings.record_maps()))

    async def _running_maps(self) -> list[str]:
        """The entity maps not stopped (document maps are not caught up: see the module's doc)."""
        names = []
        for name in sorted(self.mappings.record_maps()):
            if (await self.state.get_map_state(name)).status is not MapStatus.STOPPED:
                names.append(name)
        return names

    async def mark(self, at: datetime | None = None) -> None:
        """Every change before ``at`` (default now) on the running maps has been seen."""
        at = at or datetime.now(UTC)
        for name in await self._running_maps():
            for side in System:
                await self.drift.put_watermark(name, side.value, at)

    async def run(self) -> CatchUpReport:
        """Sync what changed since each watermark; a map never marked before is marked now."""
        report = CatchUpReport()
        for name in self._document_maps():
            report.skipped[name] = "a document map: not caught up (it travels with its next save)"
        for name in await self._running_maps():
            emap = self.mappings.maps[name]
            for side in System:
                read_at = datetime.now(UTC)
                since = await self.drift.watermark(name, side.value)
                if since is None:  # the first start: nothing was seen before; from now on
                    await self.drift.put_watermark(name, side.value, read_at)
                    continue
                try:
                    rows = await self._changed(emap, side, since - self.margin)
                except SyncError as exc:
                    report.skipped[f"{name}/{side.value}"] = exc.message
                    log.warning(
                        "catch-up of %s on %s skipped: %s (the drift check covers it)",
                        name,
                        side.value,
                        exc.message,
                    )
                    continue
                count = same = 0
                for company, key, row, modified in rows:
                    ledger = await self.state.get_ledger(record_key(name, company, key))
                    at = catch_up_stamp(side, row, modified or read_at, ledger, read_at)
                    if at is None:
                        same += 1
                        continue
                    await self.sink.submit(_event(emap, side, company, key, row, modified or read_at, at))
                    count += 1
                report.submitted.setdefault(name, {})[side.value] = count
                report.unchanged.setdefault(name, {})[side.value] = same
                await self.drift.put_watermark(name, side.value, read_at)
        unchanged = sum(n for sides in report.unchanged.values() for n in sides.values())
        if report.total or unchanged:
            log.info(
                "catch-up after downtime: %d changed records handed to the engine, %d found as last synced",
                report.total,
                unchanged,
            )
        for name, why in report.skipped.items():
            if "/" not in name:  # a whole map (a side not read is logged where it failed)
                log.info("catch-up of %s skipped: %s", name, why)
        return report

    async def _changed(
        self, emap: EntityMap, side: System, since: datetime
    ) -> list[tuple[str, str, dict[str, Any], datetime | None]]:
        out: list[tuple[str, str, dict[str, Any], datetime | None]] = []
        if side is System.CDS:
            rows = await self.cds.query(
                emap.cds.entity_set,
                filter=f"{CDS_MODIFIED} gt {odata_time(since)}",
                select=sorted({*emap.select_columns(System.CDS), CDS_MODIFIED}),
            )
            for row in rows:
                company_id, key = row.get(emap.cds.company_read), row.get(emap.cds.key_field)
                code = await self.cds.company_code(str(company_id)) if company_id else None
                if code and key not in (None, ""):
                    out.append((code, str(key), row, parse_timestamp(row.get(CDS_MODIFIED))))
            return out
        rows = await self.scm.query(
            emap.scm.entity_set,
            filter=f"{SCM_MODIFIED} gt {odata_time(since)}",
            select=sorted({*emap.select_columns(System.SCM), SCM_MODIFIED}),
        )
        for row in rows:
            company, key = row.get(emap.scm.company_field), row.get(emap.scm.key_field)
            if company and key not in (None, ""):
                out.append((str(company).upper(), str(key), row, parse_timestamp(row.get(SCM_MODIFIED))))
        return out

    # ---- while the bridge runs -----------------------------------------------------------------

    def start(self, *, catch_up: bool) -> None:
        """In the background: the catch-up first (tried again while a system is down), then the
        watermarks moved every ``WATERMARK_EVERY_S`` (never before the catch-up has read)."""
        self._caught_up = not catch_up
        self._task = asyncio.create_task(self._work(), name="dualwrite-catch-up")

    async def _work(self) -> None:
        delay = 1.0
        while not self._caught_up:
            try:
                self.last_report = await self.run()
                self._caught_up = True
            except Exception as exc:  # a system down at start: try again (the watermarks wait)
                log.warning("catch-up after downtime failed (%s); trying again in %.0fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
        while True:
            await asyncio.sleep(WATERMARK_EVERY_S)
            try:
                await self.mark()
            except Exception as exc:  # the state store busy or closing: the next round tries again
                log.warning("watermarks not moved: %s", exc)

    @property
    def caught_up(self) -> bool:
        return self._caught_up

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._caught_up:  # stopped cleanly: everything acknowledged until now is in the queue
            with contextlib.suppress(Exception):
                await self.mark()


def catch_up_stamp(
    side: System, row: dict[str, Any], modified: datetime, ledger: LedgerEntry | None, read_at: datetime
) -> datetime | None:
    """The source time of the catch-up event for ``side``'s ``row`` (modified at ``modified``, whole
    seconds; read from ``read_at`` on, with ``ledger`` read after it), or None when the ledger says
    the bridge already has this version (not submitted)."""
    if ledger is None or ledger.deleted:
        return modified  # never synced (or being created again): nothing to compare with
    row_etag, synced_etag = row.get("@odata.etag"), etag_of(ledger, side)
    if isinstance(row_etag, str) and synced_etag is not None:
        if row_etag == synced_etag:
            return None
    else:  # no ETag to compare: by time, skipping only what the engine would skip anyway
        times = [_utc(t) for t in (last_written(ledger, side), ledger.last_source_timestamp) if t]
        last_sync = max(times, default=None)
        if last_sync is not None and _utc(modified) < _utc(last_sync).replace(microsecond=0):
            return None
    last = ledger.last_source_timestamp
    if (
        last is not None
        and _utc(modified) < _utc(last) < _utc(modified) + timedelta(seconds=1)
        and ledger.updated_at is not None
        and _utc(ledger.updated_at) < _utc(read_at)
    ):
        # The same second, and the ledger as it was before the rows were read (its entry written
        # earlier, by the bridge's clock like read_at): equal is not stale, so a genuine change of
        # that second still applies. A change applied after the read began may be newer than the
        # row as read: no raise, so the row stays stale against it.
        return _utc(last)
    return modified


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _event(
    emap: EntityMap,
    side: System,
    company: str,
    key: str,
    row: dict[str, Any],
    modified: datetime,
    at: datetime,
) -> ChangeEvent:
    return ChangeEvent(
        # The same version of a record found again (a second restart) is the same event: deduplicated.
        event_id=f"catch-up:{side.value}:{emap.name}:{company}:{key}:{modified.isoformat()}",
        source=side,
        entity=emap.name,
        company=company,
        key=key,
        operation=Operation.UPDATE,
        mode=SyncMode.ASYNC,
        record_id=str(row.get(emap.cds.primary_id)).lower() if side is System.CDS else None,
        image=row,
        source_timestamp=at,
    )
