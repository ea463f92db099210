"""Small builders shared by the ops tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from bridge.core.events import ChangeEvent, Operation, System
from bridge.queue.sqlite import SqliteQueue
from bridge.state.base import Failure
from bridge.state.sqlite import SqliteState


def event(entity: str = "warehouse", key: str = "11", source: System = System.CDS) -> ChangeEvent:
    return ChangeEvent(
        event_id=str(uuid.uuid4()),
        source=source,
        entity=entity,
        company="USMF",
        key=key,
        operation=Operation.UPDATE,
        changed={"msdyn_name": "Main"},
    )


async def dead_letters(queue: SqliteQueue, count: int, entity: str = "warehouse") -> list[int]:
    for i in range(count):
        await queue.enqueue(event(entity, key=f"DL{i}"))
    items = await queue.lease(count, 30.0)
    for item in items:
        await queue.dead_letter(item, f"target rejected {item.event.key}")
    return sorted(i.seq for i in items)


async def failures(
    state: SqliteState,
    count: int,
    entity: str = "warehouse",
    *,
    age: timedelta = timedelta(0),
    kind: str = "rejected",
) -> list[int]:
    ids = []
    for i in range(count):
        ids.append(
            await state.add_failure(
                Failure(
                    entity=entity,
                    company="USMF",
                    key=f"K{i}",
                    direction="cds->scm",
                    operation="update",
                    event_id=str(uuid.uuid4()),
                    source_message="restored the last synced image",
                    target_message=f"Field 'Site' must be filled in ({i})",
                    kind=kind,
                    occurred_at=datetime.now(UTC) - age,
                )
            )
        )
    return ids
