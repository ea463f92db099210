"""Entity maps: which Dataverse columns pair with which F&O properties, and how values change form.

One YAML file per entity (``mappings/<name>.yaml``, format in docs/mappings.md, loaded by
``bridge.core.mapping``) becomes an ``EntityMap``. Everything here is pure: lookups that need the
other system (a GUID for a natural key, or back) are exposed as ``LookupSpec``s for the engine to
resolve, and their answers are taken in.

Column names are the systems' Web API *read* names: Dataverse lookups appear in images and
projections as ``_<column>_value`` (a GUID) and are written as ``<nav>@odata.bind``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints

from bridge.core.errors import ConfigError, RejectedError
from bridge.core.events import System
from bridge.core.valuemaps import BUILTIN_MAPS, EnumMap, ValueMap

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class Direction(StrEnum):
    BOTH = "both"
    TO_SCM = "to_scm"
    TO_CDS = "to_cds"

    def flows_from(self, side: System) -> bool:
        towards_other = Direction.TO_SCM if side is System.CDS else Direction.TO_CDS
        return self is Direction.BOTH or self is towards_other


class ConflictPolicy(StrEnum):
    NEWER_WINS = "newer-wins"
    CDS_WINS = "cds-wins"
    SCM_WINS = "scm-wins"
    MANUAL = "manual"  # parked for an administrator, who picks a version (docs/mappings.md)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CdsSide(_Model):
    entity_set: Name
    logical_name: Name
    primary_id: Name
    key_field: Name = Field(description="Natural key column, e.g. msdyn_warehouseidentifier")
    company_field: Name = "msdyn_company"
    company_entity_set: Name = "cdm_companies"
    company_key_field: Name = "cdm_companycode"

    @property
    def company_read(self) -> str:
        return f"_{self.company_field}_value"


class ScmSide(_Model):
    entity_set: Name
    entity_name: Name = Field(description="Public entity name; data events name it 'mserp_' + lower()")
    key_field: Name
    company_field: Name = "dataAreaId"

    @property
    def event_name(self) -> str:
        return f"mserp_{self.entity_name.lower()}"


class Lookup(_Model):
    """A Dataverse lookup paired with an F&O id column, matched by the referenced row's natural key."""

    cds_entity_set: Name
    cds_key_field: Name
    cds_nav: Name | None = Field(default=None, description="Navigation property; default: the column")
    scm_entity_set: Name | None = None
    scm_key_field: Name | None = None


class EnumTable(_Model):
    kind: str = Field(default="enum", pattern="^enum$")
    values: dict[str, int] = Field(min_length=1, description="F&O label -> Dataverse option value")


class FieldMap(_Model):
    cds: Name
    scm: Name
    direction: Direction = Direction.BOTH
    map: Name | None = Field(default=None, description="Value map: copy, number, noyes, date or a table")
    lookup: Lookup | None = None
    default: dict[System, Any] = Field(default_factory=dict, description="Per target side, wire form")

    def column(self, side: System) -> str:
        """The column's read name on ``side`` (Dataverse lookups: ``_<col>_value``)."""
        if side is System.SCM:
            return self.scm
        return f"_{self.cds}_value" if self.lookup else self.cds

    @property
    def bind_name(self) -> str:
        """Dataverse lookups' write name: '<nav>@odata.bind'."""
        nav = self.lookup.cds_nav if self.lookup and self.lookup.cds_nav else self.cds
        return f"{nav}@odata.bind"


@dataclass(frozen=True, slots=True)
class LookupSpec:
    """One reference to resolve before writing ``source``'s change to the other side.

    From CDS: read the GUID's row in ``cds_entity_set`` and take its ``cds_key_field`` (the natural
    key, sent to F&O as is). From SCM: find the row of ``cds_entity_set`` in the same company whose
    ``cds_key_field`` equals the id (its GUID). Resolve to None when no reference is wanted.
    """

    name: str  # the Dataverse column; key of the ``resolved`` mapping
    source: System
    source_column: str  # read name in the source image
    target_column: str  # write name on the target ("<nav>@odata.bind" or the F&O property)
    cds_entity_set: str
    cds_key_field: str
    cds_nav: str
    scm_entity_set: str | None
    scm_key_field: str | None
    self_reference: bool

    def value(self, image: Mapping[str, Any]) -> str | None:
        """The normalised value to resolve (a GUID or a natural key), None if the reference is empty."""
        return _lookup_value(self.source, image.get(self.source_column))


@dataclass(frozen=True, slots=True)
class _Slot:
    """One field as seen from one side, worked out once per map (the hot paths loop over these)."""

    field: FieldMap
    vmap: ValueMap | None
    column: str  # read name on this side
    alias: str | None  # Dataverse lookups: the logical name, tolerated holding the GUID
    flows: bool  # the field flows out of this side
    target_column: str  # write name on the other side
    spec: LookupSpec | None  # a lookup flowing out of this side
    bind: str | None  # Dataverse lookups read on this (CDS) side: their write name


def _lookup_value(side: System, raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise RejectedError(f"reference {raw!r} from {side.value} is not a string", code="value-map")
    if side is System.SCM:
        return raw
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise RejectedError(f"reference {raw!r} from cds is not a GUID", code="value-map") from None


def _bind_path(entity_set: str, guid: str | None) -> str | None:
    return None if guid is None else f"/{entity_set}({guid})"


def _unbind(value: Any) -> str | None:
    """'/msdyn_sites(<guid>)' (or an absolute URL ending so) -> '<guid>'."""
    if value is None:
        return None
    text = str(value)
    start, end = text.rfind("("), text.rfind(")")
    return _lookup_value(System.CDS, text[start + 1 : end] if 0 <= start < end else text)


class EntityMap(_Model):
    """One entity pair: both sides' tables, the conflict policy and the field pairs.

    Build it with ``model_validate`` (or the loader): its checks and value maps are set up after
    validation, so ``model_copy(update=...)`` would leave them stale."""

    name: Name
    description: str | None = None
    conflict_policy: ConflictPolicy = ConflictPolicy.NEWER_WINS
    cds: CdsSide
    scm: ScmSide
    value_maps: dict[Name, EnumTable] = Field(default_factory=dict)
    fields: list[FieldMap] = Field(min_length=1)

    _maps: list[ValueMap | None] = PrivateAttr(default_factory=list)
    _scm_by_attribute: dict[str, str] = PrivateAttr(default_factory=dict)  # "mserp_<lower>" -> property
    _slots: dict[System, tuple[_Slot, ...]] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        self._check_value_maps()
        self._maps = [self._value_map(i, f) for i, f in enumerate(self.fields)]
        names = {f.scm for f in self.fields} | {self.scm.key_field, self.scm.company_field}
        for name in sorted(names, reverse=True):  # on a case-only clash the first in order wins
            self._scm_by_attribute["mserp_" + name.lower()] = name
        self._check_columns()
        for i, f in enumerate(self.fields):
            self._check_default(i, f)
        self._slots = {
            side: tuple(self._slot(side, f, m) for f, m in zip(self.fields, self._maps, strict=True))
            for side in System
        }

    def _slot(self, side: System, f: FieldMap, vmap: ValueMap | None) -> _Slot:
        target = side.other
        flows = f.direction.flows_from(side)
        spec = None
        if flows and f.lookup is not None:
            spec = LookupSpec(
                name=f.cds,
                source=side,
                source_column=f.column(side),
                target_column=f.bind_name if target is System.CDS else f.scm,
                cds_entity_set=f.lookup.cds_entity_set,
                cds_key_field=f.lookup.cds_key_field,
                cds_nav=f.lookup.cds_nav or f.cds,
                scm_entity_set=f.lookup.scm_entity_set,
                scm_key_field=f.lookup.scm_key_field,
                self_reference=f.lookup.cds_entity_set == self.cds.entity_set,
            )
        is_cds_lookup = side is System.CDS and f.lookup is not None
        return _Slot(
            field=f,
            vmap=vmap,
            column=f.column(side),
            alias=f.cds if is_cds_lookup else None,
            flows=flows,
            target_column=f.bind_name if target is System.CDS and f.lookup is not None else f.column(target),
            spec=spec,
            bind=f.bind_name if is_cds_lookup else None,
        )

    # ------------------------------------------------------------ validation (raises ConfigError)
    def _value_map(self, index: int, f: FieldMap) -> ValueMap | None:
        where = f"fields[{index}].map"
        if f.lookup is not None:
            if f.map is not None:
                raise ConfigError("a lookup takes no value map", field=where)
            return None
        name = f.map or "copy"
        if name in self.value_maps:
            return EnumMap(name, self.value_maps[name].values)
        if name in BUILTIN_MAPS:
            return BUILTIN_MAPS[name]
        raise ConfigError(f"unknown value map '{name}'", field=where)

    def _check_value_maps(self) -> None:
        for name, table in self.value_maps.items():
            if name in BUILTIN_MAPS:
                raise ConfigError(f"'{name}' is a built-in value map", field=f"value_maps.{name}")
            if len(set(table.values.values())) != len(table.values):
                raise ConfigError("two labels share one option value", field=f"value_maps.{name}.values")

    def _check_columns(self) -> None:
        reserved = {
            System.CDS: {self.cds.key_field, self.cds.company_field, self.cds.primary_id},
            System.SCM: {self.scm.key_field, self.scm.company_field},
        }
        written: dict[System, set[str]] = {System.CDS: set(), System.SCM: set()}
        for i, f in enumerate(self.fields):
            for target in System:
                if not f.direction.flows_from(target.other):
                    continue
                column = f.cds if target is System.CDS else f.scm
                where = f"fields[{i}].{target.value}"
                if column in reserved[target]:
                    raise ConfigError(f"'{column}' is the key or company; the bridge writes it", field=where)
                if column in written[target]:
                    raise ConfigError(f"'{column}' is written by two fields", field=where)
                written[target].add(column)

    def _check_default(self, index: int, f: FieldMap) -> None:
        vmap = self._maps[index]
        for side, value in f.default.items():
            where = f"fields[{index}].default.{side.value}"
            if not f.direction.flows_from(side.other):
                raise ConfigError(f"the field is never written to {side.value}", field=where)
            if vmap is None:
                if side is System.CDS:
                    raise ConfigError("a Dataverse lookup cannot have a default", field=where)
                continue
            try:  # valid in the target's form, and convertible back (enum labels exist)
                vmap.convert(side, vmap.normalise(side, value))
            except RejectedError as exc:
                raise ConfigError(f"invalid default: {exc}", field=where) from None

    # ------------------------------------------------------------ pure queries
    def fields_from(self, side: System) -> list[FieldMap]:
        """Fields whose values flow out of ``side`` (direction both, or towards the other side)."""
        return [slot.field for slot in self._slots[side] if slot.flows]

    def source_columns(self, side: System) -> frozenset[str]:
        """Read names of ``side``'s columns whose change triggers a write to the other side."""
        return frozenset(f.column(side) for f in self.fields_from(side))

    def mapped_columns(self, side: System) -> frozenset[str]:
        """Read names of every mapped column of ``side``, whatever the direction."""
        return frozenset(f.column(side) for f in self.fields)

    def select_columns(self, side: System) -> list[str]:
        """Columns to read from ``side`` to project a row: mapped, key and company (sorted)."""
        if side is System.CDS:
            extra = {self.cds.primary_id, self.cds.key_field, self.cds.company_read}
        else:
            extra = {self.scm.key_field, self.scm.company_field}
        return sorted(self.mapped_columns(side) | extra)

    def touches_mapped(self, side: System, changed: Mapping[str, Any]) -> bool:
        """Whether a change (column -> new value) on ``side`` includes a column that flows out of it.

        Dataverse lookups count under either name (``_x_value`` or ``x``)."""
        columns = self.source_columns(side)
        aliases = {f"_{name}_value" for name in changed} if side is System.CDS else set()
        return bool(columns & (set(changed) | aliases))

    def project(self, side: System, image: Mapping[str, Any]) -> dict[str, Any]:
        """Every mapped column of ``side`` in its normalised form (the ledger's comparable form).

        ``image`` must be a full row: a missing column counts as null (F&O data events leave null
        dates out)."""
        out: dict[str, Any] = {}
        for slot in self._slots[side]:
            column = slot.column
            if column in image:
                raw = image[column]
            else:  # a lookup's logical name may hold the GUID
                raw = image.get(slot.alias) if slot.alias is not None else None
            vmap = slot.vmap
            out[column] = _lookup_value(side, raw) if vmap is None else vmap.normalise(side, raw)
        return out

    def lookups_from(self, side: System) -> list[LookupSpec]:
        """References to resolve before writing a change from ``side`` to the other side."""
        return [slot.spec for slot in self._slots[side] if slot.spec is not None]

    def to_target(
        self, source: System, image: Mapping[str, Any], resolved: Mapping[str, str | None]
    ) -> dict[str, Any]:
        """The write payload for the other system: every field flowing from ``source``.

        Value maps applied, defaults filled for nulls, lookups taken from ``resolved`` (keyed by
        ``LookupSpec.name``: to SCM the natural key, to CDS the GUID, None for no reference). A
        lookup whose source value is empty needs no entry. Key and company are not included.
        Raises RejectedError for a value that cannot be converted."""
        target = source.other
        payload: dict[str, Any] = {}
        for slot in self._slots[source]:
            if not slot.flows:
                continue
            f = slot.field
            if slot.column in image:
                raw = image[slot.column]
            else:
                raw = image.get(slot.alias) if slot.alias is not None else None
            vmap = slot.vmap
            if vmap is None:
                spec = slot.spec
                assert spec is not None
                value = self._resolved(spec, raw, resolved)
                if value is None:
                    value = f.default.get(target)
                if target is System.CDS:
                    value = _bind_path(spec.cds_entity_set, value)
                elif value is None:
                    value = ""  # F&O OData strings are not nullable: no reference is ""
                payload[spec.target_column] = value
                continue
            value = vmap.convert(source, vmap.normalise(source, raw))
            if value is None and target in f.default:
                payload[slot.target_column] = f.default[target]
            else:
                payload[slot.target_column] = vmap.write(target, value)
        return payload

    @staticmethod
    def _resolved(spec: LookupSpec, raw: Any, resolved: Mapping[str, str | None]) -> str | None:
        if _lookup_value(spec.source, raw) is None:
            return None
        if spec.name not in resolved:
            raise ValueError(f"lookup '{spec.name}' was not resolved")
        return resolved[spec.name]

    def write_form(self, side: System, projection: Mapping[str, Any]) -> dict[str, Any]:
        """A payload that writes ``projection`` (from ``project``/the ledger) back to ``side``, e.g.
        to restore the last synced image at the originator. Key and company are not included."""
        payload: dict[str, Any] = {}
        for f, vmap in zip(self.fields, self._maps, strict=True):
            column = f.column(side)
            if column not in projection:
                continue
            value = projection[column]
            if vmap is not None:
                payload[column] = vmap.write(side, value)
            elif side is System.CDS and f.lookup is not None:
                payload[f.bind_name] = _bind_path(f.lookup.cds_entity_set, value)
            else:
                payload[column] = "" if value is None else value  # an F&O reference: no null strings
        return payload

    def synced_projection(
        self, target: System, payload: Mapping[str, Any], previous: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """``target``'s projection after ``payload`` was written: ``previous`` (the ledger's image of
        ``target``) updated with the payload's mapped columns. Use when the write's answer has no row."""
        out = dict(previous or {})
        for slot in self._slots[target]:
            column, vmap = slot.column, slot.vmap
            if slot.bind is not None:
                if slot.bind in payload:
                    out[column] = _unbind(payload[slot.bind])
            elif column in payload:
                raw = payload[column]
                out[column] = _lookup_value(target, raw) if vmap is None else vmap.normalise(target, raw)
        return out

    def scm_property(self, event_attribute: str) -> str | None:
        """The F&O property behind a data-event attribute ('mserp_warehouseid' -> 'WarehouseId'),
        for the columns this map knows (fields, key and company)."""
        return self.scm_attribute_names().get(event_attribute.lower())

    def scm_attribute_names(self) -> Mapping[str, str]:
        """``{"mserp_warehouseid": "WarehouseId", …}`` (read-only, built once): ``scm_property`` for a
        whole event without a lookup of the map per attribute."""
        return self._scm_by_attribute
