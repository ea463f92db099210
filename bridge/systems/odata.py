"""OData URL pieces shared by both clients (pure): literals, key segments, GUIDs in URLs."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

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
