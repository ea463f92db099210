"""OData pieces shared by both clients: literals, key segments, GUIDs in URLs (pure), and the query
reads that do I/O: one row or ``None`` (``get_one``) and server-driven paging (``query_all``)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from bridge.systems.http import HttpClient

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ENTITY_ID = re.compile(r"\(([0-9a-fA-F-]{36})\)\s*$")


def is_guid(value: object) -> bool:
    return isinstance(value, uuid.UUID) or (isinstance(value, str) and bool(_GUID.match(value)))


def literal(value: Any, *, bare_guid: bool = False) -> str:
    """An OData literal for URLs and $filter: strings quoted with '' escaping; GUIDs bare if asked."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, uuid.UUID) or (bare_guid and is_guid(value)):
        return str(value).lower()
    return "'" + str(value).replace("'", "''") + "'"


def key_segment(keys: Mapping[str, Any]) -> str:
    """``(k1='a',k2=1)``, percent-encoded for a path. Lookup keys (``_x_value``) take bare GUIDs."""
    if not keys:
        raise ValueError("a key needs at least one column")
    parts = []
    for name, value in keys.items():
        is_lookup = name.startswith("_") and name.endswith("_value")
        parts.append(f"{name}={literal(value, bare_guid=is_lookup)}")
    # Keep OData syntax characters; encode everything else (spaces, '/', '#', '?', non-ASCII).
    return "(" + quote(",".join(parts), safe="=',()-_.~") + ")"


def id_segment(record_id: str) -> str:
    if not is_guid(record_id):
        raise ValueError(f"not a GUID: {record_id!r}")
    return f"({record_id.lower()})"


def id_from_entity_url(url: str | None) -> str | None:
    """The GUID at the end of an ``OData-EntityId`` header: ``…/accounts(<guid>)``."""
    if not url:
        return None
    match = _ENTITY_ID.search(url)
    return match.group(1).lower() if match else None


async def get_one(http: HttpClient, path: str, params: Mapping[str, str] | None) -> dict[str, Any] | None:
    """One row at ``path`` (an entity set and key segment), or None if it does not exist (404)."""
    resp = await http.request("GET", path, params=params, accept=(404,))
    return None if resp.status == 404 else dict(resp.body or {})


async def query_all(
    http: HttpClient,
    entity_set: str,
    *,
    filter: str | None = None,
    select: list[str] | None = None,
    top: int | None = None,
    limit: int | None = None,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """All matching rows, following ``@odata.nextLink``. ``top`` is sent as ``$top``; ``limit`` stops
    reading after that many rows without telling the service (where ``$top`` would be ignored).
    ``params`` are extra query options of the first request; a next link already carries them."""
    first_params = dict(params or {})
    if filter:
        first_params["$filter"] = filter
    if select:
        first_params["$select"] = ",".join(select)
    if top is not None:
        first_params["$top"] = str(top)
    bounds = [n for n in (top, limit) if n is not None]
    stop = min(bounds) if bounds else None
    rows: list[dict[str, Any]] = []
    url: str | None = entity_set
    first = True
    while url is not None:
        resp = await http.request("GET", url, params=first_params if first else None, headers=headers)
        first = False
        body = resp.body or {}
        rows.extend(body.get("value", []))
        if stop is not None and len(rows) >= stop:
            return rows[:stop]
        url = body.get("@odata.nextLink")
    return rows
