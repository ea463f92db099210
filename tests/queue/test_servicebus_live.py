"""The Service Bus queue against a real namespace: runs when DUALWRITE_SERVICEBUS_CONNECTION_STRING is
set (a queue with sessions and duplicate detection, named by DUALWRITE_SERVICEBUS_TEST_QUEUE, default
"dualwrite-test"), skipped otherwise. It uses record keys and event ids of its own (a random run id), so
other messages in the queue are left alone (a lease of another record is given back at once: its
delivery count goes up by one)."""

from __future__ import annotations

import os
import uuid

import pytest
from azure.servicebus.aio import ServiceBusClient
from azure.servicebus.aio.management import ServiceBusAdministrationClient

from bridge.queue.base import QueuedEvent
from bridge.queue.servicebus import ServiceBusQueue
from tests.contract.queue_support import make_event

_SECRET = os.environ.get("DUALWRITE_SERVICEBUS_CONNECTION_STRING", "")
pytestmark = pytest.mark.skipif(
    not _SECRET,
    reason="no Service Bus namespace: set DUALWRITE_SERVICEBUS_CONNECTION_STRING (and optionally "
    "DUALWRITE_SERVICEBUS_TEST_QUEUE, a session-enabled queue with duplicate detection) to run it",
)


async def _mine(queue: ServiceBusQueue, run: str) -> list[QueuedEvent]:
    """Leases of this run's records; anyone else's are released at once."""
    items = await queue.lease(10, 60)
    ours = [i for i in items if run in i.event.key]
    for item in items:
        if item not in ours:
            await queue.release(item)
    return ours


async def test_a_round_trip_on_a_real_namespace() -> None:
    name = os.environ.get("DUALWRITE_SERVICEBUS_TEST_QUEUE", "dualwrite-test")
    queue = ServiceBusQueue(
        ServiceBusClient.from_connection_string(_SECRET),
        name,
        admin=ServiceBusAdministrationClient.from_connection_string(_SECRET),
        owner="live-test",
        accept_wait_s=5.0,
    )
    run = uuid.uuid4().hex[:8]
    await queue.open()
    try:
        first = make_event(1, key=f"live-{run}", event_id=f"live-{run}-1")
        await queue.enqueue_many([first, make_event(2, key=f"live-{run}", event_id=f"live-{run}-2")])
        await queue.enqueue(first)  # a repeat: the broker's duplicate detection drops it
        [item] = await _mine(queue, run)
        assert item.event == first and item.attempts == 0
        assert await queue.release(item, error="HTTP 503") is True
        [again] = await _mine(queue, run)
        assert again.seq == item.seq and again.attempts == 1 and again.last_error == "HTTP 503"
        assert await queue.complete(again) is True
        [second] = await _mine(queue, run)
        assert second.event.event_id == f"live-{run}-2"
        assert await queue.dead_letter(second, "live test") is True
        dead = [d for d in await queue.dead_letters(limit=1000) if run in d.event.key]
        assert [d.reason for d in dead] == ["live test"]
        assert await queue.discard([d.seq for d in dead]) == 1
        assert await _mine(queue, run) == []  # the repeat of the first was dropped
    finally:
        await queue.close()
