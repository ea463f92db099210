"""The types every emulated table is made of: a column's ``Kind``, a ``Column``, a ``Table``."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    STRING = "string"  # max_length applies
    MEMO = "memo"  # long text; max_length applies
    INT = "int"  # minimum/maximum apply
    DECIMAL = "decimal"
    BOOL = "bool"  # Dataverse two-option
    DATE = "date"  # Dataverse date-only; F&O date (as datetime at midnight)
    DATETIME = "datetime"
    GUID = "guid"
    OPTIONSET = "optionset"  # Dataverse choice: int in ``options``
    ENUM = "enum"  # F&O enum: label in ``options``
    LOOKUP = "lookup"  # Dataverse lookup to ``target`` table (entity set)


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    max_length: int | None = None
    required: bool = False  # must be present (non-empty) on create
    minimum: float | None = None
    maximum: float | None = None
    options: tuple[str | int, ...] = ()  # OPTIONSET ints or ENUM labels
    target: str | None = None  # LOOKUP: target entity set; F&O reference: referenced entity set
    target_key: str | None = None  # F&O reference: column in the target holding the id (same company)
    nav: str | None = None  # Dataverse single-valued navigation property name for @odata.bind
    read_only: bool = False  # system-maintained, rejected on write
    immutable: bool = False  # can be set on create, never changed after


@dataclass(frozen=True)
class Table:
    entity_set: str  # URL collection name
    logical_name: str  # Dataverse logical name / F&O public entity name
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # F&O: composite key incl. dataAreaId; Dataverse: alternate key columns
    primary_id: str | None = None  # Dataverse primary key column (GUID)
    company_column: str | None = None  # Dataverse: msdyn_company lookup; F&O: dataAreaId
    notifies: bool = False  # one of the five synced entities (webhooks / data events)
    extra_unique: tuple[tuple[str, ...], ...] = field(default=())

    def column(self, name: str) -> Column | None:
        for c in self.columns:
            if c.name == name:
                return c
        return None


S, M, I, D, B, DT, G = Kind.STRING, Kind.MEMO, Kind.INT, Kind.DECIMAL, Kind.BOOL, Kind.DATE, Kind.GUID  # noqa: E741 (table shorthand)


def table_by_set(tables: tuple[Table, ...], entity_set: str) -> Table | None:
    for t in tables:
        if t.entity_set == entity_set:
            return t
    return None
