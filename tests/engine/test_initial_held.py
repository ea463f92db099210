"""Which records a sync run leaves to their queued live change (bridge.syncrun.QueuedChanges)."""

from __future__ import annotations

from typing import Any, cast

from bridge.queue.base import QueueCapability, QueuePort
from bridge.syncrun import QueuedChanges


class _Queue:
    def __init__(self, capabilities: frozenset[QueueCapability], pending: dict[str, list[Any]]) -> None:
        self.capabilities = capabilities
        self.pending = pending
        self.asked: list[str] = []

    async def depth(self, entity: str | None = None) -> int:
        self.asked.append(f"depth {entity}")
        return sum(len(v) for v in self.pending.values())

    async def pending_of(self, record_key: str) -> list[Any]:
        self.asked.append(record_key)
        return self.pending.get(record_key, [])


ALL = frozenset(QueueCapability)


async def test_records_with_a_queued_change_are_held() -> None:
    queue = _Queue(ALL, {"ship_via|USMF|A": ["an event"]})
    held = await QueuedChanges(cast(QueuePort, queue)).held(
        "ship_via", ["ship_via|USMF|A", "ship_via|USMF|B"]
    )
    assert held == {"ship_via|USMF|A"}


async def test_an_empty_queue_is_asked_once_per_window() -> None:
    queue = _Queue(ALL, {})
    assert await QueuedChanges(cast(QueuePort, queue)).held("ship_via", ["ship_via|USMF|A"]) == set()
    assert queue.asked == ["depth ship_via"]


async def test_a_queue_that_cannot_show_one_record_is_not_asked() -> None:
    queue = _Queue(frozenset({QueueCapability.ENQUEUE_LEASED}), {"ship_via|USMF|A": ["an event"]})
    assert await QueuedChanges(cast(QueuePort, queue)).held("ship_via", ["ship_via|USMF|A"]) == set()
    assert (
        queue.asked == []
    )  # Service Bus: CapabilityMissing avoided, If-Match and the ledger's dates cover it
