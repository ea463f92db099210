"""``LeaseClaim.claim``: the replica holding a synchronous originator's call takes that one change
as soon as its record's turn comes (bridge/engine/ownership.py), on every backend that declares it.
Two queues on one storage, with two owners, are two replicas."""

from __future__ import annotations

import asyncio

import pytest

from bridge.queue.base import LeaseClaim, QueuePort, claiming
from tests.contract.queue_support import QueueFactory, make_event


@pytest.fixture
async def replicas(make_queue: QueueFactory) -> tuple[QueuePort, LeaseClaim, QueuePort]:
    """(replica a, a as a claimer, replica b): two owners on one queue."""
    a = await make_queue("q", owner="replica-a")
    found = claiming(a)
    if found is None:
        pytest.skip(f"{type(a).__name__} does not declare claim")
    return a, found, await make_queue("q", owner="replica-b")


async def test_claim_takes_the_named_event_once_its_record_is_free(
    replicas: tuple[QueuePort, LeaseClaim, QueuePort],
) -> None:
    a, claimer, b = replicas
    first, save = make_event(1), make_event(2)
    await a.enqueue_many([first, save])
    assert await claimer.claim(save, 30) is None  # the record's earlier event goes first
    [held] = await b.lease(5, 30)
    assert held.event == first
    assert await claimer.claim(first, 30) is None  # leased by b
    assert await b.complete(held)
    got = await claimer.claim(save, 30)
    assert got is not None and got.event == save and got.attempts == 0
    assert await b.lease(5, 30) == []  # a holds it now
    assert await claimer.claim(save, 30) is None  # and only once
    assert await a.complete(got)
    assert await a.depth() == 0


async def test_claim_goes_past_a_delay_and_takes_an_expired_lease(
    replicas: tuple[QueuePort, LeaseClaim, QueuePort],
) -> None:
    a, claimer, b = replicas
    save = make_event(1)
    await a.enqueue(save)
    [held] = await b.lease(1, 0.2)
    await asyncio.sleep(0.3)  # b's lease ran out (b died)
    got = await claimer.claim(save, 30)
    assert got is not None and got.attempts == 1
    assert not await b.complete(held)  # b's stale lease settles nothing
    assert await a.release(got, delay=60)  # handed back, out of the other replicas' leases
    assert await b.lease(5, 30) == []
    again = await claimer.claim(save, 30)  # the owner takes it all the same
    assert again is not None and again.event == save
    assert not await a.release(got)  # the earlier lease settles nothing
    assert await a.complete(again)


async def test_claim_leaves_dead_letters_other_records_and_unknown_events_alone(
    replicas: tuple[QueuePort, LeaseClaim, QueuePort],
) -> None:
    a, claimer, _ = replicas
    dead, behind, other = make_event(1), make_event(2), make_event(3, key="W2")
    await a.enqueue_many([dead, behind, other])
    held = {i.event.event_id: i for i in await a.lease(5, 30)}
    assert await a.dead_letter(held[dead.event_id], "refused")
    assert await claimer.claim(dead, 30) is None  # dead-lettered
    assert await claimer.claim(behind, 30) is None  # held back behind the dead letter
    assert await claimer.claim(make_event(9), 30) is None  # never queued
    assert await claimer.claim(other, 30) is None  # leased above
    with pytest.raises(ValueError):
        await claimer.claim(other, 0)
