"""``dualwrite mappings try --map NAME --key K [--company C]``: a dry run of one map on one real record.

For each side that holds the record: the source record's mapped columns, every field's value map
applied (source value -> payload value), the lookups resolved against Dataverse, the payload the
bridge would send, the target's current row and which of its fields would change, and what the
target would refuse. It goes through the live mapping path (``EntityMap.to_target`` and the
applier's lookup resolution) and only reads: nothing is written to either system or to the bridge's
state. Neither Web API offers a validate-only write, so "would refuse" comes from the mapping's own
rules, checked against the target's real data: a value a value map cannot convert, a lookup whose
record the target does not have, a company the target does not know.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from bridge.infofile import add_target_arguments, target_of


@dataclass
class FieldTry:
    source_column: str
    target_column: str
    value_map: str  # copy, number, noyes, date, a table's name, or "lookup"
    source_value: Any
    payload_value: Any


@dataclass
class DirectionTry:
    source: str
    target: str
    found: bool
    source_record: dict[str, Any] = field(default_factory=dict)
    fields: list[FieldTry] = field(default_factory=list)
    lookups: dict[str, Any] = field(default_factory=dict)  # lookup -> {"from": ..., "to": ...}
    payload: dict[str, Any] = field(default_factory=dict)
    target_action: str = ""  # create, update, none (already equal)
    changes: dict[str, Any] = field(default_factory=dict)  # target column -> {"now": ..., "would_be": ...}
    refused: list[str] = field(default_factory=list)


def add_try_parser(maps_sub: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = maps_sub.add_parser(
        "try", help="a dry run of one map on one real record from each side (writes nothing)"
    )
    add_target_arguments(parser)
    parser.add_argument("--map", required=True, help="the map's name (mappings/<name>.yaml)")
    parser.add_argument("--key", required=True, help="the record's natural key")
    parser.add_argument("--company", default="USMF", help="the company (dataAreaId; default USMF)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def run_try(args: argparse.Namespace) -> int:
    settings, _ = target_of(args)
    return asyncio.run(_run(settings, args))


async def _run(settings: Any, args: argparse.Namespace) -> int:
    from bridge.core.mapping import load_mappings

    mappings = load_mappings(settings.mappings_dir)
    emap = mappings.maps.get(args.map)
    if emap is None:
        print(f"dualwrite mappings try: no map {args.map!r} (known: {', '.join(sorted(mappings.maps))})")
        return 2
    company = args.company.upper()
    tries = await try_record(settings, mappings, args.map, company, args.key)
    if args.json:
        print(
            json.dumps(
                {
                    "map": args.map,
                    "company": company,
                    "key": args.key,
                    "directions": [asdict(t) for t in tries],
                },
                indent=2,
                default=str,
            )
        )
    else:
        print(render(args.map, company, args.key, tries))
    if not any(t.found for t in tries):
        return 1
    return 1 if any(t.refused for t in tries) else 0


async def try_record(settings: Any, mappings: Any, name: str, company: str, key: str) -> list[DirectionTry]:
    """Both directions of one record, read-only (the bridge's state is not even opened)."""
    from bridge.core.events import System
    from bridge.engine.apply import Applier
    from bridge.state.memory import MemoryState
    from bridge.systems.connect import connect_systems
    from bridge.systems.sides import sides_for

    systems = connect_systems(settings, settings.client_secret.get_secret_value())
    try:
        sides = sides_for(systems, mappings)
        # The live applier, for its lookup resolution only; its state is a throwaway in memory.
        applier = Applier(mappings=mappings, state=MemoryState(), sides=sides, own_ids=set())
        return [await _direction(applier, mappings.maps[name], company, key, s) for s in System]
    finally:
        await systems.close()


async def _direction(applier: Any, emap: Any, company: str, key: str, source: Any) -> DirectionTry:
    from bridge.core.errors import RejectedError, SyncError

    target = source.other
    out = DirectionTry(source=source.value, target=target.value, found=False)
    try:
        row = await applier.side(source).read(emap, company, key)
    except RejectedError as exc:  # e.g. a company Dataverse does not know
        out.refused.append(f"{source.value}: {exc.message}")
        return out
    if row is None:
        return out
    out.found = True
    image = row.image
    out.source_record = {c: image.get(c) for c in emap.select_columns(source)}
    try:
        resolved = await applier.resolve_lookups(emap, source, image, company)
    except RejectedError as exc:
        out.refused.append(f"{exc.code or 'refused'}: {exc.message}")
        resolved = None
    try:
        if resolved is not None:
            out.payload = emap.to_target(source, image, resolved)
    except RejectedError as exc:
        out.refused.append(f"{exc.code or 'refused'}: {exc.message}")
    for spec in emap.lookups_from(source):
        value = spec.value(image)
        to = None if resolved is None else out.payload.get(spec.target_column)
        out.lookups[spec.name] = {"from": value, "to": to}
    for f in emap.fields_from(source):
        target_column = f.bind_name if (f.lookup and target.value == "cds") else f.column(target)
        out.fields.append(
            FieldTry(
                source_column=f.column(source),
                target_column=target_column,
                value_map="lookup" if f.lookup else (f.map or "copy"),
                source_value=image.get(f.column(source)),
                payload_value=out.payload.get(target_column),
            )
        )
    if not out.payload:
        return out
    try:
        current = await applier.side(target).read(emap, company, key)
    except (RejectedError, SyncError) as exc:
        out.refused.append(f"{target.value}: {exc}")
        return out
    if current is None:
        out.target_action = "create"
        return out
    before = emap.project(target, current.image)
    after = emap.synced_projection(target, out.payload, before)
    out.changes = {c: {"now": before.get(c), "would_be": v} for c, v in after.items() if before.get(c) != v}
    out.target_action = "update" if out.changes else "none"
    return out


def _show(value: Any) -> str:
    return json.dumps(value, default=str)


NAMES = {"cds": "Dataverse", "scm": "F&O"}


def render(name: str, company: str, key: str, tries: list[DirectionTry]) -> str:
    lines = [f"mappings try: map {name}, company {company}, key {key} (dry run: nothing is written)"]
    for t in tries:
        lines.append("")
        lines.append(f"{NAMES[t.source]} -> {NAMES[t.target]}")
        if not t.found:
            lines.append(f"  not found on {NAMES[t.source]}" + "".join(f"; {r}" for r in t.refused))
            continue
        lines.append("  source record")
        lines += [f"    {c:<40} {_show(v)}" for c, v in t.source_record.items()]
        lines.append("  fields (value map: source value -> payload value)")
        for f in t.fields:
            lines.append(
                f"    {f.source_column} -> {f.target_column}  [{f.value_map}]  "
                f"{_show(f.source_value)} -> {_show(f.payload_value)}"
            )
        for spec, pair in t.lookups.items():
            lines.append(f"  lookup {spec}: {_show(pair['from'])} -> {_show(pair['to'])}")
        if t.payload:
            lines.append(f"  payload  {_show(t.payload)}")
        if t.target_action == "create":
            lines.append(f"  target   absent on {NAMES[t.target]}: the bridge would create it")
        elif t.target_action == "update":
            lines.append(
                f"  target   the bridge would update {len(t.changes)} field(s) on {NAMES[t.target]}:"
            )
            lines += [f"    {c}: {_show(v['now'])} -> {_show(v['would_be'])}" for c, v in t.changes.items()]
        elif t.target_action == "none":
            lines.append(f"  target   {NAMES[t.target]} holds these values already: nothing to write")
        verdict = "; ".join(t.refused) if t.refused else "nothing"
        lines.append(f"  {NAMES[t.target]} would refuse: {verdict}")
    return "\n".join(lines)
