"""Apply one change to the other system: the rules in order, the write, the ledger.

    echo? -> skip                 (our own write coming back)
    stale? superseded? -> skip    (older than the last change applied, or than our last write there)
    delete -> delete on target    (tombstone in the ledger)
    no mapped change? -> skip     (projection equals the ledger: duplicates, unknown-principal echoes)
    write -> ledger               (a write carries every mapped field; one If-Match call when the
                                   ledger knows the target's ETag; on 412/404/duplicate: read, then
                                   conflict policy newer-wins / cds-wins / scm-wins; manual:
                                   parked for an administrator, nothing written: engine.parking)

A rejection (``RejectedError``) is raised to the caller: the engine decides what follows
(``bridge.engine.outcome``: answer a synchronous webhook with it, or compensate the originator of an
asynchronous change). Every successful write returns an ``Undo`` so a write whose synchronous
originator gave up can be reverted; a synchronous write is journalled first (``bridge.engine.journal``).

The two systems are reached through ``bridge.engine.sideports`` only; composition hands them in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bridge.core import rules
from bridge.core.errors import ConflictError, RejectedError, RetryableError
from bridge.core.events import DEFERRED_KEY_PREFIX, ChangeEvent, Operation, SyncMode, System
from bridge.core.ledger import LedgerEntry
from bridge.core.mapping import DocumentMap, EntityMap, MappingSet
from bridge.engine.documents import DocumentApplier
from bridge.engine.docundo import DocUndo
from bridge.engine.journal import Undo, UndoJournal, journal_id
from bridge.engine.parking import park
from bridge.engine.records import (
    cds_id_for_create,
    etag_of,
    last_written,
    replace_ledger,
    source_etag,
    target_cds_id,
)
from bridge.engine.sideports import Row, Side, Sides
from bridge.state.base import StatePort

log = logging.getLogger(__name__)


class Result(StrEnum):
    APPLIED = "applied"
    SKIPPED = "skipped"
    CONFLICT_LOST = "conflict-lost"  # the target's newer change won; the source was brought in line


@dataclass(frozen=True, slots=True)
class Applied:
    result: Result
    reason: str = ""
    undo: Undo | DocUndo | None = None
    details: dict[str, Any] = field(default_factory=dict)


def direction(source: System) -> str:
    return f"{source.value}->{source.other.value}"


class Applier:
    def __init__(self, *, mappings: MappingSet, state: StatePort, sides: Sides, own_ids: set[str]) -> None:
        self.mappings = mappings
        self.state = state
        self.sides = sides
        self.own_ids = own_ids  # our Dataverse user id and our Entra object id
        self.journal = UndoJournal(state)
        self._documents = (
            None if sides.documents is None else DocumentApplier(state=state, side=sides.documents)
        )

    def side(self, system: System) -> Side:
        return self.sides.of(system)

    async def apply(self, event: ChangeEvent) -> Applied:
        emap = self.mappings.maps[event.entity]
        if rules.is_echo(event, self.own_ids):
            return Applied(Result.SKIPPED, "echo")
        if isinstance(emap, DocumentMap):
            return await self._document(event, emap)
        if event.key.startswith(DEFERRED_KEY_PREFIX):
            resolved = await self._undefer(event, emap)
            if resolved is None:
                return Applied(Result.SKIPPED, "gone at source")
            event = resolved
        ledger = await self.state.get_ledger(event.record_key)
        if rules.is_stale(event, ledger):
            return Applied(Result.SKIPPED, "stale")
        if rules.is_superseded(event, ledger):
            return Applied(Result.SKIPPED, f"superseded: the bridge wrote to {event.source.value} since")
        if event.operation is Operation.DELETE:
            return await self._delete(event, emap, ledger)
        return await self._upsert(event, emap, ledger)

    async def _document(self, event: ChangeEvent, dmap: DocumentMap) -> Applied:
        """A document map's change: the whole document as one change set (bridge.engine.documents)."""
        if self._documents is None:
            raise RejectedError(f"map {dmap.name}: no document side configured", code="config")
        done = await self._documents.apply(event, dmap)
        result = Result.APPLIED if done.applied else Result.SKIPPED
        return Applied(result, done.reason, done.undo, details=done.details)

    async def _undefer(self, event: ChangeEvent, emap: EntityMap) -> ChangeEvent | None:
        """Read the committed Dataverse row of an event received without its key."""
        assert event.record_id is not None
        found = await self.sides.cds.read_by_id(emap, event.record_id)
        if found is None:
            return None
        row = found.image
        company_id = row.get(emap.cds.company_read)
        code = await self.sides.cds.company_code(str(company_id)) if company_id else None
        if code is None or row.get(emap.cds.key_field) is None:
            raise RejectedError(
                f"{emap.cds.logical_name} {event.record_id} has no company or {emap.cds.key_field}",
                system="cds",
                status=400,
            )
        return event.model_copy(update={"company": code, "key": str(row[emap.cds.key_field]), "image": row})

    # ------------------------------------------------------------------ create / update
    async def _upsert(self, event: ChangeEvent, emap: EntityMap, ledger: LedgerEntry | None) -> Applied:
        source, target = self.side(event.source), self.side(event.source.other)
        image = event.image
        if image is None or event.needs_fetch:
            row = await source.read(emap, event.company, event.key, record_id=event.record_id)
            if row is None:
                return Applied(Result.SKIPPED, "gone at source")  # its delete notification follows
            image = row.image
        synced = ledger is not None and not ledger.deleted
        if synced and not rules.mapped_change(emap, event):
            return Applied(Result.SKIPPED, "no mapped field changed")
        projected = emap.project(event.source, image)
        if ledger is not None and synced and rules.is_noop(emap, event.source, projected, ledger):
            return Applied(Result.SKIPPED, "no change since last sync")
        payload = emap.to_target(
            event.source, image, await self._resolve_lookups(emap, event.source, image, event.company)
        )
        write = _Write(event, emap, ledger, target, payload, projected, source_etag(event, image))
        # One call to the target, no read first, when the ledger says what the target held (its ETag)
        # or that it never had the record; the target's answer says if that is no longer so.
        known = etag_of(ledger, target.system) if synced else None
        if _can_write_blind(target.system, ledger if synced else None, known):
            journalled = await self.journal.write(
                event, target.system, write.ledger_row(known), ledger, deleted=False
            )
            try:
                return await self._write_blind(write, known)
            except ConflictError:
                if journalled:
                    await self.journal.settle(event)  # refused: nothing was written
                # Changed since: by a synchronous save decided ahead of this change and recorded
                # meanwhile (bridge.engine.syncgate)? Then the decision stands: skip, do not retry.
                fresh = await self.state.get_ledger(event.record_key)
                if rules.is_stale(event, fresh) or rules.is_superseded(event, fresh):
                    return Applied(Result.SKIPPED, "superseded: decided against while it was on its way")
        return await self._write_after_read(write, image)

    async def _write_blind(self, w: _Write, known_etag: str | None) -> Applied:
        event, emap, target = w.event, w.emap, w.target
        if known_etag is not None:
            before = w.ledger_row(known_etag)
            assert before is not None
            started = datetime.now(UTC)
            new_etag = await target.update(emap, event.company, event.key, before, w.payload)
            projection = emap.synced_projection(target.system, w.payload, before.image)
            await self._remember(w, projection, before.record_id, new_etag, started)
            return Applied(
                Result.APPLIED,
                "updated",
                Undo(
                    target=target.system,
                    emap=emap,
                    company=event.company,
                    key=event.key,
                    before=before,
                    ledger_before=w.ledger,
                ),
            )
        started = datetime.now(UTC)
        created_id, new_etag = await target.create(
            emap, event.company, event.key, w.payload, record_id=cds_id_for_create(event, w.ledger)
        )
        await self._remember(
            w, emap.synced_projection(target.system, w.payload), created_id, new_etag, started
        )
        return Applied(
            Result.APPLIED,
            "created",
            Undo(
                target=target.system,
                emap=emap,
                company=event.company,
                key=event.key,
                before=None,
                ledger_before=w.ledger,
            ),
        )

    async def _write_after_read(self, w: _Write, image: dict[str, Any]) -> Applied:
        """The target changed since the last sync (or we do not know its state): read it, apply the
        conflict rules, then write against the ETag just read."""
        event, emap, ledger, target = w.event, w.emap, w.ledger, w.target
        current = await target.read(emap, event.company, event.key, record_id=target_cds_id(event, ledger))
        if current is not None:
            before = emap.project(target.system, current.image)
            if emap.synced_projection(target.system, w.payload, before) == before:
                # The target holds these values already: our own write of this change landed before a
                # crash kept us from recording it (a 412 on the replay is our own ETag), or someone made
                # the same change there. Not a conflict: nothing to write, only the ledger to update.
                await self._remember(w, before, current.record_id, current.etag, None)
                return Applied(Result.SKIPPED, "target already up to date")
        if current is not None and ledger is not None and not ledger.deleted:
            target_projection = emap.project(target.system, current.image)
            if rules.detect_conflict(emap, target.system, target_projection, ledger):
                winner = rules.resolve_conflict(
                    emap.conflict_policy, event.source, event.source_timestamp, current.modified_at
                )
                if winner is None:  # manual: an administrator decides
                    reason = await park(self.state, emap, event, image, current.image, current.modified_at)
                    return Applied(Result.SKIPPED, reason)
                if winner is target.system:
                    return await self._conflict_lost(event, emap, ledger, current, image)
        await self.journal.write(event, target.system, current, ledger, deleted=False)
        started = datetime.now(UTC)
        try:
            if current is None:
                created_id, new_etag = await target.create(
                    emap, event.company, event.key, w.payload, record_id=cds_id_for_create(event, ledger)
                )
                await self._remember(
                    w, emap.synced_projection(target.system, w.payload), created_id, new_etag, started
                )
                return Applied(
                    Result.APPLIED,
                    "created",
                    Undo(
                        target=target.system,
                        emap=emap,
                        company=event.company,
                        key=event.key,
                        before=None,
                        ledger_before=ledger,
                    ),
                )
            target_projection = emap.synced_projection(
                target.system, w.payload, emap.project(target.system, current.image)
            )
            new_etag = await target.update(emap, event.company, event.key, current, w.payload)
        except ConflictError as exc:
            # Changed again between our read and our write: read again on the next attempt.
            raise RetryableError(f"record changed while writing: {exc.message}", system=exc.system) from exc
        await self._remember(w, target_projection, current.record_id, new_etag, started)
        return Applied(
            Result.APPLIED,
            "updated",
            Undo(
                target=target.system,
                emap=emap,
                company=event.company,
                key=event.key,
                before=current,
                ledger_before=ledger,
            ),
        )

    async def _conflict_lost(
        self, event: ChangeEvent, emap: EntityMap, ledger: LedgerEntry, current: Row, image: dict[str, Any]
    ) -> Applied:
        """The target changed since the last sync and wins: bring the source in line with it."""
        target_system = event.source.other
        message = (
            f"conflict on {emap.name} {event.company}/{event.key}: "
            f"{target_system.value} changed it since the "
            f"last sync and wins under policy {emap.conflict_policy}"
        )
        if event.mode is SyncMode.SYNC:
            # Round-tripping inside the originator's transaction is not allowed: refuse the change.
            # The target's own change notification then brings the source in line.
            raise RejectedError(message, system=target_system.value, status=409, code="conflict")
        source = self.side(event.source)
        payload = emap.to_target(
            target_system,
            current.image,
            await self._resolve_lookups(emap, target_system, current.image, event.company),
        )
        src_row = await source.read(emap, event.company, event.key, record_id=event.record_id)
        started = datetime.now(UTC)
        try:
            if src_row is None:
                source_id, source_etag = await source.create(emap, event.company, event.key, payload)
                source_projection = emap.synced_projection(event.source, payload)
            else:
                source_id = src_row.record_id
                source_etag = await source.update(emap, event.company, event.key, src_row, payload)
                source_projection = emap.synced_projection(
                    event.source, payload, emap.project(event.source, src_row.image)
                )
        except ConflictError as exc:
            raise RetryableError(f"record changed while writing: {exc.message}", system=exc.system) from exc
        winner_projection = emap.project(target_system, current.image)
        cds_id = source_id if event.source is System.CDS else current.record_id
        await self._store(
            event,
            ledger,
            {event.source: source_projection, target_system: winner_projection},
            cds_id,
            {event.source: source_etag, target_system: current.etag},
            {event.source: started},
        )
        return Applied(Result.CONFLICT_LOST, message)

    # ------------------------------------------------------------------ delete
    async def _delete(self, event: ChangeEvent, emap: EntityMap, ledger: LedgerEntry | None) -> Applied:
        target = self.side(event.source.other)
        current = await target.read(emap, event.company, event.key, record_id=target_cds_id(event, ledger))
        if current is None:
            await self._tombstone(event, emap, ledger)
            return Applied(Result.SKIPPED, "already absent")
        await self.journal.write(event, target.system, current, ledger, deleted=True)
        await target.delete(emap, event.company, event.key, current)
        await self._tombstone(event, emap, ledger)
        return Applied(
            Result.APPLIED,
            "deleted",
            Undo(
                target=target.system,
                emap=emap,
                company=event.company,
                key=event.key,
                before=current,
                deleted=True,
                ledger_before=ledger,
            ),
        )

    # ------------------------------------------------------------------ lookups and the ledger
    async def resolve_lookups(
        self, emap: EntityMap, source: System, image: dict[str, Any], company: str
    ) -> dict[str, str | None]:
        """The lookups of a write from ``source``, as a write resolves them (``mappings try``)."""
        return await self._resolve_lookups(emap, source, image, company)

    async def _resolve_lookups(
        self, emap: EntityMap, source: System, image: dict[str, Any], company: str
    ) -> dict[str, str | None]:
        """Each lookup of ``image`` in the target's terms: a Dataverse GUID becomes the natural key
        it points at (to F&O), a natural key becomes its Dataverse GUID (to Dataverse)."""
        resolved: dict[str, str | None] = {}
        for spec in emap.lookups_from(source):
            value = spec.value(image)
            if value is None:
                resolved[spec.name] = None
            elif source is System.CDS:
                natural = await self.sides.cds.natural_key(spec, value)
                if natural is None:
                    raise RejectedError(
                        f"{spec.cds_entity_set}({value}) referenced by {spec.name} of {emap.name}"
                        " does not exist",
                        system="cds",
                        status=404,
                        code="lookup-missing",
                    )
                resolved[spec.name] = natural
            else:
                guid = await self.sides.cds.guid_of(spec, company, value)
                if guid is None:
                    raise RejectedError(
                        f"{spec.cds_entity_set} '{value}' does not exist in Dataverse company {company}"
                        f" (lookup {spec.name} of {emap.name})",
                        system="cds",
                        status=404,
                        code="lookup-missing",
                    )
                resolved[spec.name] = guid
        return resolved

    async def _remember(
        self,
        w: _Write,
        target_projection: dict[str, Any],
        target_id: str | None,
        target_etag: str | None,
        written_at: datetime | None,
    ) -> None:
        """The ledger after a write to the target that started at ``written_at`` (None: no write)."""
        event = w.event
        cds_id = event.record_id if event.source is System.CDS else target_id
        projections = {event.source: w.projected, event.source.other: target_projection}
        etags = {event.source: w.source_etag, event.source.other: target_etag}
        await self._store(event, w.ledger, projections, cds_id, etags, {event.source.other: written_at})

    async def _store(
        self,
        event: ChangeEvent,
        previous: LedgerEntry | None,
        projections: dict[System, dict[str, Any]],
        cds_id: str | None,
        etags: dict[System, str | None],
        written: dict[System, datetime | None],
    ) -> None:
        def written_at(side: System) -> datetime | None:
            earlier = None if previous is None else last_written(previous, side)
            return written.get(side) or earlier

        await self.state.put_ledger(
            LedgerEntry(
                record_key=event.record_key,
                entity=event.entity,
                company=event.company,
                key=event.key,
                cds_id=cds_id,
                cds_image=projections[System.CDS],
                scm_image=projections[System.SCM],
                cds_written_at=written_at(System.CDS),
                scm_written_at=written_at(System.SCM),
                last_event_id=event.event_id,
                last_source_timestamp=event.source_timestamp,
                deleted=False,
                updated_at=datetime.now(UTC),
                cds_etag=etags[System.CDS],
                scm_etag=etags[System.SCM],
            ),
            drop_journal_of=journal_id(event),  # recorded: the undo entry is settled with it
        )

    async def _tombstone(self, event: ChangeEvent, emap: EntityMap, ledger: LedgerEntry | None) -> None:
        base = ledger or LedgerEntry(
            record_key=event.record_key,
            entity=event.entity,
            company=event.company,
            key=event.key,
            cds_id=event.record_id if event.source is System.CDS else None,
            cds_image={},
            scm_image={},
        )
        await self.state.put_ledger(
            replace_ledger(
                base, deleted=True, last_event_id=event.event_id, last_source_timestamp=event.source_timestamp
            ),
            drop_journal_of=journal_id(event),
        )


def _can_write_blind(target: System, synced: LedgerEntry | None, known_etag: str | None) -> bool:
    """One write to the target, without reading it first: it never had the record (``synced`` is
    None), or the ledger holds its ETag and the row's address (F&O: the natural key; Dataverse:
    the row id, which the ledger may not know yet)."""
    if synced is None:
        return True
    return known_etag is not None and (target is System.SCM or bool(synced.cds_id))


@dataclass(frozen=True, slots=True)
class _Write:
    """One change on its way to the target: what the write paths share."""

    event: ChangeEvent
    emap: EntityMap
    ledger: LedgerEntry | None
    target: Side
    payload: dict[str, Any]
    projected: dict[str, Any]  # the source's mapped values
    source_etag: str | None

    def ledger_row(self, etag: str | None) -> Row | None:
        """The target as the ledger last synced it (what a blind write overwrites)."""
        if etag is None or self.ledger is None:
            return None
        image = rules.ledger_image(self.ledger, self.target.system)
        record_id = self.ledger.cds_id if self.target.system is System.CDS else None
        return Row(image=dict(image), record_id=record_id, etag=etag)
