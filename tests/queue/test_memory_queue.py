"""The in-memory double with fewer capabilities: what it declares it lacks, it refuses."""

from __future__ import annotations

import pytest

from bridge.queue.base import CapabilityMissing, QueueCapability, leasing, reclaiming
from bridge.queue.memory import MemoryQueue
from tests.contract.queue_support import make_event


async def test_without_map_figures_a_per_map_figure_is_refused_not_invented() -> None:
    queue = MemoryQueue(capabilities=set(QueueCapability) - {QueueCapability.MAP_FIGURES})
    await queue.enqueue(make_event(1))
    assert await queue.depth() == 1 and await queue.oldest_enqueued_at() is not None
    with pytest.raises(CapabilityMissing, match="map_figures") as exc:
        await queue.depth("warehouse")
    assert exc.value.capability is QueueCapability.MAP_FIGURES
    with pytest.raises(CapabilityMissing):
        await queue.oldest_enqueued_at("warehouse")


async def test_without_enqueue_leased_or_reclaim_the_optional_protocols_are_absent() -> None:
    queue = MemoryQueue(capabilities=())
    assert leasing(queue) is None and reclaiming(queue) is None
    with pytest.raises(CapabilityMissing):
        await queue.enqueue_leased(make_event(1), 30)
    with pytest.raises(CapabilityMissing):
        await queue.reclaim("someone")
    assert await queue.depth() == 0  # the refused enqueue added nothing
