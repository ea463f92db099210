"""Dataverse Web API JSON ↔ stored rows for one table: ``<nav>@odata.bind`` lookups in, ``_<col>_value``
and ``@odata.etag`` out. Precomputed per table (no per-request schema work)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.sandbox.dataverse.errors import ODATA, DvError, payload_error
from bridge.sandbox.odata.keys import Key, KeySyntaxError, parse_path
from bridge.sandbox.schema import Column, Kind, Table
from bridge.sandbox.store import storage_name

_BIND_TAIL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*\(.*\))$", re.S)
WRITE_ONLY = {"serviceendpoints": ("authvalue",)}  # never returned, as on the real system

BindResolver = Callable[[str, Key], str]  # (target entity set, key) -> GUID; raises DvError


def etag(version: int) -> str:
    return f'W/"{version}"'


@dataclass(frozen=True)
class Parsed:
    values: dict[str, Any]  # storage names
    given: tuple[str, ...]  # the columns the caller set (for RecordChange.changed)


class DvCodec:
    def __init__(self, table: Table) -> None:
        self.table = table
        self.entity = table.logical_name
        self.lookups_by_nav: dict[str, Column] = {
            c.nav: c for c in table.columns if c.kind is Kind.LOOKUP and c.nav
        }
        self.plain: dict[str, Column] = {c.name: c for c in table.columns if c.kind is not Kind.LOOKUP}
        self.hidden = WRITE_ONLY.get(table.entity_set, ())
        self.selectable = tuple(storage_name(c) for c in table.columns)

    def parse(self, body: Any, bind: BindResolver, content_ids: Mapping[str, str]) -> Parsed:
        """Turn a POST/PATCH body into storage values. Type checks are the rules' job."""
        if not isinstance(body, dict):
            raise payload_error(self.entity, "A JSON object was expected as the request body.")
        values: dict[str, Any] = {}
        for name, value in body.items():
            if "@" in name:
                prop, _, annotation = name.partition("@")
                if annotation == "odata.bind" and prop:
                    col = self.lookups_by_nav.get(prop)
                    if col is None:
                        raise payload_error(
                            self.entity,
                            f"An undeclared property '{prop}' which only has property annotations in the "
                            "payload but no property value was found in the payload.",
                        )
                    values[storage_name(col)] = self._bind(col, value, bind, content_ids)
                # other instance annotations (@odata.type, @odata.etag, formatted values) carry no data
                continue
            col = self.plain.get(name)
            if col is None:
                hint = self.lookups_by_nav.get(name) or next(
                    (c for c in self.lookups_by_nav.values() if storage_name(c) == name), None
                )
                extra = f" Use '{hint.nav}@odata.bind' to set this lookup." if hint else ""
                raise payload_error(
                    self.entity,
                    f"The property '{name}' does not exist on type 'Microsoft.Dynamics.CRM.{self.entity}'. "
                    f"Make sure to only use property names that are defined by the type or mark the type as "
                    f"open type.{extra}",
                )
            values[name] = value
        return Parsed(values, tuple(values))

    def _bind(self, col: Column, value: Any, bind: BindResolver, content_ids: Mapping[str, str]) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):
            raise payload_error(self.entity, f"The value of '{col.nav}@odata.bind' must be a URL string.")
        text = value.strip()
        if text.startswith("$"):
            ref, _, rest = text[1:].partition("/")
            if ref not in content_ids:
                raise DvError(
                    400, ODATA, f"Content-ID Reference: '${ref}' does not exist in the batch context."
                )
            text = content_ids[ref] + (f"/{rest}" if rest else "")
        m = _BIND_TAIL.search(text.split("?", 1)[0])
        try:
            if m is None:
                raise KeySyntaxError(text)
            path = parse_path(m.group(1))
        except KeySyntaxError as exc:
            raise payload_error(
                self.entity, f"The URL '{value}' in '{col.nav}@odata.bind' is not a valid entity reference."
            ) from exc
        if path.key is None or path.entity_set != col.target:
            raise payload_error(
                self.entity,
                f"The entity set '{path.entity_set}' of '{col.nav}@odata.bind' does not match the navigation "
                f"property's target '{col.target}'.",
            )
        return bind(path.entity_set, path.key)

    def render(
        self, row: Mapping[str, Any], version: int, select: Iterable[str] | None = None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"@odata.etag": etag(version)}
        names = self.selectable if select is None else select
        for name in names:
            out[name] = None if name in self.hidden else row.get(name)
        if select is not None and self.table.primary_id:
            # Dataverse always returns the primary key, whatever $select says.
            out[self.table.primary_id] = row.get(self.table.primary_id)
        return out

    def image(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A full row in Web API JSON form for notifications (write-only columns left out)."""
        return {k: v for k, v in row.items() if k not in self.hidden}
