"""Apply one change of a document map (``kind: document``): the whole document as one change set.

From Dataverse to F&O (work orders, agreement invoices) a header and each line are separate saves
with their own webhooks, all keyed by the header's row id, so the queue orders a line's change with
its header's. Whichever save arrives, the document is read as it is now (the saved row from the
notification when its transaction is still open: a synchronous step), the map's filters and values
are evaluated, and the difference from what the bridge last wrote (the ledger) goes to F&O in one
``$batch`` change set, header first: the first sync carries the header and the lines it has, a later
line save goes with the header's current version, and a refusal rolls the whole set back.

From F&O to Dataverse (products) the document is the header alone, written by its natural key.

Documents are one way: a change from the other side is skipped (the sales orders made from work
orders are never synced back). A refused document is not compensated: in a synchronous step the
save rolls back with F&O's message; otherwise the Dataverse saves stay and the failure is listed
until it is retried (or the next save of the document carries it again). A synchronous change set is
journalled first and comes with its undo (``bridge.engine.docundo``): when the originator gave up
after F&O committed it (its save rolled back), the engine takes it back.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bridge.core import docrules
from bridge.core.docmap import DocumentMap, LineCollection, ValueLookup
from bridge.core.errors import RejectedError
from bridge.core.events import ChangeEvent, Operation, SyncMode, System
from bridge.core.ledger import LedgerEntry
from bridge.engine.docundo import DocUndo, journal_document
from bridge.engine.journal import journal_id
from bridge.engine.records import replace_ledger
from bridge.engine.sideports import DocumentSide, DocWrite
from bridge.state.base import StatePort

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Done:
    """How a document change fared: written (``applied``) or skipped, with the reason."""

    applied: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)
    undo: DocUndo | None = None  # how to take the change set back (its originator gave up)


def _skip(reason: str) -> Done:
    return Done(False, reason)


class DocumentApplier:
    def __init__(self, *, state: StatePort, side: DocumentSide) -> None:
        self.state = state
        self.side = side

    async def apply(self, event: ChangeEvent, dmap: DocumentMap) -> Done:
        if event.source is not dmap.source_system:
            return _skip(
                f"one-way document map: changes on {event.source.value} are not synced back",
            )
        if event.company.upper() != dmap.company.upper():
            return _skip(f"company {event.company}: the map syncs {dmap.company} only")
        ledger = await self.state.get_ledger(event.record_key)
        if dmap.source_system is System.SCM:
            return await self._to_cds(event, dmap, ledger)
        return await self._to_scm(event, dmap, ledger)

    # ------------------------------------------------------------------ Dataverse -> F&O
    async def _to_scm(self, event: ChangeEvent, dmap: DocumentMap, ledger: LedgerEntry | None) -> Done:
        header_id = event.key
        previous = _state(ledger, System.SCM)
        on_header = event.record_id == header_id
        if ledger is not None and ledger.deleted:  # a header's id never comes back once deleted
            return _skip("the document was deleted")
        if on_header and event.operation is Operation.DELETE:
            return await self._delete_document(event, dmap, ledger, previous)
        if previous and event.operation is Operation.UPDATE and event.changed:
            used = dmap.used_columns(header=on_header)
            if not used & set(event.changed):  # e.g. a line's copy of its header's status
                return _skip("no mapped field changed")
        header = await self.side.get(System.CDS, dmap.cds.entity_set, {dmap.cds.primary_id: header_id})
        if on_header and event.mode is SyncMode.SYNC and event.image is not None:
            header = {**(header or {}), **event.image}  # the save not committed yet: its own image
        if header is None:
            return _skip("the header is gone at the source")
        why = docrules.failed_filter(dmap.filters, header)
        if why is not None:
            return _skip(f"filtered out: {why}")
        number = header.get(dmap.cds.key_field)
        if number is None or number == "":
            raise RejectedError(f"{dmap.cds.logical_name} {header_id}: no {dmap.cds.key_field}", system="cds")
        header_key = str(previous.get("key") or number) if previous else str(number)
        lines = docrules.with_header(await self._lines(event, dmap, header_id), header)
        resolved = await self._resolve(dmap, header, lines)
        plan = docrules.plan(dmap, header_key, header, lines, previous or None, resolved)
        if plan.empty:
            return _skip("no change since last sync")
        if previous:
            await self._guard(dmap, header_key)
        undo = DocUndo(
            dmap=dmap,
            company=event.company,
            source_key=event.key,
            key=header_key,
            before=dict(previous) if previous else None,
            written=plan.state,
            ledger_before=ledger,
        )
        await journal_document(self.state, event, undo)  # a synchronous change: before its write
        await self.side.changeset(System.SCM, [self._write(dmap, w) for w in plan.writes])
        await self._remember(event, ledger, {**plan.state, "key": header_key}, header)
        counts = _counts(plan.writes)
        return Done(
            True,
            f"document {header_key}: {counts} in one change set",
            details={"writes": len(plan.writes), "skipped_lines": plan.skipped_lines},
            undo=undo,
        )

    async def _lines(self, event: ChangeEvent, dmap: DocumentMap, header_id: str) -> list[docrules.LineRow]:
        """The header's lines as Dataverse holds them now, with the saved line's own image when its
        transaction is still open (a synchronous step) and without a line being deleted."""
        out: list[docrules.LineRow] = []
        saved = None if event.record_id == header_id else event.record_id
        seen = False
        for line in dmap.lines:
            rows = await self.side.find(System.CDS, line.cds.entity_set, {line.cds.parent_read: header_id})
            for row in rows:
                line_id = str(row.get(line.cds.primary_id, "")).lower()
                if line_id == saved:
                    seen = True
                    if event.operation is Operation.DELETE:
                        continue
                    if event.mode is SyncMode.SYNC and event.image is not None:
                        row = {**row, **event.image}
                out.append(docrules.LineRow(line, line_id, row))
        if saved and not seen and event.operation is not Operation.DELETE and event.image is not None:
            created = _collection_of(dmap, event.image)
            if created is not None:  # a line created in this (uncommitted) save
                out.append(docrules.LineRow(created, saved, event.image))
        return out

    async def _resolve(
        self, dmap: DocumentMap, header: dict[str, Any], lines: list[docrules.LineRow]
    ) -> dict[tuple[str, str, str], str | None]:
        wanted = docrules.lookup_inputs(dmap, dmap.values, header)
        for item in lines:
            wanted += docrules.lookup_inputs(dmap, [*item.collection.values, item.collection.key], item.row)
        resolved: dict[tuple[str, str, str], str | None] = {}
        for lookup, value in wanted:
            slot = (lookup.entity_set, lookup.key_field, value)
            if slot not in resolved:
                resolved[slot] = await self._lookup(dmap, lookup, value)
        return resolved

    async def _lookup(self, dmap: DocumentMap, lookup: ValueLookup, value: str) -> str | None:
        if dmap.source_system is System.CDS:  # a GUID -> the referenced row's natural key
            found = await self.side.key_of(lookup.entity_set, value, lookup.key_field)
            return None if found is None or found == "" else found
        assert lookup.id_field is not None  # checked at load
        rows = await self.side.find(System.CDS, lookup.entity_set, {lookup.key_field: value})
        return str(rows[0][lookup.id_field]).lower() if rows else None

    async def _guard(self, dmap: DocumentMap, header_key: str) -> None:
        """Refuse to touch a target document that no longer accepts changes (a posted invoice)."""
        guard = dmap.update_only_when
        if guard is None:
            return
        current = await self.side.get(System.SCM, dmap.scm.entity_set, docrules.header_keys(dmap, header_key))
        value = None if current is None else current.get(guard.column)
        if current is not None and value != guard.equals:
            raise RejectedError(
                f"{dmap.scm.entity_set} {header_key}: {guard.message} ({guard.column} is {value!r})",
                system="scm",
                status=409,
                code="locked",
            )

    def _write(self, dmap: DocumentMap, w: docrules.Write) -> DocWrite:
        entity_set = dmap.scm.entity_set if w.part == "header" else _line(dmap, w.part).scm.entity_set
        return DocWrite(method=w.method, entity_set=entity_set, keys=w.keys, body=w.body)

    async def _delete_document(
        self, event: ChangeEvent, dmap: DocumentMap, ledger: LedgerEntry | None, previous: dict[str, Any]
    ) -> Done:
        if not previous:
            await self._tombstone(event, ledger)
            return _skip("never synced: nothing to delete")
        header_key = str(previous["key"])
        await self._guard(dmap, header_key)
        plan = docrules.plan_delete(dmap, header_key, previous)
        await self.side.changeset(System.SCM, [self._write(dmap, w) for w in plan.writes])
        await self._tombstone(event, ledger)
        return Done(True, f"document {header_key}: {_counts(plan.writes)} in one change set")

    # ------------------------------------------------------------------ F&O -> Dataverse
    async def _to_cds(self, event: ChangeEvent, dmap: DocumentMap, ledger: LedgerEntry | None) -> Done:
        previous = _state(ledger, System.CDS)
        existing = await self.side.find(System.CDS, dmap.cds.entity_set, {dmap.cds.key_field: event.key})
        target_id = str(existing[0][dmap.cds.primary_id]).lower() if existing else None
        row = None
        if event.operation is not Operation.DELETE:
            keys = {dmap.scm.company_field: event.company.lower(), dmap.scm.key_field: event.key}
            row = await self.side.get(System.SCM, dmap.scm.entity_set, keys)
        if row is None:
            if target_id is None or not previous:
                await self._tombstone(event, ledger)
                return _skip("absent on both sides" if target_id is None else "never synced")
            await self.side.changeset(
                System.CDS, [DocWrite("DELETE", dmap.cds.entity_set, {dmap.cds.primary_id: target_id})]
            )
            await self._tombstone(event, ledger)
            return Done(True, f"{dmap.cds.logical_name} {event.key} deleted")
        why = docrules.failed_filter(dmap.filters, row)
        if why is not None:
            return _skip(f"filtered out: {why}")
        resolved: dict[tuple[str, str, str], str | None] = {}
        for lookup, value in docrules.lookup_inputs(dmap, dmap.values, row):
            resolved[(lookup.entity_set, lookup.key_field, value)] = await self._lookup(dmap, lookup, value)
        body = docrules.evaluate(dmap, dmap.values, row, resolved)
        if target_id is not None and previous.get("header") == body:
            return _skip("no change since last sync")
        if target_id is None:
            target_id = str(uuid.uuid4())
            write = DocWrite(
                "POST",
                dmap.cds.entity_set,
                {},
                {**body, dmap.cds.key_field: event.key, dmap.cds.primary_id: target_id},
            )
        else:
            write = DocWrite("PATCH", dmap.cds.entity_set, {dmap.cds.primary_id: target_id}, body)
        await self.side.changeset(System.CDS, [write])
        await self._remember(event, ledger, {"header": body, "id": target_id}, row, cds_id=target_id)
        verb = "created" if write.method == "POST" else "updated"
        return Done(True, f"{dmap.cds.logical_name} {event.key} {verb}")

    # ------------------------------------------------------------------ the ledger
    async def _remember(
        self,
        event: ChangeEvent,
        ledger: LedgerEntry | None,
        target_state: dict[str, Any],
        source_row: dict[str, Any],
        *,
        cds_id: str | None = None,
    ) -> None:
        now = datetime.now(UTC)
        target = event.source.other
        source_image = {"version": source_row.get("modifiedon") or source_row.get("ModifiedDateTime")}
        images = {event.source: source_image, target: target_state}
        await self.state.put_ledger(
            LedgerEntry(
                record_key=event.record_key,
                entity=event.entity,
                company=event.company,
                key=event.key,
                cds_id=event.key if event.source is System.CDS else cds_id,
                cds_image=images[System.CDS],
                scm_image=images[System.SCM],
                cds_written_at=now if target is System.CDS else (ledger.cds_written_at if ledger else None),
                scm_written_at=now if target is System.SCM else (ledger.scm_written_at if ledger else None),
                last_event_id=event.event_id,
                last_source_timestamp=event.source_timestamp,
                deleted=False,
                updated_at=now,
            ),
            drop_journal_of=journal_id(event),  # recorded: the undo entry is settled with it
        )

    async def _tombstone(self, event: ChangeEvent, ledger: LedgerEntry | None) -> None:
        base = ledger or LedgerEntry(
            record_key=event.record_key,
            entity=event.entity,
            company=event.company,
            key=event.key,
            cds_id=None,
            cds_image={},
            scm_image={},
        )
        target = event.source.other
        cleared: dict[str, Any] = {"cds_image": {}} if target is System.CDS else {"scm_image": {}}
        await self.state.put_ledger(
            replace_ledger(
                base,
                deleted=True,
                last_event_id=event.event_id,
                last_source_timestamp=event.source_timestamp,
                **cleared,
            )
        )


def _state(ledger: LedgerEntry | None, target: System) -> dict[str, Any]:
    """What the bridge last wrote to ``target`` ({} when never, or deleted since)."""
    if ledger is None or ledger.deleted:
        return {}
    return dict(ledger.scm_image if target is System.SCM else ledger.cds_image)


def _counts(writes: list[docrules.Write]) -> str:
    parts: dict[str, int] = {}
    for w in writes:
        label = f"{w.part} {w.method}"
        parts[label] = parts.get(label, 0) + 1
    return ", ".join(f"{n} x {label}" if n > 1 else label for label, n in parts.items())


def _line(dmap: DocumentMap, name: str) -> LineCollection:
    return next(line for line in dmap.lines if line.name == name)


def _collection_of(dmap: DocumentMap, image: dict[str, Any]) -> LineCollection | None:
    """The collection of a line image: the one whose primary id column it carries."""
    return next((line for line in dmap.lines if line.cds.primary_id in image), None)
