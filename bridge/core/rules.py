"""The sync rules: echo, mapped change, no-op, staleness, conflict detection and resolution.

Pure functions over a ``ChangeEvent``, an ``EntityMap`` and the ledger's ``LedgerEntry``; the engine's
applier (``bridge.engine.apply``) applies them in this order for a create/update:

1. ``is_echo``: the bridge's own write coming back -> skip.
2. ``is_stale``: an older change than the last one applied (reordered delivery) -> skip.
3. ``mapped_change``: no mapped column changed -> skip.
4. ``is_noop``: the source's projection equals what was last synced -> skip (echo by an unknown
   principal, or a duplicate).
5. ``detect_conflict`` + ``resolve_conflict``: the target changed too since the last sync -> the
   policy picks the side whose values both systems end with; under ``manual`` none: the conflict is
   parked, nothing is written, and an administrator picks (``resolved_values`` builds the winner).

Projections compared here come from ``EntityMap.project`` (normalised values); a column absent from
a ledger image counts as null.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from bridge.core.entitymap import ConflictPolicy, EntityMap
from bridge.core.events import ChangeEvent, Operation, System
from bridge.core.ledger import LedgerEntry


def ledger_image(ledger: LedgerEntry, side: System) -> dict[str, Any]:
    """The ledger's last-synced projection of ``side``."""
    return ledger.cds_image if side is System.CDS else ledger.scm_image


def changed_fields(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> dict[str, Any]:
    """Columns whose value differs between two images, with their new values.

    A column missing on one side counts as null, so removing a value shows up as ``{col: None}``."""
    before = before or {}
    return {k: after.get(k) for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)}


def is_echo(event: ChangeEvent, own_principals: Collection[str]) -> bool:
    """Whether the bridge itself made this change: ``initiated_by`` is one of its own ids (the
    Dataverse systemuser id from WhoAmI, the ``oid`` of its F&O token). GUIDs compare case-blind."""
    if not event.initiated_by:
        return False
    own = {p.strip("{}").lower() for p in own_principals}
    return event.initiated_by.strip("{}").lower() in own


def mapped_change(emap: EntityMap, event: ChangeEvent) -> bool:
    """Whether the event can need a write: creates and deletes always; an update only when a column
    flowing out of the source changed. ``changed`` is used when given, else the difference between
    the pre- and post-images; with neither (a body without images) the answer is yes."""
    if event.operation is not Operation.UPDATE:
        return True
    changed: Mapping[str, Any] = event.changed
    if not changed and event.pre_image is not None and event.image is not None:
        changed = changed_fields(event.pre_image, event.image)
    elif not changed:
        return True
    return emap.touches_mapped(event.source, changed)


def _differs(emap: EntityMap, side: System, current: Mapping[str, Any], synced: Mapping[str, Any]) -> bool:
    return any(current.get(c) != synced.get(c) for c in emap.source_columns(side))


def is_noop(
    emap: EntityMap, event_side: System, projected_image: Mapping[str, Any], ledger: LedgerEntry | None
) -> bool:
    """Whether ``event_side``'s projected row equals what the ledger last synced for that side, over
    the columns that flow out of it: then there is nothing to write. No ledger entry, or a deleted
    one, means there is."""
    if ledger is None or ledger.deleted:
        return False
    return not _differs(emap, event_side, projected_image, ledger_image(ledger, event_side))


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


def is_stale(event: ChangeEvent, ledger: LedgerEntry | None) -> bool:
    """Whether the event is older (by source timestamp) than the newest change already applied to
    the record, from either side: a reordered delivery. Equal timestamps are not stale (the same
    change again is a duplicate, caught by the event id and ``is_noop``). Naive times count as UTC."""
    if ledger is None or ledger.last_source_timestamp is None:
        return False
    return _utc(event.source_timestamp) < _utc(ledger.last_source_timestamp)


def is_superseded(event: ChangeEvent, ledger: LedgerEntry | None) -> bool:
    """Whether the bridge wrote to the event's own side after this change was made there.

    Such a write succeeded with a matching If-Match, so every earlier change on that side was either
    synced already or deliberately overwritten (it lost a conflict): its late notification must not
    travel. (Event times have milliseconds; the systems' modified times only whole seconds, which is
    why a conflict's loser is recognised this way and not by comparing timestamps across systems.)"""
    if ledger is None:
        return False
    written = ledger.cds_written_at if event.source is System.CDS else ledger.scm_written_at
    return written is not None and _utc(event.source_timestamp) < _utc(written)


def detect_conflict(
    emap: EntityMap,
    target_side: System,
    target_current_projection: Mapping[str, Any] | None,
    ledger: LedgerEntry | None,
) -> bool:
    """Whether the target changed since the last sync too: its current values of the columns that
    flow out of it differ from the ledger's image of it. Without a ledger entry (never synced) or
    without a target row there is nothing to conflict with."""
    if ledger is None or ledger.deleted or target_current_projection is None:
        return False
    return _differs(emap, target_side, target_current_projection, ledger_image(ledger, target_side))


def resolve_conflict(
    policy: ConflictPolicy, source: System, source_ts: datetime | None, target_ts: datetime | None
) -> System | None:
    """The side whose values win. cds-wins / scm-wins: that side. newer-wins: the side with the later
    modified timestamp; a missing timestamp loses to a known one; a tie (or both missing) goes to
    Dataverse, so the outcome never depends on which side's event arrived first. manual: None, the
    conflict waits for an administrator."""
    if policy is ConflictPolicy.MANUAL:
        return None
    if policy is ConflictPolicy.CDS_WINS:
        return System.CDS
    if policy is ConflictPolicy.SCM_WINS:
        return System.SCM
    target = source.other
    if source_ts is None or target_ts is None:
        if source_ts is target_ts:
            return System.CDS
        return source if target_ts is None else target
    s, t = _utc(source_ts), _utc(target_ts)
    if s == t:
        return System.CDS
    return source if s > t else target


def editable_columns(emap: EntityMap, side: System) -> frozenset[str]:
    """The columns of ``side`` an administrator may edit when that side wins a parked conflict."""
    return frozenset(f.column(side) for f in emap.fields_from(side) if f.lookup is None)


def resolved_values(
    emap: EntityMap, winner: System, current: Mapping[str, Any], edits: Mapping[str, Any]
) -> dict[str, Any]:
    """The winning version an administrator chose for a parked conflict: the winner's current row
    with the administrator's edits over it. Edits name the winner's own columns, and only plain
    columns that flow out of it (what the other side receives; lookups are chosen by reference, not
    typed); any other name is a ``ValueError`` saying which columns may be edited."""
    allowed = editable_columns(emap, winner)
    unknown = sorted(set(edits) - allowed)
    if unknown:
        raise ValueError(
            f"not an editable {winner.value} column of {emap.name}: {', '.join(unknown)}; "
            f"editable: {', '.join(sorted(allowed))}"
        )
    return {**current, **edits}
