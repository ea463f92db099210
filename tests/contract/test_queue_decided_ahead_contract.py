"""The two work-queue operations a synchronous change decided ahead of its record's queue uses
(bridge/engine/syncgate.py): what is pending for a record, and taking a queued event back out."""

from __future__ import annotations

import pytest

from bridge.queue.base import QueueCapability, QueuePort
from tests.contract.queue_support import QueueFactory, needs
from tests.contract.test_queue_contract import make_event


@pytest.fixture
async def queue(make_queue: QueueFactory) -> QueuePort:
    """Every backend the factories know (tests/contract/conftest.py) that can show one record's queue."""
    queue = await make_queue("q")
    needs(queue, QueueCapability.RECORD_VIEW)
    return queue


async def test_pending_of_lists_the_records_queued_and_leased_events_oldest_first(queue: QueuePort) -> None:
    await queue.enqueue_many([make_event(1), make_event(2), make_event(3, key="W2"), make_event(4)])
    head = next(i for i in await queue.lease(2, 30) if i.event.key == "W1")
    assert head.event.event_id == "evt-warehouse-1"
    pending = await queue.pending_of(head.event.record_key)
    assert [e.event_id for e in pending] == ["evt-warehouse-1", "evt-warehouse-2", "evt-warehouse-4"]
    assert pending[0] == head.event  # the whole change, as queued
    await queue.dead_letter(head, "parked")
    assert [e.event_id for e in await queue.pending_of(head.event.record_key)] == [
        "evt-warehouse-2",
        "evt-warehouse-4",
    ]
    assert await queue.pending_of("warehouse|USMF|NONE") == []


async def test_withdraw_takes_a_waiting_event_out_and_the_record_goes_on_without_it(
    queue: QueuePort,
) -> None:
    await queue.enqueue_many([make_event(1), make_event(2), make_event(3)])
    [head] = await queue.lease(1, 30)
    assert await queue.withdraw("evt-warehouse-2")
    assert await queue.depth() == 2
    assert await queue.complete(head)
    [nxt] = await queue.lease(1, 30)
    assert nxt.event.event_id == "evt-warehouse-3"
    assert not await queue.withdraw("evt-warehouse-2")  # gone already


async def test_withdrawing_the_unleased_head_hands_out_the_next_event(queue: QueuePort) -> None:
    await queue.enqueue_many([make_event(1), make_event(2)])
    assert await queue.withdraw("evt-warehouse-1")
    [nxt] = await queue.lease(5, 30)
    assert nxt.event.event_id == "evt-warehouse-2"
    assert await queue.withdraw("evt-warehouse-2") is False  # leased: its worker settles it
    assert await queue.complete(nxt)
    assert await queue.depth() == 0


async def test_withdraw_leaves_leased_dead_and_unknown_events_alone(queue: QueuePort) -> None:
    await queue.enqueue_many([make_event(1), make_event(2, key="W2")])
    leased = {i.event.key: i for i in await queue.lease(2, 30)}
    first, second = leased["W1"], leased["W2"]
    await queue.dead_letter(second, "parked")
    assert not await queue.withdraw(first.event.event_id)
    assert not await queue.withdraw(second.event.event_id)
    assert not await queue.withdraw("never-queued")
    assert await queue.depth() == 1 and len(await queue.dead_letters()) == 1
    assert await queue.complete(first)
