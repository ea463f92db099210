"""Evaluating document maps (pure): filters, computed values, and the plan of one change set.

``plan`` compares what the source holds now (header and lines, read fresh) with what the bridge
last wrote (the document's state in the ledger) and returns the writes of one change set: the
header's current version first, then each line created, changed or removed, so a line never
reaches the target without its header. References are resolved by the engine beforehand
(``lookup_inputs`` says which; their answers come in as ``Resolved``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bridge.core.docmap import HEADER_PREFIX, DocumentMap, Filter, LineCollection, Value, ValueLookup
from bridge.core.errors import RejectedError
from bridge.core.events import System

ANY = "*"
# (entity_set, key_field, value) -> the answer: a natural key (to F&O) or a GUID (to Dataverse)
Resolved = Mapping[tuple[str, str, str], str | None]


def read(row: Mapping[str, Any], column: str) -> Any:
    """A source column; a Dataverse lookup is read as ``_<column>_value`` when the name is bare."""
    if column in row:
        return row[column]
    return row.get(f"_{column}_value")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b
    if isinstance(a, int | float | Decimal) and isinstance(b, int | float | Decimal):
        return Decimal(str(a)) == Decimal(str(b))
    return bool(a == b)


def passes(f: Filter, row: Mapping[str, Any]) -> bool:
    value = read(row, f.column)
    if f.test == "equals":
        return _same(value, f.equals)
    if f.test == "not_equals":
        return not _same(value, f.not_equals)
    if f.test == "one_of":
        return any(_same(value, v) for v in f.one_of or [])
    return not any(_same(value, v) for v in f.none_of or [])


def failed_filter(filters: list[Filter], row: Mapping[str, Any]) -> str | None:
    """Why the row is kept out (the first filter that fails), or None when every filter holds."""
    for f in filters:
        if not passes(f, row):
            return f.why or f"{f.column} = {read(row, f.column)!r} fails {f.test} {getattr(f, f.test)!r}"
    return None


def rule_result(v: Value, row: Mapping[str, Any]) -> Any:
    """The value a rule table gives for ``row``: the first row whose inputs all match."""
    assert v.rule is not None
    inputs = [read(row, c) for c in v.rule.inputs]
    inputs = [v.rule.empty_as.get(c) if i is None else i for c, i in zip(v.rule.inputs, inputs, strict=True)]
    for candidate in v.rule.rows:
        if all(w == ANY or _same(i, w) for i, w in zip(inputs, candidate.when, strict=True)):
            return read(row, candidate.take) if candidate.take else candidate.value
    if v.rule.otherwise == "null":
        return None
    shown = ", ".join(f"{c}={i!r}" for c, i in zip(v.rule.inputs, inputs, strict=True))
    raise RejectedError(f"{v.target}: no row of its rule table matches {shown}", code="rule")


def _number(v: Value, value: Any) -> Any:
    if value is None or (v.multiply is None and v.divide is None):
        return value
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        raise RejectedError(f"{v.target}: {value!r} is not a number", code="rule") from None
    if v.multiply is not None:
        number *= Decimal(str(v.multiply))
    if v.divide is not None:
        number /= Decimal(str(v.divide))
    number = number.normalize()
    return int(number) if number == number.to_integral_value() else float(number)


def raw_value(dmap: DocumentMap, v: Value, row: Mapping[str, Any]) -> Any:
    """The value before lookups and value maps: from the column, constant, setting or rule."""
    origin = v.origin
    if origin == "source":
        assert v.source is not None
        value = read(row, v.source)
    elif origin == "constant":
        value = v.constant
    elif origin == "setting":
        assert v.setting is not None
        value = dmap.settings[v.setting]
    else:
        value = rule_result(v, row)
    return _number(v, value)


def lookup_inputs(
    dmap: DocumentMap, values: list[Value], row: Mapping[str, Any]
) -> list[tuple[ValueLookup, str]]:
    """The references ``row`` needs resolved (lookup, value), empty ones left out."""
    out = []
    for v in values:
        if v.lookup is None:
            continue
        value = raw_value(dmap, v, row)
        if value is not None and value != "":
            out.append((v.lookup, str(value).lower() if dmap.source_system is System.CDS else str(value)))
    return out


def evaluate(
    dmap: DocumentMap, values: list[Value], row: Mapping[str, Any], resolved: Resolved
) -> dict[str, Any]:
    """The target payload of one part (header or line) from its source row."""
    source, target = dmap.source_system, dmap.target_system
    payload: dict[str, Any] = {}
    for v in values:
        value = raw_value(dmap, v, row)
        if v.lookup is not None:
            lk = v.lookup
            if value is not None and value != "":
                query = str(value).lower() if source is System.CDS else str(value)
                answer = resolved.get((lk.entity_set, lk.key_field, query))
                if answer is None:
                    raise RejectedError(
                        f"{v.target}: {lk.entity_set} has no row for {value!r} (by {lk.key_field})",
                        code="lookup-missing",
                    )
                value = answer
            else:
                value = None
        empty = value is None or value == ""
        if empty and v.default is not None:
            value = v.default  # given in the target's form
        elif empty and v.required:
            raise RejectedError(f"{v.target} is required and has no value", code="required")
        elif v.map is not None and v.lookup is None:
            vmap = dmap.value_map(v.map)
            value = vmap.write(target, vmap.convert(source, vmap.normalise(source, value)))
        if v.lookup is not None and target is System.CDS:
            nav = v.lookup.nav or v.target
            payload[f"{nav}@odata.bind"] = None if value is None else f"/{v.lookup.entity_set}({value})"
            continue
        if value is None and target is System.SCM:
            value = ""  # F&O OData strings are not nullable
        payload[v.target] = value
    return payload


# --------------------------------------------------------------------------- the change-set plan
@dataclass(frozen=True, slots=True)
class Write:
    """One write of a change set: ``part`` is "header" or a collection name."""

    method: str  # POST, PATCH, DELETE
    part: str
    keys: dict[str, Any]  # the target's key columns (F&O: company, header key, line key)
    body: dict[str, Any] | None = None
    line_id: str | None = None  # the Dataverse line the write is for


@dataclass(frozen=True, slots=True)
class Plan:
    writes: list[Write]
    state: dict[str, Any]  # what the target holds after the writes (the ledger's image)
    skipped_lines: dict[str, str] = field(default_factory=dict)  # line id -> the filter that kept it out

    @property
    def empty(self) -> bool:
        return not self.writes


@dataclass(frozen=True, slots=True)
class LineRow:
    collection: LineCollection
    line_id: str
    row: Mapping[str, Any]


def with_header(lines: list[LineRow], header: Mapping[str, Any]) -> list[LineRow]:
    """Each line row with its header's columns as ``header.<column>`` (what line rules may read)."""
    prefixed = {f"{HEADER_PREFIX}{k}": v for k, v in header.items()}
    return [LineRow(item.collection, item.line_id, {**item.row, **prefixed}) for item in lines]


def header_keys(dmap: DocumentMap, key: str) -> dict[str, Any]:
    return {dmap.scm.company_field: dmap.company.lower(), dmap.scm.key_field: key}


def line_keys(dmap: DocumentMap, line: LineCollection, header_key: str, line_key: Any) -> dict[str, Any]:
    return {
        dmap.scm.company_field: dmap.company.lower(),
        line.scm.parent_field: header_key,
        line.key.target: line_key,
    }


def plan(
    dmap: DocumentMap,
    header_key: str,
    header_row: Mapping[str, Any],
    lines: list[LineRow],
    previous: Mapping[str, Any] | None,
    resolved: Resolved,
) -> Plan:
    """The change set that brings the F&O document in line with the Dataverse one (to F&O only).

    ``previous`` is the ledger's state ({"header": payload, "lines": {id: {...}}}), None if never
    written. Any line change carries the header's current version too (one PATCH, first)."""
    header = evaluate(dmap, dmap.values, header_row, resolved)
    old_lines: dict[str, Any] = dict((previous or {}).get("lines", {}))
    writes: list[Write] = []
    new_lines: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    line_writes: list[Write] = []
    for item in lines:
        why = failed_filter(item.collection.filters, item.row)
        if why is not None:
            skipped[item.line_id] = why
            continue
        body = evaluate(dmap, item.collection.values, item.row, resolved)
        key = evaluate(dmap, [item.collection.key], item.row, resolved)[item.collection.key.target]
        if key is None or key == "":
            raise RejectedError(
                f"{item.collection.name} line {item.line_id}: no {item.collection.key.target}"
            )
        new_lines[item.line_id] = {"collection": item.collection.name, "key": key, "body": body}
        old = old_lines.pop(item.line_id, None)
        keys = line_keys(dmap, item.collection, header_key, key)
        if old is not None and old["key"] != key:
            old_keys = line_keys(dmap, item.collection, header_key, old["key"])
            line_writes.append(Write("DELETE", item.collection.name, old_keys, None, item.line_id))
            old = None
        if old is None:
            line_writes.append(Write("POST", item.collection.name, keys, {**body, **keys}, item.line_id))
        elif old["body"] != body:
            line_writes.append(Write("PATCH", item.collection.name, keys, body, item.line_id))
    for line_id, old in old_lines.items():  # removed at the source, or no longer passing its filters
        collection = next(c for c in dmap.lines if c.name == old["collection"])
        keys = line_keys(dmap, collection, header_key, old["key"])
        line_writes.insert(0, Write("DELETE", collection.name, keys, None, line_id))
    hkeys = header_keys(dmap, header_key)
    if previous is None:
        writes.append(Write("POST", "header", hkeys, {**header, **hkeys}))
    elif line_writes or previous.get("header") != header:
        writes.append(Write("PATCH", "header", hkeys, header))
    writes.extend(line_writes)
    return Plan(writes, {"header": header, "lines": new_lines}, skipped)


def plan_delete(dmap: DocumentMap, header_key: str, previous: Mapping[str, Any]) -> Plan:
    """Remove the document from F&O: its lines, then its header, in one change set."""
    writes = []
    for line_id, old in dict(previous.get("lines", {})).items():
        collection = next(c for c in dmap.lines if c.name == old["collection"])
        writes.append(
            Write(
                "DELETE", collection.name, line_keys(dmap, collection, header_key, old["key"]), None, line_id
            )
        )
    writes.append(Write("DELETE", "header", header_keys(dmap, header_key)))
    return Plan(writes, {})
