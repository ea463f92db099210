"""What the queue contract suites share: the factory type, events, and capability skips."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

import pytest

from bridge.core.events import ChangeEvent, Operation, System
from bridge.queue.base import (
    LeaseReclaim,
    LeasingEnqueue,
    QueueCapability,
    QueuedEvent,
    QueuePort,
    leasing,
    reclaiming,
)


class QueueFactory(Protocol):
    def __call__(self, name: str, *, owner: str = "contract") -> Awaitable[QueuePort]: ...


def make_event(
    n: int, *, key: str = "W1", entity: str = "warehouse", event_id: str | None = None
) -> ChangeEvent:
    return ChangeEvent(
        event_id=event_id or f"evt-{entity}-{n}",
        source=System.SCM,
        entity=entity,
        company="USMF",
        key=key,
        operation=Operation.UPDATE,
        changed={"WarehouseName": f"name {n}", "n": n},
        image={"WarehouseId": key, "WarehouseName": f"name {n}"},
        correlation_id=f"corr-{n}",
        trace_context={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    )


def numbers(items: list[QueuedEvent]) -> list[int]:
    return sorted(int(i.event.changed["n"]) for i in items)


def needs(queue: QueuePort, capability: QueueCapability) -> None:
    if capability not in queue.capabilities:
        pytest.skip(f"{type(queue).__name__} does not declare {capability.value}")


def repeat_flag(queue: QueuePort) -> bool:
    """What ``enqueue`` answers for a repeated event id: False with ``DEDUPE_ANSWER``; without it True
    (accepted, and still not queued twice: the broker drops the repeat)."""
    return QueueCapability.DEDUPE_ANSWER not in queue.capabilities


def leaser(queue: QueuePort) -> LeasingEnqueue:
    found = leasing(queue)
    if found is None:
        pytest.skip(f"{type(queue).__name__} does not declare enqueue_leased")
    return found


def reclaimer(queue: QueuePort) -> LeaseReclaim:
    found = reclaiming(queue)
    if found is None:
        pytest.skip(f"{type(queue).__name__} does not declare reclaim")
    return found
