"""Conflicts parked for an administrator (``conflict_policy: manual``).

When both systems changed a record since the last sync and its map's policy is ``manual``, neither
side is written: the conflict is stored (``StatePort.park_conflict``, one open conflict per record,
updated by the record's later changes) with both versions, and the change that met it is done (an
asynchronous one is acknowledged; a synchronous save is accepted in its own system at once). An
administrator then picks a version, optionally edited (``EngineController.resolve_conflict``, the
``ConflictResolver`` port), and the bridge writes it to both systems.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bridge.core.events import ChangeEvent, System
from bridge.core.mapping import EntityMap
from bridge.state.base import ParkedConflict, StatePort

log = logging.getLogger(__name__)


async def park(
    state: StatePort,
    emap: EntityMap,
    event: ChangeEvent,
    source_image: Mapping[str, Any] | None,
    target_image: Mapping[str, Any] | None,
    target_modified_at: datetime | None,
) -> str:
    """Store the conflict ``event`` met (both versions, as each system holds them); the reason the
    change ends with, naming the conflict for the administrator."""
    target = event.source.other
    values = {
        event.source: emap.project(event.source, source_image) if source_image is not None else {},
        target: emap.project(target, target_image) if target_image is not None else {},
    }
    modified = {event.source: event.source_timestamp, target: target_modified_at}
    conflict_id = await state.park_conflict(
        ParkedConflict(
            entity=event.entity,
            company=event.company,
            key=event.key,
            cds_values=values[System.CDS],
            scm_values=values[System.SCM],
            event_id=event.event_id,
            cds_modified_at=modified[System.CDS],
            scm_modified_at=modified[System.SCM],
            detected_at=datetime.now(UTC),
        )
    )
    reason = (
        f"conflict parked for an administrator (conflict {conflict_id}): both systems changed "
        f"{emap.name} {event.company}/{event.key} since the last sync and the map's policy is manual; "
        f"nothing is written until it is resolved"
    )
    log.warning("%s", reason)
    return reason
