"""Comparing one record's two sides through its map: what differs, and what to write where.

Pure: the caller resolves lookups (``lookups_needed`` says which) and hands the answers in. The
rules, for a record paired by company and key (``bridge.core.pairing``):

- The *leading* side is the master when the master holds the record, else the side that does (a
  record on one side only is copied to the other, whichever it is).
- Fields that flow out of the leading side are written to the other side where they differ (the
  master wins differences); a record missing there is created with all of them.
- Fields that flow only the other way (a warehouse's ``msdyn_name`` from ``WarehouseId``) come
  back from the other side: from its row, or, for a record just created, from what the create
  writes (its key and payload), never from a row that did not exist.
- ``FieldSelection`` picks the fields: all; all but self-references (first pass); only
  self-references (second pass, once every row they may point at exists).

Values compare in the ledger's form (``EntityMap.project``): Dataverse lookups as GUIDs, F&O
references as natural keys, so the projections after the writes are what the ledger stores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bridge.core.entitymap import EntityMap, FieldMap, LookupSpec
from bridge.core.errors import RejectedError
from bridge.core.events import System
from bridge.core.pairing import RecordPair

# Lookups resolved for writes from a side: {source side: {LookupSpec.name: target value}}.
Resolved = Mapping[System, Mapping[str, str | None]]


class FieldSelection(StrEnum):
    ALL = "all"
    PLAIN = "plain"  # everything but lookups into the map's own table
    SELF_REFERENCES = "self-references"

    def takes(self, emap: EntityMap, f: FieldMap) -> bool:
        is_self = f.lookup is not None and f.lookup.cds_entity_set == emap.cds.entity_set
        if self is FieldSelection.ALL:
            return True
        return is_self if self is FieldSelection.SELF_REFERENCES else not is_self


class WriteKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"


@dataclass(frozen=True, slots=True)
class FieldDiff:
    """One column of the target (its read name) as it is and as it should be (ledger form)."""

    column: str
    current: Any
    wanted: Any


@dataclass(frozen=True, slots=True)
class PlannedWrite:
    target: System
    kind: WriteKind
    payload: dict[str, Any]  # write form, without key and company (the sides add them)
    fields: tuple[FieldDiff, ...]  # an update: the differing columns; a create: every one written

    @property
    def columns(self) -> list[str]:
        return [d.column for d in self.fields]


@dataclass(frozen=True, slots=True)
class LookupNeed:
    """A reference to resolve before planning: ``value`` from ``source`` (a GUID from Dataverse,
    a natural key from F&O) into the other side's terms."""

    source: System
    spec: LookupSpec
    value: str


@dataclass(frozen=True, slots=True)
class RecordPlan:
    pair: RecordPair
    master: System
    writes: tuple[PlannedWrite, ...]
    # Both sides' projections once the writes are made: the ledger's images of the record.
    projections: dict[System, dict[str, Any]] = field(default_factory=dict)

    @property
    def unchanged(self) -> bool:
        return not self.writes

    def write_to(self, side: System) -> PlannedWrite | None:
        return next((w for w in self.writes if w.target is side), None)


@dataclass(frozen=True, slots=True)
class _Direction:
    """What one direction of a map compares, worked out once per map, side and selection."""

    source: System
    fields: tuple[FieldMap, ...]
    lookups: tuple[LookupSpec, ...]  # of these fields
    names: dict[str, str]  # write name on the target -> the target's read name of the column
    placeholders: dict[str, str | None]  # every lookup of the source, unresolved


@dataclass(frozen=True, slots=True)
class _Shape:
    forward: _Direction
    back: _Direction | None  # fields that flow only from the other side


_SHAPES: dict[tuple[int, System, FieldSelection], tuple[EntityMap, _Shape]] = {}


def _direction(emap: EntityMap, source: System, fields: list[FieldMap]) -> _Direction:
    wanted = {f.cds for f in fields if f.lookup is not None}
    specs = emap.lookups_from(source)
    return _Direction(
        source,
        tuple(fields),
        tuple(s for s in specs if s.name in wanted),
        {_write_name(f, source.other): f.column(source.other) for f in fields},
        {s.name: None for s in specs},
    )


def _shape(emap: EntityMap, lead: System, selection: FieldSelection) -> _Shape:
    key = (id(emap), lead, selection)
    cached = _SHAPES.get(key)
    if cached is not None and cached[0] is emap:
        return cached[1]
    forward = [f for f in emap.fields_from(lead) if selection.takes(emap, f)]
    back = [
        f
        for f in emap.fields_from(lead.other)
        if not f.direction.flows_from(lead) and selection.takes(emap, f)
    ]
    shape = _Shape(_direction(emap, lead, forward), _direction(emap, lead.other, back) if back else None)
    _SHAPES[key] = (emap, shape)  # the map is kept with it, so its id is not reused meanwhile
    return shape


@dataclass(frozen=True, slots=True)
class _Leg:
    """One direction of a record's comparison: fields flowing ``source`` -> ``target``."""

    way: _Direction
    source_image: dict[str, Any]
    target_image: dict[str, Any] | None

    @property
    def source(self) -> System:
        return self.way.source


def _legs(emap: EntityMap, pair: RecordPair, master: System, selection: FieldSelection) -> list[_Leg]:
    lead_side = master if pair.side(master) is not None else master.other
    lead = pair.side(lead_side)
    if lead is None:
        raise ValueError(f"record {pair.company}/{pair.key} is on neither side")
    other = pair.side(lead_side.other)
    shape = _shape(emap, lead_side, selection)
    legs = [_Leg(shape.forward, lead.image, None if other is None else other.image)]
    back = shape.back
    if back is None:
        return legs
    if other is not None:
        legs.append(_Leg(back, other.image, lead.image))
        return legs
    # Created now: only what the create writes is known of it.
    created = _created_image(emap, lead_side.other, pair, legs[0])
    known = [f for f in back.fields if f.column(back.source) in created]
    if known:
        legs.append(_Leg(_direction(emap, back.source, known), created, lead.image))
    return legs


def _created_image(emap: EntityMap, side: System, pair: RecordPair, leg: _Leg) -> dict[str, Any]:
    """The row a create on ``side`` makes, in read form, as far as it is known without reading it."""
    payload = emap.to_target(leg.source, leg.source_image, leg.way.placeholders)
    if side is System.SCM:
        return {**payload, emap.scm.key_field: pair.key, emap.scm.company_field: pair.company.lower()}
    return {**emap.synced_projection(System.CDS, payload), emap.cds.key_field: pair.key}


def lookups_needed(
    emap: EntityMap, pair: RecordPair, master: System, selection: FieldSelection = FieldSelection.ALL
) -> list[LookupNeed]:
    """The non-empty references ``plan_record`` will need resolved for this record."""
    out: list[LookupNeed] = []
    for leg in _legs(emap, pair, master, selection):
        for spec in leg.way.lookups:
            if (value := spec.value(leg.source_image)) is not None:
                out.append(LookupNeed(leg.source, spec, value))
    return out


def has_lookups(emap: EntityMap) -> bool:
    """Whether the map has any reference to resolve (if not, ``lookups_needed`` is always empty)."""
    return any(f.lookup is not None for f in emap.fields)


def _write_name(f: FieldMap, target: System) -> str:
    if target is System.CDS and f.lookup is not None:
        return f.bind_name
    return f.column(target)


def _plan_leg(
    emap: EntityMap, leg: _Leg, resolved: Mapping[str, str | None]
) -> tuple[PlannedWrite | None, dict[str, Any]]:
    target = leg.source.other
    for spec in leg.way.lookups:
        value = spec.value(leg.source_image)
        if value is not None and resolved.get(spec.name) is None:
            where = "Dataverse" if target is System.CDS else "F&O"
            raise RejectedError(
                f"{spec.cds_entity_set} {value!r} referenced by {spec.name}"
                f" of {emap.name} is not in {where}: sync the referenced records first",
                system=target.value,
                status=404,
                code="lookup-missing",
            )
    lookups = {**leg.way.placeholders, **resolved} if resolved else leg.way.placeholders
    full = emap.to_target(leg.source, leg.source_image, lookups)
    names = leg.way.names
    payload = {name: value for name, value in full.items() if name in names}
    current = {} if leg.target_image is None else emap.project(target, leg.target_image)
    wanted = emap.synced_projection(target, payload, current)
    if leg.target_image is None:
        fields = tuple(FieldDiff(column, None, wanted.get(column)) for column in names.values())
        return PlannedWrite(target, WriteKind.CREATE, payload, fields), wanted
    differing = [
        (name, column) for name, column in names.items() if current.get(column) != wanted.get(column)
    ]
    if not differing:
        return None, wanted
    diffs = tuple(FieldDiff(column, current.get(column), wanted.get(column)) for _, column in differing)
    return PlannedWrite(target, WriteKind.UPDATE, {n: payload[n] for n, _ in differing}, diffs), wanted


def plan_record(
    emap: EntityMap,
    pair: RecordPair,
    master: System,
    resolved: Resolved | None = None,
    selection: FieldSelection = FieldSelection.ALL,
    *,
    with_projections: bool = True,
) -> RecordPlan:
    """What to write to bring the record's two sides together, master winning differences.

    ``resolved`` answers ``lookups_needed`` ({source: {spec name: GUID or natural key}}); a needed
    reference missing from it (or None) raises ``RejectedError`` (code ``lookup-missing``), as does
    a value no value map converts (code ``value-map``). ``with_projections=False`` leaves the
    ledger's images out (a second pass plans many records and writes few: plan those again)."""
    resolved = resolved or {}
    writes: list[PlannedWrite] = []
    projections: dict[System, dict[str, Any]] = {}
    for leg in _legs(emap, pair, master, selection):
        if not with_projections and all(f.lookup is not None for f in leg.way.fields):
            write = _plan_references(leg, resolved.get(leg.source, {}))
        else:
            write, after = _plan_leg(emap, leg, resolved.get(leg.source, {}))
            projections[leg.source.other] = after
        if write is not None:
            writes.append(write)
        if with_projections:
            projections.setdefault(leg.source, emap.project(leg.source, leg.source_image))
    # The back leg's target is the leading side: its projection "after" includes what comes back.
    return RecordPlan(pair, master, tuple(writes), projections if with_projections else {})


def _reference(side: System, raw: Any) -> str | None:
    """A reference as the ledger compares it: a Dataverse GUID in lower case, an F&O id, or None."""
    if raw is None or raw == "":
        return None
    text = str(raw)
    return text.lower() if side is System.CDS else text


def _plan_references(leg: _Leg, resolved: Mapping[str, str | None]) -> PlannedWrite | None:
    """``_plan_leg`` for a leg of lookups only (a second pass): just those columns, not the row."""
    target = leg.source.other
    payload: dict[str, Any] = {}
    diffs: list[FieldDiff] = []
    by_name = {f.cds: f for f in leg.way.fields}
    for spec in leg.way.lookups:
        f = by_name[spec.name]
        value = spec.value(leg.source_image)
        wanted = None if value is None else resolved.get(spec.name)
        if value is not None and wanted is None:
            raise RejectedError(
                f"{spec.cds_entity_set} {value!r} referenced by {spec.name} is not on the target:"
                " sync it first",
                system=target.value,
                status=404,
                code="lookup-missing",
            )
        if wanted is None and target is System.SCM:
            wanted = f.default.get(target)
        wanted = _reference(target, wanted)
        column = f.column(target)
        current = _reference(target, (leg.target_image or {}).get(column))
        if current == wanted:
            continue
        diffs.append(FieldDiff(column, current, wanted))
        if target is System.CDS:
            payload[spec.target_column] = None if wanted is None else f"/{spec.cds_entity_set}({wanted})"
        else:
            payload[spec.target_column] = wanted or ""  # F&O strings are not nullable
    if not diffs:
        return None
    kind = WriteKind.UPDATE if leg.target_image is not None else WriteKind.CREATE
    return PlannedWrite(target, kind, payload, tuple(diffs))


def differing_columns(plan: RecordPlan) -> dict[str, list[str]]:
    """{target side: the columns written there}, for reports ("cds": ["msdyn_description"])."""
    return {w.target.value: w.columns for w in plan.writes}


def summarize(plans: Sequence[RecordPlan]) -> dict[str, int]:
    """How many plans create, update or leave unchanged (a record may do both: counted per write)."""
    out = {"create": 0, "update": 0, "unchanged": 0}
    for plan in plans:
        if plan.unchanged:
            out["unchanged"] += 1
        for write in plan.writes:
            out[write.kind.value] += 1
    return out
