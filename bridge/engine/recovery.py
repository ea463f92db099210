"""Putting things back: compensation at the originator of a rejected change, and undo of a
synchronous write whose originator gave up (from the ``Undo`` the write returned, or after a crash
from its entry in the undo journal, ``bridge.engine.journal``).

What to put back, and when, is decided in ``bridge.engine.outcome``; this module does the writes."""

from __future__ import annotations

from datetime import UTC, datetime

from bridge.core.errors import ConflictError, RejectedError, RetryableError
from bridge.core.events import ChangeEvent, Operation, System, record_key
from bridge.core.ledger import LedgerEntry
from bridge.core.mapping import DocumentMap, MappingSet
from bridge.engine.docundo import DocUndo, from_journal, journal_document, undo_document
from bridge.engine.journal import Undo, UndoJournal
from bridge.engine.records import ledger_from_json, replace_ledger, row_from_json
from bridge.engine.sideports import DocumentSide, Sides
from bridge.state.base import StatePort
from bridge.telemetry import NO_SPAN, SPAN_COMPENSATE, tracer, tracing_enabled


class Recovery:
    def __init__(self, *, mappings: MappingSet, state: StatePort, sides: Sides) -> None:
        self.mappings = mappings
        self.state = state
        self.sides = sides
        self.journal = UndoJournal(state)

    def compensates(self, event: ChangeEvent) -> bool:
        """False for a document map's change: its Dataverse saves stay, the failure waits for a retry
        (a document is never half undone at the originator)."""
        return not isinstance(self.mappings.maps.get(event.entity), DocumentMap)

    async def compensate(self, event: ChangeEvent, ledger: LedgerEntry | None) -> str:
        """Put the originator back as it was before a change the other side rejected."""
        try:
            with tracer().start_as_current_span(SPAN_COMPENSATE) if tracing_enabled() else NO_SPAN:
                return await self._compensate(event, ledger)
        except ConflictError as exc:
            # The originator changed again meanwhile: look again on the next attempt.
            raise RetryableError(
                f"record changed while compensating: {exc.message}", system=exc.system
            ) from exc

    async def _compensate(self, event: ChangeEvent, ledger: LedgerEntry | None) -> str:
        emap = self.mappings.maps[event.entity]
        source = self.sides.of(event.source)
        synced = ledger is not None and not ledger.deleted
        current = await source.read(emap, event.company, event.key, record_id=event.record_id)
        if event.operation is Operation.DELETE:
            if ledger is None or current is not None:
                return "nothing to restore: no synced image of the deleted record"
            image = ledger.cds_image if event.source is System.CDS else ledger.scm_image
            started = datetime.now(UTC)
            await source.create(
                emap, event.company, event.key, emap.write_form(event.source, image), record_id=ledger.cds_id
            )
            await self.mark_written(replace_ledger(ledger, deleted=False), event.source, started)
            return f"restored the deleted record on {event.source.value}"
        if not synced or event.operation is Operation.CREATE:
            if current is None:
                return "nothing to remove: the record is already gone"
            await source.delete(emap, event.company, event.key, current)
            return f"removed the rejected new record from {event.source.value}"
        assert ledger is not None
        if current is None:
            return "nothing to restore: the record is gone at the source"
        image = ledger.cds_image if event.source is System.CDS else ledger.scm_image
        started = datetime.now(UTC)
        await source.update(emap, event.company, event.key, current, emap.write_form(event.source, image))
        # Later notifications of the rejected change (duplicates, reorders) must not travel now.
        await self.mark_written(ledger, event.source, started)
        return f"restored the last synced values on {event.source.value}"

    async def undo(self, undo: Undo | DocUndo) -> None:
        """Revert a write whose synchronous originator gave up (its transaction rolled back)."""
        if isinstance(undo, DocUndo):
            await undo_document(self._documents(), self.state, undo)
            return
        side = self.sides.of(undo.target)
        now = await side.read(undo.emap, undo.company, undo.key)
        started = datetime.now(UTC)
        if undo.deleted:
            if now is None and undo.before is not None:
                projection = undo.emap.project(undo.target, undo.before.image)
                await side.create(
                    undo.emap,
                    undo.company,
                    undo.key,
                    undo.emap.write_form(undo.target, projection),
                    record_id=undo.before.record_id,
                )
        elif undo.before is None:
            if now is not None:
                await side.delete(undo.emap, undo.company, undo.key, now)
        elif now is not None:
            projection = undo.emap.project(undo.target, undo.before.image)
            await side.update(
                undo.emap, undo.company, undo.key, now, undo.emap.write_form(undo.target, projection)
            )
        await self.mark_written(undo.ledger_before or _empty_ledger(undo), undo.target, started)

    async def revert_if_applied(self, event: ChangeEvent) -> bool:
        """After a crash: undo a synchronous write whose originator never got our answer."""
        entry = await self.journal.read(event)
        if entry is None:
            return False  # journalled before every write: no entry, no write
        emap = self.mappings.maps[event.entity]
        if isinstance(emap, DocumentMap) and "document" in entry:
            await undo_document(self._documents(), self.state, from_journal(entry, emap, event))
            await self.state.drop_journal(event.event_id)
            return True
        before = entry["before"]
        ledger_before = entry["ledger_before"]
        await self.undo(
            Undo(
                target=System(entry["target"]),
                emap=emap,
                company=event.company,
                key=event.key,
                before=None if before is None else row_from_json(before),
                deleted=bool(entry["deleted"]),
                ledger_before=None if ledger_before is None else ledger_from_json(ledger_before),
            )
        )
        await self.state.drop_journal(event.event_id)
        return True

    async def settle(self, event: ChangeEvent) -> None:
        """The synchronous change is decided without a ledger write (refused, undone): the undo
        journal entry is no longer needed."""
        await self.journal.settle(event)

    async def guard(self, event: ChangeEvent, undo: Undo | DocUndo) -> None:
        """Journal an undo about to be made of a recorded write (its own entry went with the ledger
        write): a crash mid-undo still finishes it from the journal after the restart."""
        if isinstance(undo, DocUndo):
            await journal_document(self.state, event, undo)
            return
        await self.journal.write(event, undo.target, undo.before, undo.ledger_before, deleted=undo.deleted)

    # ------------------------------------------------------------------ helpers
    def _documents(self) -> DocumentSide:
        if self.sides.documents is None:
            raise RejectedError("no document side configured", code="config")
        return self.sides.documents

    async def mark_written(self, ledger: LedgerEntry | None, side: System, at: datetime) -> None:
        """Record a write to ``side`` made outside the normal path (compensation, undo)."""
        if ledger is not None:
            field = "cds_written_at" if side is System.CDS else "scm_written_at"
            await self.state.put_ledger(replace_ledger(ledger, **{field: at}))


def _empty_ledger(undo: Undo) -> LedgerEntry:
    return LedgerEntry(
        record_key=record_key(undo.emap.name, undo.company, undo.key),
        entity=undo.emap.name,
        company=undo.company,
        key=undo.key,
        cds_id=None,
        cds_image={},
        scm_image={},
        deleted=True,
        updated_at=datetime.now(UTC),
    )
