"""Serves ``EntityDefinitions`` as the Dataverse Web API does (MicrosoftDocs/powerapps-docs,
powerapps-docs/developer/data-platform/webapi/query-metadata-web-api.md):

- ``EntityDefinitions`` with ``$select``, ``$filter`` (on primitive and enumeration properties; an
  unknown ``LogicalName`` gives an empty ``value``, not a 404) and ``$expand=Attributes(...)``;
  "There is no paging. All matching resources will be returned in the first response."
- ``EntityDefinitions(LogicalName='x')`` or ``EntityDefinitions(<MetadataId>)``; a missing one is 404.
- ``.../Attributes``, ``.../Attributes(LogicalName='y')``, a cast segment
  ``.../Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata`` (only attributes of that type)
  with ``$expand=OptionSet($select=Options)``, and ``.../OptionSet`` after a cast.
- ``MetadataId`` is always returned, whatever ``$select`` says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

from odata_query import ast

from bridge.sandbox.metadata.entitydefs import (
    CRM,
    attribute_logical_name,
    attribute_metadata,
    cast_types,
    entity_metadata,
    has_option_set,
    option_set,
)
from bridge.sandbox.odata.expand import expand_options, split_top_level
from bridge.sandbox.odata.keys import KeySyntaxError, parse_key
from bridge.sandbox.odata.query import QueryError, parse_filter
from bridge.sandbox.schema import Column, Table

ENTITY_SET = "EntityDefinitions"
Json = dict[str, Any]


class MetadataError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _select(obj: Json, select: tuple[str, ...] | None, type_name: str, keep: Iterable[str] = ()) -> Json:
    if select is None:
        return obj
    for name in select:
        if name not in obj:
            raise QueryError(f"Could not find a property named '{name}' on type '{CRM}.{type_name}'.")
    wanted = {*select, "MetadataId", *keep}
    return {k: v for k, v in obj.items() if k in wanted}


def _names(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(s.strip() for s in text.split(",") if s.strip())


def _literal(node: ast._Node) -> Any:
    if isinstance(node, ast.Null):
        return None
    if isinstance(node, ast.Boolean):
        return node.val.lower() == "true"
    if isinstance(node, ast.Integer):
        return int(node.val)
    if isinstance(node, (ast.String, ast.GUID)):
        return node.val
    raise QueryError("Only string, number, boolean, GUID, enumeration and null literals are supported here.")


def _value(node: ast._Node, obj: Json, type_name: str) -> Any:
    if isinstance(node, ast.Identifier) and not node.namespace:
        if node.name not in obj:
            raise QueryError(f"Could not find a property named '{node.name}' on type '{CRM}.{type_name}'.")
        return obj[node.name]
    if isinstance(node, ast.Attribute):
        owner = _value(node.owner, obj, type_name)
        return owner.get(node.attr) if isinstance(owner, dict) else None
    return _literal(node)


def _norm(v: Any) -> Any:
    return v.casefold() if isinstance(v, str) else v


def matches(node: ast._Node, obj: Json, type_name: str) -> bool:
    """Evaluate a ``$filter`` tree over one metadata object (eq/ne, and/or/not)."""
    if isinstance(node, ast.BoolOp):
        left = matches(node.left, obj, type_name)
        right = matches(node.right, obj, type_name)
        return (left and right) if isinstance(node.op, ast.And) else (left or right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not matches(node.operand, obj, type_name)
    if isinstance(node, ast.Compare) and isinstance(node.comparator, (ast.Eq, ast.NotEq)):
        same = _norm(_value(node.left, obj, type_name)) == _norm(_value(node.right, obj, type_name))
        return same if isinstance(node.comparator, ast.Eq) else not same
    raise QueryError("Metadata queries support only eq, ne, and, or and not in $filter.")


def _filtered(items: list[Json], text: str | None, type_name: str) -> list[Json]:
    if not text:
        return items
    tree = parse_filter(text)
    return [i for i in items if matches(tree, i, type_name)]


class EntityDefinitions:
    def __init__(self, tables: Iterable[Table]) -> None:
        self.tables = tuple(tables)
        self.logical_of = {t.entity_set: t.logical_name for t in self.tables}

    # ------------------------------------------------------------------ lookups
    def _table(self, key_text: str) -> Table:
        try:
            key = parse_key(key_text)
        except KeySyntaxError as exc:
            raise QueryError(str(exc)) from exc
        wanted = dict(key.named).get("LogicalName") if key.named else None
        for t in self.tables:
            meta = entity_metadata(t)
            if (key.is_single and str(key.single) == meta["MetadataId"]) or (
                wanted is not None and str(wanted).casefold() == t.logical_name
            ):
                return t
        shown = wanted if wanted is not None else key.single
        raise MetadataError(404, f"Could not find an entity with name or MetadataId '{shown}'.")

    def _column(self, table: Table, key_text: str) -> Column:
        try:
            key = parse_key(key_text)
        except KeySyntaxError as exc:
            raise QueryError(str(exc)) from exc
        wanted = dict(key.named).get("LogicalName") if key.named else None
        for c in table.columns:
            meta = attribute_metadata(c, table, self.logical_of)
            if (key.is_single and str(key.single) == meta["MetadataId"]) or (
                wanted is not None and str(wanted).casefold() == meta["LogicalName"]
            ):
                return c
        shown = wanted if wanted is not None else key.single
        raise MetadataError(
            404, f"Could not find an attribute with name or MetadataId '{shown}' on '{table.logical_name}'."
        )

    # ------------------------------------------------------------------ rendering
    def _attribute(self, c: Column, t: Table, opts: Mapping[str, str], cast: str | None) -> Json:
        body = attribute_metadata(c, t, self.logical_of)
        expands = expand_options(opts["$expand"]) if "$expand" in opts else []
        type_name = (cast or "AttributeMetadata").removeprefix(f"{CRM}.")
        keep = () if cast else ("@odata.type",)
        out = _select(body, _names(opts.get("$select")), type_name, keep)
        if cast:
            out.pop("@odata.type", None)  # the cast already names the type
        for nav, inner in expands:
            if nav not in ("OptionSet", "GlobalOptionSet") or not cast or not has_option_set(c):
                raise QueryError(f"Could not find a property named '{nav}' on type '{CRM}.{type_name}'.")
            if nav == "GlobalOptionSet":
                out[nav] = None  # every option set here is local to its column
                continue
            inner_opts = dict(inner)
            out[nav] = _select(option_set(c, t), _names(inner_opts.get("$select")), "OptionSetMetadata")
        return out

    def _attributes(self, t: Table, opts: Mapping[str, str], cast: str | None) -> list[Json]:
        columns = [c for c in t.columns if cast is None or cast in cast_types(c)]
        # $filter sees the full objects, then $select trims them.
        full = [(c, attribute_metadata(c, t, self.logical_of)) for c in columns]
        type_name = (cast or "AttributeMetadata").removeprefix(f"{CRM}.")
        kept = {id(m) for m in _filtered([m for _, m in full], opts.get("$filter"), type_name)}
        return [self._attribute(c, t, opts, cast) for c, m in full if id(m) in kept]

    def _entity(self, t: Table, opts: Mapping[str, str]) -> Json:
        out = _select(entity_metadata(t), _names(opts.get("$select")), "EntityMetadata")
        for nav, inner in expand_options(opts["$expand"]) if "$expand" in opts else []:
            if nav != "Attributes":
                raise QueryError(f"Could not find a property named '{nav}' on type '{CRM}.EntityMetadata'.")
            out["Attributes"] = self._attributes(t, dict(inner), None)
        return out

    # ------------------------------------------------------------------ the entry point
    def get(self, raw_path: str, opts: Mapping[str, str], base_url: str) -> Json:
        for name in opts:
            if name.startswith("$") and name not in ("$select", "$filter", "$expand", "$format"):
                raise QueryError(f"The query parameter '{name}' is not supported on metadata.")
        segments = [s for s in split_top_level(unquote(raw_path), "/")]
        head = segments[0]
        ctx = f"{base_url}$metadata#{ENTITY_SET}"
        if head == ENTITY_SET:
            if len(segments) > 1:
                raise QueryError(
                    "Address one table, e.g. EntityDefinitions(LogicalName='account')/Attributes."
                )
            tables = [entity_metadata(t) for t in self.tables]
            kept = {m["LogicalName"] for m in _filtered(tables, opts.get("$filter"), "EntityMetadata")}
            values = [self._entity(t, opts) for t in self.tables if t.logical_name in kept]
            return {"@odata.context": ctx + _fragment(opts), "value": values}
        if not (head.startswith(ENTITY_SET + "(") and head.endswith(")")):
            raise MetadataError(404, f"Resource not found for the segment '{head}'.")
        table = self._table(head[len(ENTITY_SET) + 1 : -1])
        mid = entity_metadata(table)["MetadataId"]
        if len(segments) == 1:
            return {"@odata.context": ctx + _fragment(opts) + "/$entity", **self._entity(table, opts)}
        return self._attribute_path(table, segments[1:], opts, f"{ctx}({mid})")

    def _attribute_path(self, table: Table, segments: list[str], opts: Mapping[str, str], ctx: str) -> Json:
        seg = segments[0]
        column: Column | None = None
        if seg.startswith("Attributes(") and seg.endswith(")"):
            column = self._column(table, seg[len("Attributes(") : -1])
        elif seg != "Attributes":
            raise MetadataError(404, f"Resource not found for the segment '{seg}'.")
        rest = segments[1:]
        cast = rest.pop(0) if rest and rest[0].startswith(f"{CRM}.") else None
        if cast and not cast.endswith("AttributeMetadata"):
            raise MetadataError(404, f"Resource not found for the segment '{cast}'.")
        cast_part = f"/{cast}" if cast else ""
        if column is None:
            if rest:
                raise MetadataError(404, f"Resource not found for the segment '{rest[0]}'.")
            values = self._attributes(table, opts, cast)
            return {"@odata.context": f"{ctx}/Attributes{cast_part}{_fragment(opts)}", "value": values}
        if cast and cast not in cast_types(column):
            raise MetadataError(
                404,
                f"The attribute '{attribute_logical_name(column)}' is not a {cast.removeprefix(CRM + '.')}.",
            )
        attr_ctx = (
            f"{ctx}/Attributes({attribute_metadata(column, table, self.logical_of)['MetadataId']}){cast_part}"
        )
        if not rest:
            return {
                "@odata.context": f"{attr_ctx}{_fragment(opts)}/$entity",
                **self._attribute(column, table, opts, cast),
            }
        if rest != ["OptionSet"] or not cast or not has_option_set(column):
            raise MetadataError(404, f"Resource not found for the segment '{'/'.join(rest)}'.")
        body = _select(option_set(column, table), _names(opts.get("$select")), "OptionSetMetadata")
        return {"@odata.context": f"{attr_ctx}/OptionSet{_fragment(opts)}/$entity", **body}


def _fragment(opts: Mapping[str, str]) -> str:
    select = _names(opts.get("$select")) or ()
    expands = (
        [f"{nav}({dict(inner).get('$select', '')})" for nav, inner in expand_options(opts.get("$expand", ""))]
        if opts.get("$expand")
        else []
    )
    parts = [*select, *expands]
    return f"({','.join(parts)})" if parts else ""
