"""Business rules of both emulated systems, derived from the ``schema`` package; pure apart from a resolver.

Values are in storage form (Web API JSON, lookups keyed ``_<col>_value``). ``TableRules`` checks and
normalises one write and returns structured ``Violation``s; each dialect (``dataverse``/``fno``)
renders them in its own error shape. Every rule is listed in docs/sandbox-rules.md.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, Protocol

from bridge.sandbox.schema import Column, Kind, Table
from bridge.sandbox.store import storage_name

Dialect = Literal["dataverse", "fno"]
FNO_EMPTY_DATE = "1900-01-01T00:00:00Z"
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DATE_IN_DATETIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T00:00:00(?:\.0+)?(?:Z|[+-]00:00)$")


class Rule(StrEnum):
    UNKNOWN = "unknown"  # no such column
    TYPE = "type"  # wrong JSON type / unparsable value
    REQUIRED = "required"
    MAX_LENGTH = "max_length"
    RANGE = "range"
    OPTION = "option"  # option set / enum value not defined
    READ_ONLY = "read_only"
    IMMUTABLE = "immutable"
    DUPLICATE = "duplicate"  # natural (alternate / composite) key already used
    REFERENCE = "reference"  # referenced row does not exist


@dataclass(frozen=True, slots=True)
class Violation:
    rule: Rule
    column: str  # storage name
    value: Any = None
    expected: str = ""  # TYPE: expected type name; OPTION: allowed values
    limit: Any = None  # MAX_LENGTH: the limit; RANGE: (minimum, maximum)
    target: str = ""  # REFERENCE: referenced entity set; DUPLICATE: key columns


class Resolver(Protocol):
    """Looks rows up inside the open write transaction."""

    def exists(self, entity_set: str, where: Mapping[str, Any]) -> bool: ...


def _parse_datetime(value: str) -> str | None:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _valid_date(y: str, m: str, d: str) -> bool:
    try:
        datetime(int(y), int(m), int(d))
    except ValueError:
        return False
    return True


class TableRules:
    """The rules of one table, precomputed once (no per-request schema work)."""

    def __init__(self, table: Table, dialect: Dialect, tables: Mapping[str, Table]) -> None:
        self.table = table
        self.dialect = dialect
        self.columns: dict[str, Column] = {storage_name(c): c for c in table.columns}
        self.required = tuple(n for n, c in self.columns.items() if c.required)
        self.references: dict[str, tuple[str, str, str | None]] = {}  # col -> (set, target col, company col)
        for name, col in self.columns.items():
            if not col.target:
                continue
            target = tables.get(col.target)
            if target is None:
                continue
            if col.kind is Kind.LOOKUP:
                self.references[name] = (target.entity_set, target.primary_id or "", None)
            elif col.target_key:
                same_company = target.company_column if col.name != table.company_column else None
                self.references[name] = (target.entity_set, col.target_key, same_company)
        self.key = tuple(storage_name(table.column(k) or Column(k, Kind.STRING)) for k in table.key)

    # ------------------------------------------------------------------ values
    def normalise(self, name: str, value: Any) -> tuple[Any, Violation | None]:
        """Type-check and normalise one value; length, range and options too."""
        col = self.columns.get(name)
        if col is None:
            return value, Violation(Rule.UNKNOWN, name, value)
        if value is None:
            if self.dialect == "fno":
                return value, Violation(Rule.TYPE, name, value, expected=self._type_name(col))
            return None, None
        kind = col.kind
        if kind in (Kind.STRING, Kind.MEMO):
            if not isinstance(value, str):
                return value, Violation(Rule.TYPE, name, value, expected=self._type_name(col))
            if col.max_length is not None and len(value) > col.max_length:
                return value, Violation(Rule.MAX_LENGTH, name, value, limit=col.max_length)
            return value, None
        if kind in (Kind.INT, Kind.OPTIONSET, Kind.DECIMAL):
            number_ok = isinstance(value, int) or (kind is Kind.DECIMAL and isinstance(value, float))
            if isinstance(value, bool) or not number_ok or not math.isfinite(value):
                return value, Violation(Rule.TYPE, name, value, expected=self._type_name(col))
            assert isinstance(value, int | float)
            if kind is Kind.INT and not -(2**31) <= value < 2**31:
                return value, Violation(Rule.TYPE, name, value, expected=self._type_name(col))
            if kind is Kind.OPTIONSET:
                if value not in col.options:
                    return value, Violation(Rule.OPTION, name, value, expected=_options(col))
                return value, None
            lo, hi = col.minimum, col.maximum
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                return value, Violation(Rule.RANGE, name, value, limit=(lo, hi))
            return (float(value) if kind is Kind.DECIMAL else value), None
        if kind is Kind.BOOL:
            if not isinstance(value, bool):
                return value, Violation(Rule.TYPE, name, value, expected=self._type_name(col))
            return value, None
        if not isinstance(value, str):
            return value, Violation(Rule.TYPE, name, value, expected=self._type_name(col))
        if kind is Kind.ENUM:
            for label in col.options:
                if str(label).lower() == value.lower():
                    return label, None
            return value, Violation(Rule.OPTION, name, value, expected=_options(col))
        if kind in (Kind.GUID, Kind.LOOKUP):
            try:
                return str(uuid.UUID(value)), None
            except ValueError:
                return value, Violation(Rule.TYPE, name, value, expected="Edm.Guid")
        if kind is Kind.DATE:
            return self._date(name, value)
        normal = _parse_datetime(value)
        if normal is None:
            return value, Violation(Rule.TYPE, name, value, expected="Edm.DateTimeOffset")
        return normal, None

    def _date(self, name: str, value: str) -> tuple[Any, Violation | None]:
        m = _DATE.match(value) or _DATE_IN_DATETIME.match(value)
        if m is None or not _valid_date(*m.groups()):
            expected = "Edm.Date" if self.dialect == "dataverse" else "Edm.DateTimeOffset"
            return value, Violation(Rule.TYPE, name, value, expected=expected)
        day = "-".join(m.groups())
        return (day if self.dialect == "dataverse" else f"{day}T00:00:00Z"), None

    def _type_name(self, col: Column) -> str:
        return {
            Kind.STRING: "Edm.String",
            Kind.MEMO: "Edm.String",
            Kind.INT: "Edm.Int32",
            Kind.OPTIONSET: "Edm.Int32",
            Kind.DECIMAL: "Edm.Decimal",
            Kind.BOOL: "Edm.Boolean",
            Kind.DATE: "Edm.Date" if self.dialect == "dataverse" else "Edm.DateTimeOffset",
            Kind.DATETIME: "Edm.DateTimeOffset",
            Kind.GUID: "Edm.Guid",
            Kind.LOOKUP: "Edm.Guid",
            Kind.ENUM: "enum label (Edm.String)",
        }[col.kind]

    def check_write(
        self, values: Mapping[str, Any], existing: Mapping[str, Any] | None, *, system: bool = False
    ) -> tuple[dict[str, Any], list[Violation]]:
        """Normalised values and every violation of type, length, range, options, read-only, required,
        immutable. ``existing`` is None on create. ``system`` skips read-only (the engine's own columns)."""
        out: dict[str, Any] = {}
        violations: list[Violation] = []
        for name, raw in values.items():
            value, v = self.normalise(name, raw)
            col = self.columns.get(name)
            if v is None and col is not None and col.read_only and not system:
                v = Violation(Rule.READ_ONLY, name, raw)
            changes = existing is not None and not _same(existing.get(name), value)
            if v is None and col is not None and col.immutable and changes:
                v = Violation(Rule.IMMUTABLE, name, value)
            if v is not None:
                violations.append(v)
            else:
                out[name] = value
        for name in self.required:
            given = name in values
            value = out.get(name) if given else (existing or {}).get(name)
            # F&O has no null date: 1900-01-01 is its empty date, so a required date must be another one
            empty = value is None or value == "" or (self.dialect == "fno" and value == FNO_EMPTY_DATE)
            if (existing is None or given) and empty and not any(v.column == name for v in violations):
                violations.append(Violation(Rule.REQUIRED, name, value))
        return out, violations

    # ------------------------------------------------------------------ cross-row rules
    def check_references(
        self, row: Mapping[str, Any], changed: Iterable[str], resolver: Resolver
    ) -> list[Violation]:
        """Referenced rows must exist (F&O: in the row's own company; a row may reference itself)."""
        violations: list[Violation] = []
        wanted = set(changed)
        for name in (n for n in self.references if n in wanted):  # schema order: the company first
            ref = self.references[name]
            value = row.get(name)
            if value is None or value == "":
                continue
            target_set, target_col, company = ref
            where: dict[str, Any] = {target_col: value}
            if company:
                where[company] = row.get(self.table.company_column or "")
            if target_set == self.table.entity_set and self._is_self(row, where):
                continue
            if not resolver.exists(target_set, where):
                violations.append(Violation(Rule.REFERENCE, name, value, target=target_set))
        return violations

    def _is_self(self, row: Mapping[str, Any], where: Mapping[str, Any]) -> bool:
        return all(_same(row.get(k), v) for k, v in where.items())

    def check_unique(
        self, row: Mapping[str, Any], resolver: Resolver, *, own: Mapping[str, Any] | None = None
    ) -> list[Violation]:
        """The natural key (Dataverse alternate key / F&O composite key) is unique per company."""
        where = {k: row.get(k) for k in self.key}
        if not where or any(v is None for v in where.values()):
            return []
        if own is not None and all(_same(own.get(k), v) for k, v in where.items()):
            return []
        if resolver.exists(self.table.entity_set, where):
            return [Violation(Rule.DUPLICATE, ",".join(self.key), where, target=",".join(self.key))]
        return []


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    return bool(a == b)


def _options(col: Column) -> str:
    return ", ".join(str(o) for o in col.options)


def build_rules(tables: tuple[Table, ...], dialect: Dialect) -> dict[str, TableRules]:
    by_set = {t.entity_set: t for t in tables}
    return {t.entity_set: TableRules(t, dialect, by_set) for t in tables}


__all__ = ["FNO_EMPTY_DATE", "Dialect", "Resolver", "Rule", "TableRules", "Violation", "build_rules"]
