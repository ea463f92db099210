"""Dataverse webhook registrations, read from the plug-in registration tables (pure logic).

A webhook is a ``serviceendpoint`` with contract 8; ``sdkmessageprocessingstep`` rows bind it to a
message (``sdkmessageid`` → sdkmessage name) on a table (``sdkmessagefilterid`` →
primaryobjecttypecode) with a mode, stage, rank, filtering attributes and images.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.sandbox.contracts import RecordChange
from bridge.sandbox.schema import DATAVERSE_TABLES, Table, table_by_set

WEBHOOK_CONTRACT = 8
AUTH_WEBHOOK_KEY, AUTH_HTTP_HEADER, AUTH_HTTP_QUERY = 4, 5, 6


class RowSource(Protocol):
    def rows(self, entity_set: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    name: str
    url: str
    authtype: int
    authvalue: str

    def auth(self) -> tuple[dict[str, str], dict[str, str]]:
        """(headers, query parameters) the call carries for this endpoint's auth type."""
        if self.authtype == AUTH_WEBHOOK_KEY:
            return {}, {"code": self.authvalue}
        if self.authtype == AUTH_HTTP_HEADER:
            return parse_settings(self.authvalue), {}
        if self.authtype == AUTH_HTTP_QUERY:
            return {}, parse_settings(self.authvalue)
        return {}, {}


@dataclass(frozen=True, slots=True)
class StepImage:
    alias: str
    pre: bool
    post: bool
    attributes: frozenset[str] | None  # None = all columns


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    name: str
    message: str
    entity: str  # logical name
    mode: int  # 0 synchronous, 1 asynchronous
    stage: int
    rank: int
    filtering: frozenset[str] | None  # Update only; None = any column
    endpoint: Endpoint
    images: tuple[StepImage, ...]

    @property
    def synchronous(self) -> bool:
        return self.mode == 0


def parse_settings(xml: str) -> dict[str, str]:
    """``<settings><setting name="x" value="v" /></settings>`` → {"x": "v"}; bad XML → {}."""
    if not xml.strip():
        return {}
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return {}
    return {str(el.get("name")): str(el.get("value", "")) for el in root.iter("setting") if el.get("name")}


def _attrs(text: Any) -> frozenset[str] | None:
    names = frozenset(a.strip().lower() for a in str(text or "").split(",") if a.strip())
    return names or None


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def load_steps(source: RowSource, authvalue_of: Callable[[str], str | None] | None = None) -> list[Step]:
    """Every enabled webhook step, in execution order (rank, then name)."""
    steps_rows = [r for r in source.rows("sdkmessageprocessingsteps") if _int(r.get("statecode"), 0) == 0]
    if not steps_rows:
        return []
    messages = {r["sdkmessageid"]: str(r.get("name", "")) for r in source.rows("sdkmessages")}
    filters = {
        r["sdkmessagefilterid"]: str(r.get("primaryobjecttypecode", ""))
        for r in source.rows("sdkmessagefilters")
    }
    endpoints: dict[str, Endpoint] = {}
    for r in source.rows("serviceendpoints"):
        if _int(r.get("contract"), 0) != WEBHOOK_CONTRACT or not r.get("url"):
            continue
        eid = str(r["serviceendpointid"])
        secret = r.get("authvalue")
        if secret is None and authvalue_of is not None:
            secret = authvalue_of(eid)
        endpoints[eid] = Endpoint(
            eid, str(r.get("name", "")), str(r["url"]), _int(r.get("authtype"), 0), str(secret or "")
        )
    images: dict[str, list[StepImage]] = {}
    for r in source.rows("sdkmessageprocessingstepimages"):
        kind = _int(r.get("imagetype"), 0)
        step_id = str(r.get("_sdkmessageprocessingstepid_value"))
        images.setdefault(step_id, []).append(
            StepImage(
                str(r.get("entityalias", "")), kind in (0, 2), kind in (1, 2), _attrs(r.get("attributes"))
            )
        )
    steps: list[Step] = []
    for r in steps_rows:
        endpoint = endpoints.get(str(r.get("_eventhandler_serviceendpoint_value")))
        message = messages.get(r.get("_sdkmessageid_value"))
        entity = filters.get(r.get("_sdkmessagefilterid_value"))
        if endpoint is None or message is None or not entity:
            continue
        sid = str(r["sdkmessageprocessingstepid"])
        steps.append(
            Step(
                id=sid,
                name=str(r.get("name", "")),
                message=message,
                entity=entity.lower(),
                mode=_int(r.get("mode"), 1),
                stage=_int(r.get("stage"), 40),
                rank=_int(r.get("rank"), 1),
                filtering=_attrs(r.get("filteringattributes")) if message == "Update" else None,
                endpoint=endpoint,
                images=tuple(images.get(sid, ())),
            )
        )
    steps.sort(key=lambda s: (s.rank, s.name))
    return steps


def changed_columns(change: RecordChange, table: Table | None) -> set[str]:
    """Logical names of the columns a write set (``nav@odata.bind`` and ``_x_value`` normalised)."""
    navs = {c.nav.lower(): c.name for c in (table.columns if table else ()) if c.nav}
    out: set[str] = set()
    for key in change.changed:
        name = key.split("@", 1)[0]
        if "@odata.bind" in key:
            name = navs.get(name.lower(), name)
        elif name.startswith("_") and name.endswith("_value"):
            name = name[1:-6]
        out.add(name.lower())
    return out


def matching_steps(steps: Iterable[Step], change: RecordChange) -> list[Step]:
    table = table_by_set(DATAVERSE_TABLES, change.entity_set)
    changed: set[str] | None = None
    out = []
    for step in steps:
        if step.message != change.message or step.entity != change.logical_name.lower():
            continue
        if step.filtering is not None:
            if changed is None:
                changed = changed_columns(change, table)
            if not (step.filtering & changed):
                continue
        out.append(step)
    return out
