"""Apply one change to the other system: the rules in order, the write, the ledger, and what to do
when the other system says no.

    echo? -> skip                 (our own write coming back)
    stale? -> skip                (an older change than the last one applied: reordered delivery)
    delete -> delete on target    (tombstone in the ledger)
    no mapped change? -> skip     (projection equals the ledger: duplicates, unknown-principal echoes)
    conflict? -> policy           (target changed since the last sync: newer-wins / cds-wins / scm-wins)
    write -> ledger               (a write carries every mapped field)

A rejection (``RejectedError``) is returned to the caller: the worker answers a synchronous webhook
with it, or compensates the originator for an asynchronous change (``compensate``). Every successful
write returns an ``Undo`` so a write whose synchronous originator gave up can be reverted.
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
from bridge.core.mapping import EntityMap, MappingSet
from bridge.engine.sides import CdsSide, Row, ScmSide, Side
from bridge.state.base import LedgerEntry, StatePort

log = logging.getLogger(__name__)


class Result(StrEnum):
    APPLIED = "applied"
    SKIPPED = "skipped"
    CONFLICT_LOST = "conflict-lost"  # the target's newer change won; the source was brought in line


@dataclass(frozen=True, slots=True)
class Undo:
    """What a write changed on the target, to put it back."""

    target: System
    emap: EntityMap
    company: str
    key: str
    before: Row | None  # None: the write created the record
    deleted: bool  # the write was a delete
    ledger_before: LedgerEntry | None


@dataclass(frozen=True, slots=True)
class Applied:
    result: Result
    reason: str = ""
    undo: Undo | None = None
    details: dict[str, Any] = field(default_factory=dict)


def direction(source: System) -> str:
    return f"{source.value}->{source.other.value}"


class Applier:
    def __init__(
        self, *, mappings: MappingSet, state: StatePort, cds: CdsSide, scm: ScmSide, own_ids: set[str]
    ) -> None:
        self.mappings = mappings
        self.state = state
        self.cds = cds
        self.scm = scm
        self.own_ids = own_ids  # our Dataverse user id and our Entra object id

    def side(self, system: System) -> Side:
        return self.cds if system is System.CDS else self.scm

    async def apply(self, event: ChangeEvent) -> Applied:
        emap = self.mappings.maps[event.entity]
        if rules.is_echo(event, self.own_ids):
            return Applied(Result.SKIPPED, "echo")
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

    async def _undefer(self, event: ChangeEvent, emap: EntityMap) -> ChangeEvent | None:
        """Read the committed Dataverse row of an event received without its key."""
        assert event.record_id is not None
        row = await self.cds.client.get(emap.cds.entity_set, event.record_id)
        if row is None:
            return None
        company_id = row.get(emap.cds.company_read)
        code = await self.cds.client.company_code(str(company_id)) if company_id else None
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
        if (
            synced
            and event.operation is Operation.UPDATE
            and event.changed
            and not emap.touches_mapped(event.source, event.changed)
        ):
            return Applied(Result.SKIPPED, "no mapped field changed")
        projected = emap.project(event.source, image)
        if ledger is not None and synced and rules.is_noop(emap, event.source, projected, ledger):
            return Applied(Result.SKIPPED, "no change since last sync")
        payload = emap.to_target(
            event.source, image, await self._resolve(emap, event.source, image, event.company)
        )
        write = _Write(event, emap, ledger, target, payload, projected, _source_etag(event, image))
        # One call to the target, no read first, when the ledger says what the target held (its ETag)
        # or that it never had the record; the target's answer says if that is no longer so.
        known = _etag(ledger, target.system) if synced else None
        if (known is not None and (target.system is System.SCM or (ledger and ledger.cds_id))) or not synced:
            journalled = await self._journal(
                event, target.system, write.ledger_row(known), ledger, deleted=False
            )
            try:
                return await self._write_blind(write, known)
            except ConflictError:
                if journalled:
                    await self.state.drop_journal(event.event_id)  # refused: nothing was written
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
                Undo(target.system, emap, event.company, event.key, before, False, w.ledger),
            )
        started = datetime.now(UTC)
        created_id, new_etag = await target.create(
            emap, event.company, event.key, w.payload, record_id=_cds_id_for_create(event, w.ledger)
        )
        await self._remember(
            w, emap.synced_projection(target.system, w.payload), created_id, new_etag, started
        )
        return Applied(
            Result.APPLIED,
            "created",
            Undo(target.system, emap, event.company, event.key, None, False, w.ledger),
        )

    async def _write_after_read(self, w: _Write, image: dict[str, Any]) -> Applied:
        """The target changed since the last sync (or we do not know its state): read it, apply the
        conflict rules, then write against the ETag just read."""
        event, emap, ledger, target = w.event, w.emap, w.ledger, w.target
        current = await target.read(emap, event.company, event.key, record_id=_target_id(event, ledger))
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
                if winner is target.system:
                    return await self._conflict_lost(event, emap, ledger, current, image)
        await self._journal(event, target.system, current, ledger, deleted=False)
        started = datetime.now(UTC)
        try:
            if current is None:
                created_id, new_etag = await target.create(
                    emap, event.company, event.key, w.payload, record_id=_cds_id_for_create(event, ledger)
                )
                await self._remember(
                    w, emap.synced_projection(target.system, w.payload), created_id, new_etag, started
                )
                return Applied(
                    Result.APPLIED,
                    "created",
                    Undo(target.system, emap, event.company, event.key, None, False, ledger),
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
            Undo(target.system, emap, event.company, event.key, current, False, ledger),
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
            await self._resolve(emap, target_system, current.image, event.company),
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
        current = await target.read(emap, event.company, event.key, record_id=_target_id(event, ledger))
        if current is None:
            await self._tombstone(event, emap, ledger)
            return Applied(Result.SKIPPED, "already absent")
        await self._journal(event, target.system, current, ledger, deleted=True)
        await target.delete(emap, event.company, event.key, current)
        await self._tombstone(event, emap, ledger)
        return Applied(
            Result.APPLIED,
            "deleted",
            Undo(target.system, emap, event.company, event.key, current, True, ledger),
        )

    # ------------------------------------------------------------------ compensation and undo
    async def compensate(self, event: ChangeEvent, ledger: LedgerEntry | None) -> str:
        """Put the originator back as it was before a change the other side rejected."""
        try:
            return await self._compensate(event, ledger)
        except ConflictError as exc:
            # The originator changed again meanwhile: look again on the next attempt.
            raise RetryableError(
                f"record changed while compensating: {exc.message}", system=exc.system
            ) from exc

    async def _compensate(self, event: ChangeEvent, ledger: LedgerEntry | None) -> str:
        emap = self.mappings.maps[event.entity]
        source = self.side(event.source)
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
            await self._mark_written(_replace(ledger, deleted=False), event.source, started)
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
        await self._mark_written(ledger, event.source, started)
        return f"restored the last synced values on {event.source.value}"

    async def undo(self, undo: Undo) -> None:
        """Revert a write whose synchronous originator gave up (its transaction rolled back)."""
        side = self.side(undo.target)
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
        await self._mark_written(undo.ledger_before or _empty_ledger(undo), undo.target, started)

    async def revert_if_applied(self, event: ChangeEvent) -> bool:
        """After a crash: undo a synchronous write whose originator never got our answer."""
        entry = await self.state.get_journal(event.event_id)
        if entry is None:
            return False  # journalled before every write: no entry, no write
        emap = self.mappings.maps[event.entity]
        before = entry["before"]
        ledger_before = entry["ledger_before"]
        await self.undo(
            Undo(
                target=System(entry["target"]),
                emap=emap,
                company=event.company,
                key=event.key,
                before=None if before is None else _row_from_json(before),
                deleted=bool(entry["deleted"]),
                ledger_before=None if ledger_before is None else _ledger_from_json(ledger_before),
            )
        )
        await self.state.drop_journal(event.event_id)
        return True

    async def settle(self, event: ChangeEvent) -> None:
        """The synchronous originator has its answer: the undo journal entry is no longer needed."""
        if event.mode is SyncMode.SYNC:
            await self.state.drop_journal(event.event_id)

    # ------------------------------------------------------------------ helpers
    async def _journal(
        self,
        event: ChangeEvent,
        target: System,
        before: Row | None,
        ledger: LedgerEntry | None,
        *,
        deleted: bool,
    ) -> bool:
        """Write the undo journal entry of a synchronous change; True if this call wrote it."""
        if event.mode is not SyncMode.SYNC:
            return False
        if await self.state.get_journal(event.event_id) is not None:
            return False  # an earlier attempt may have written (timeout): its "before" is the true one
        await self.state.put_journal(
            event.event_id,
            {
                "target": target.value,
                "before": None if before is None else _row_to_json(before),
                "ledger_before": None if ledger is None else _ledger_to_json(ledger),
                "deleted": deleted,
            },
        )
        return True

    async def _resolve(
        self, emap: EntityMap, source: System, image: dict[str, Any], company: str
    ) -> dict[str, str | None]:
        resolved: dict[str, str | None] = {}
        for spec in emap.lookups_from(source):
            value = spec.value(image)
            if value is None:
                resolved[spec.name] = None
            elif source is System.CDS:
                natural = await self.cds.natural_key(spec, value)
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
                guid = await self.cds.guid_of(spec, company, value)
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
            earlier = None if previous is None else _written(previous, side)
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
            )
        )

    async def _mark_written(self, ledger: LedgerEntry | None, side: System, at: datetime) -> None:
        """Record a write to ``side`` made outside the normal path (compensation, undo)."""
        if ledger is not None:
            field = "cds_written_at" if side is System.CDS else "scm_written_at"
            await self.state.put_ledger(_replace(ledger, **{field: at}))

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
            _replace(
                base, deleted=True, last_event_id=event.event_id, last_source_timestamp=event.source_timestamp
            )
        )


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
        return Row(dict(image), record_id, etag, None)


def _etag(ledger: LedgerEntry | None, side: System) -> str | None:
    if ledger is None:
        return None
    return ledger.cds_etag if side is System.CDS else ledger.scm_etag


def _source_etag(event: ChangeEvent, image: dict[str, Any]) -> str | None:
    """The source row's ETag after this change, when the image tells it (Dataverse: W/"versionnumber")."""
    etag = image.get("@odata.etag")
    if isinstance(etag, str):
        return etag
    version = image.get("versionnumber")
    return f'W/"{version}"' if event.source is System.CDS and version is not None else None


def _target_id(event: ChangeEvent, ledger: LedgerEntry | None) -> str | None:
    """The Dataverse row id when Dataverse is the target and we know it."""
    return ledger.cds_id if event.source is System.SCM and ledger is not None else None


def _cds_id_for_create(event: ChangeEvent, ledger: LedgerEntry | None) -> str | None:
    # Re-creating a record we knew keeps its Dataverse id, so references to it stay valid.
    return ledger.cds_id if event.source is System.SCM and ledger is not None and ledger.deleted else None


def _row_to_json(row: Row) -> dict[str, Any]:
    return {
        "image": row.image,
        "record_id": row.record_id,
        "etag": row.etag,
        "modified_at": row.modified_at.isoformat() if row.modified_at else None,
    }


def _row_from_json(data: dict[str, Any]) -> Row:
    modified = data.get("modified_at")
    return Row(
        data["image"],
        data.get("record_id"),
        data.get("etag"),
        datetime.fromisoformat(modified) if modified else None,
    )


_LEDGER_TIMES = ("cds_written_at", "scm_written_at", "last_source_timestamp", "updated_at")


def _written(ledger: LedgerEntry, side: System) -> datetime | None:
    return ledger.cds_written_at if side is System.CDS else ledger.scm_written_at


def _ledger_to_json(entry: LedgerEntry) -> dict[str, Any]:
    values = {name: getattr(entry, name) for name in LedgerEntry.__slots__}
    for name in _LEDGER_TIMES:
        values[name] = values[name].isoformat() if values[name] else None
    return values


def _ledger_from_json(data: dict[str, Any]) -> LedgerEntry:
    values = dict(data)
    for name in _LEDGER_TIMES:
        values[name] = datetime.fromisoformat(values[name]) if values.get(name) else None
    return LedgerEntry(**values)


def _replace(entry: LedgerEntry, **changes: Any) -> LedgerEntry:
    values = {name: getattr(entry, name) for name in LedgerEntry.__slots__}
    values.update(changes, updated_at=datetime.now(UTC))
    return LedgerEntry(**values)


def _empty_ledger(undo: Undo) -> LedgerEntry:
    from bridge.core.events import record_key

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
