"""A Dataverse notification of a document map's table (header or line) -> ``ChangeEvent`` (pure).

Every save of a document is keyed by its header's row id, so the queue orders a line's change with
its header's (``record_key`` = map | company | header id); the company is the map's (the template's
project is per company). A line names its header by its parent lookup (``_<parent>_value``) in the
notification's images; when they lack it, the handler reads the line (``parent_of``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from bridge.core.docmap import DocumentMap, LineCollection
from bridge.core.events import ChangeEvent
from bridge.listeners.cds import CdsChange


def line_of(dmap: DocumentMap, table: str) -> LineCollection | None:
    return dmap.line_of_table(table)


def parent_of(line: LineCollection, *rows: Mapping[str, Any] | None) -> str | None:
    """The header id a line names in any of ``rows`` (target, post image, pre image, the row read)."""
    for row in rows:
        value = (row or {}).get(line.cds.parent_read)
        if value:
            return str(value).lower()
    return None


def document_event(change: CdsChange, dmap: DocumentMap, header_id: str) -> ChangeEvent:
    """The change as an event of the document ``header_id`` in the map's company."""
    keyed = replace(change, key=header_id)
    return keyed.to_event(dmap.company)
