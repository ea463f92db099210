"""What a Dataverse read adds to a rendered row: ``$expand`` of single-valued navigation properties
and the annotations ``Prefer: odata.include-annotations`` asks for.

Shapes (MicrosoftDocs/powerapps-docs, powerapps-docs/developer/data-platform/webapi/query/):
- ``join-tables.md``: an expanded lookup is an object with the selected columns and the related
  row's primary key (no ``@odata.etag``), or ``null`` when the lookup is empty.
- ``select-columns.md``: ``<property>@OData.Community.Display.V1.FormattedValue`` (choice labels,
  yes/no labels, the related row's primary name for lookups, dates and numbers formatted), and for
  lookups ``@Microsoft.Dynamics.CRM.lookuplogicalname`` / ``...associatednavigationproperty``;
  each annotation is written just before its property; ``Preference-Applied`` echoes the request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from bridge.sandbox.dataverse.codec import DvCodec
from bridge.sandbox.metadata.labels import BOOLEAN_LABELS, option_label, primary_name
from bridge.sandbox.odata.expand import ExpandItem
from bridge.sandbox.odata.query import QueryError
from bridge.sandbox.schema import Column, Kind, Table
from bridge.sandbox.store import Store, storage_name

FORMATTED = "OData.Community.Display.V1.FormattedValue"
LOOKUP_LOGICAL = "Microsoft.Dynamics.CRM.lookuplogicalname"
ASSOCIATED_NAV = "Microsoft.Dynamics.CRM.associatednavigationproperty"
TOTAL_COUNT = "Microsoft.Dynamics.CRM.totalrecordcount"
COUNT_EXCEEDED = "Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"


class Annotations:
    """The ``odata.include-annotations`` preference: terms, ``*``, ``Namespace.*``, ``-`` to exclude."""

    def __init__(self, raw: str | None) -> None:
        self.raw = raw
        items = [p.strip() for p in (raw or "").split(",") if p.strip()]
        self.include = [p for p in items if not p.startswith("-")]
        self.exclude = [p[1:] for p in items if p.startswith("-")]

    @staticmethod
    def _match(pattern: str, term: str) -> bool:
        return pattern == "*" or pattern == term or (pattern.endswith(".*") and term.startswith(pattern[:-1]))

    def wants(self, term: str) -> bool:
        return any(self._match(p, term) for p in self.include) and not any(
            self._match(p, term) for p in self.exclude
        )

    @property
    def applied(self) -> dict[str, str]:
        return {"Preference-Applied": f'odata.include-annotations="{self.raw}"'} if self.include else {}


def formatted(column: Column, value: Any) -> str | None:
    """The server-side formatted value (UTC, en-US: the sandbox has no user time zone or locale)."""
    if value is None:
        return None
    if column.kind is Kind.OPTIONSET:
        return option_label(column, value)
    if column.kind is Kind.BOOL:
        return BOOLEAN_LABELS[bool(value)]
    if column.kind is Kind.DATETIME:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return f"{dt.month}/{dt.day}/{dt.year} {dt.strftime('%I:%M %p').lstrip('0')}"
    if column.kind is Kind.DATE:
        d = datetime.fromisoformat(str(value))
        return f"{d.month}/{d.day}/{d.year}"
    if column.kind is Kind.INT and column.name != "versionnumber":
        return f"{int(value):,}"
    if column.kind is Kind.DECIMAL:
        return f"{float(value):,.2f}"
    return None


class ReadExtras:
    """Per service: follows lookups to their rows for ``$expand`` and lookup formatted values."""

    def __init__(self, store: Store, codecs: Mapping[str, DvCodec], tables: Iterable[Table]) -> None:
        self.store = store
        self.codecs = codecs
        self.tables = {t.entity_set: t for t in tables}

    def _lookup(self, table: Table, nav: str) -> Column:
        for c in table.columns:
            if c.kind is Kind.LOOKUP and c.nav == nav:
                return c
        raise QueryError(
            f"Could not find a property named '{nav}' on type 'Microsoft.Dynamics.CRM.{table.logical_name}'."
        )

    def check_expand(self, table: Table, items: tuple[ExpandItem, ...]) -> None:
        """Unknown navigation properties and unknown columns inside are 400 before any row is read."""
        for item in items:
            target = self.tables[self._lookup(table, item.nav).target or ""]
            codec = self.codecs[target.entity_set]
            for name in item.select or ():
                if name not in codec.selectable:
                    raise QueryError(
                        f"Could not find a property named '{name}' on type "
                        f"'Microsoft.Dynamics.CRM.{target.logical_name}'."
                    )

    def _related(self, column: Column, guid: Any) -> tuple[Table, dict[str, Any], int] | None:
        target = self.tables.get(column.target or "")
        if target is None or guid is None or not target.primary_id:
            return None
        found = self.store.get(self.store.table(target.entity_set), {target.primary_id: guid})
        return None if found is None else (target, found[0], found[1])

    def expand(
        self,
        table: Table,
        row: Mapping[str, Any],
        out: dict[str, Any],
        items: tuple[ExpandItem, ...],
        ann: Annotations,
    ) -> None:
        for item in items:
            column = self._lookup(table, item.nav)
            related = self._related(column, row.get(storage_name(column)))
            if related is None:
                out[item.nav] = None
                continue
            target, trow, version = related
            body = self.codecs[target.entity_set].render(trow, version, item.select)
            body.pop("@odata.etag", None)
            out[item.nav] = self.annotate(target, body, ann)

    def annotate(self, table: Table, out: dict[str, Any], ann: Annotations) -> dict[str, Any]:
        if not ann.include:
            return out
        columns = {storage_name(c): c for c in table.columns}
        result: dict[str, Any] = {}
        for name, value in out.items():
            column = columns.get(name)
            if column is not None and value is not None:
                result.update(self._annotations(column, value, ann))
            result[name] = value
        return result

    def _annotations(self, column: Column, value: Any, ann: Annotations) -> dict[str, Any]:
        name = storage_name(column)
        extra: dict[str, Any] = {}
        if column.kind is Kind.LOOKUP:
            related = self._related(column, value)
            label_column = primary_name(related[0]) if related else None
            if ann.wants(FORMATTED) and related and label_column and related[1].get(label_column) is not None:
                extra[f"{name}@{FORMATTED}"] = related[1][label_column]
            if ann.wants(ASSOCIATED_NAV) and column.nav:
                extra[f"{name}@{ASSOCIATED_NAV}"] = column.nav
            target = self.tables.get(column.target or "")
            if ann.wants(LOOKUP_LOGICAL) and target is not None:
                extra[f"{name}@{LOOKUP_LOGICAL}"] = target.logical_name
            return extra
        if column.kind is Kind.GUID and name.startswith("_"):
            if ann.wants(LOOKUP_LOGICAL):
                extra[f"{name}@{LOOKUP_LOGICAL}"] = "systemuser"  # system lookups (modifiedby)
            return extra
        text = formatted(column, value) if ann.wants(FORMATTED) else None
        if text is not None:
            extra[f"{name}@{FORMATTED}"] = text
        return extra
