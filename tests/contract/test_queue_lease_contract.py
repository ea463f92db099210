"""The queue contract, continued: a lease taken as an event is enqueued (``ENQUEUE_LEASED``) and lease
owners (``RECLAIM``). Run for every backend like test_queue_contract.py; a backend that does not
declare the capability skips its tests."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pytest

from bridge.queue.base import QueuePort
from tests.contract.queue_support import QueueFactory, leaser, make_event, numbers, reclaimer


class QueueLeaseContract:
    lease_s: ClassVar[float] = 0.2

    @pytest.fixture
    async def queue(self, make_queue: QueueFactory) -> QueuePort:
        return await make_queue("main")

    # ---- enqueued and leased at once (a synchronous change) --------------------------------------

    async def test_enqueue_leased_hands_an_idle_records_event_to_the_caller(self, queue: QueuePort) -> None:
        event = make_event(1)
        fresh, item = await leaser(queue).enqueue_leased(event, 30)
        assert fresh is True and item is not None
        assert item.event == event and item.attempts == 0
        assert await queue.depth() == 1
        await queue.enqueue(make_event(2))
        assert await queue.lease(10, 30) == []  # held: the record's later events wait
        assert await queue.complete(item) is True
        assert numbers(await queue.lease(10, 30)) == [2]

    async def test_enqueue_leased_queues_behind_the_records_earlier_events(self, queue: QueuePort) -> None:
        await queue.enqueue(make_event(1))
        fresh, item = await leaser(queue).enqueue_leased(make_event(2), 30)
        assert fresh is True and item is None
        [first] = await queue.lease(10, 30)
        assert numbers([first]) == [1]
        await queue.complete(first)
        [second] = await queue.lease(10, 30)
        assert numbers([second]) == [2] and second.attempts == 0

    async def test_enqueue_leased_behind_a_leased_event_waits_its_turn(self, queue: QueuePort) -> None:
        _, held = await leaser(queue).enqueue_leased(make_event(1), 30)
        assert held is not None
        fresh, item = await leaser(queue).enqueue_leased(make_event(2), 30)
        assert fresh is True and item is None
        await queue.complete(held)
        assert numbers(await queue.lease(10, 30)) == [2]

    async def test_enqueue_leased_of_a_repeat_is_neither_queued_nor_leased(self, queue: QueuePort) -> None:
        _, item = await leaser(queue).enqueue_leased(make_event(1), 30)
        assert item is not None
        await queue.complete(item)
        assert await leaser(queue).enqueue_leased(make_event(1), 30) == (False, None)
        assert await queue.depth() == 0 and await queue.lease(10, 30) == []

    async def test_an_expired_lease_from_enqueue_is_handed_out_again(self, queue: QueuePort) -> None:
        _, first = await leaser(queue).enqueue_leased(make_event(1), self.lease_s)
        assert first is not None
        await asyncio.sleep(self.lease_s * 1.5)
        [again] = await queue.lease(1, 30)
        assert again.seq == first.seq and again.attempts == 1
        assert await queue.complete(first) is False

    # ---- lease owners ----------------------------------------------------------------------------

    async def test_reopening_as_the_same_owner_takes_back_its_leases_and_no_one_elses(
        self, make_queue: QueueFactory
    ) -> None:
        q = await make_queue("owned", owner="bridge-a")
        reclaimer(q)
        await q.enqueue_many([make_event(1, key="A"), make_event(2, key="B"), make_event(3, key="A")])
        [held_by_a] = await q.lease(1, 30)  # killed while holding it: never settled
        await q.close()
        q = await make_queue("owned", owner="bridge-b")  # another owner, still alive
        [held_by_b] = await q.lease(1, 30)
        assert held_by_b.event.key != held_by_a.event.key
        await q.close()
        q = await make_queue("owned", owner="bridge-a")  # A restarts: open_queue takes back its own
        [again] = await q.lease(10, 30)
        assert (again.seq, again.event) == (held_by_a.seq, held_by_a.event)
        assert again.attempts == 1 and again.lease_token != held_by_a.lease_token
        assert await q.complete(held_by_a) is False  # the dead run's token settles nothing
        assert await q.complete(held_by_b) is True  # B's lease was left alone

    async def test_reclaim_releases_only_that_owners_leases_at_once(self, make_queue: QueueFactory) -> None:
        q = await make_queue("owners", owner="bridge-a")
        await q.enqueue_many([make_event(1, key="A"), make_event(2, key="A")])
        [held] = await q.lease(1, 30)
        assert await reclaimer(q).reclaim("bridge-z") == 0  # nobody's leases by that name
        assert await q.lease(10, 30) == []
        assert await reclaimer(q).reclaim("bridge-a") == 1
        [again] = await q.lease(10, 30)  # at once, not 30 s later; still the record's oldest
        assert numbers([again]) == [1]
        assert await reclaimer(q).reclaim("bridge-a") == 1  # the new lease names the owner too
        assert await q.complete(again) is False and await q.complete(held) is False
        assert await q.depth() == 2

    async def test_an_enqueued_lease_names_its_owner_too(self, make_queue: QueueFactory) -> None:
        q = await make_queue("enqueued", owner="bridge-a")
        _, item = await leaser(q).enqueue_leased(make_event(1), 30)
        assert item is not None
        assert await reclaimer(q).reclaim("bridge-a") == 1
        assert numbers(await q.lease(10, 30)) == [1]

    async def test_settled_leases_are_not_reclaimed(self, make_queue: QueueFactory) -> None:
        q = await make_queue("settled", owner="bridge-a")
        await q.enqueue_many([make_event(n, key=f"K{n}") for n in range(4)])
        a, b, c, d = sorted(await q.lease(10, 30), key=lambda i: i.seq)
        await q.complete(a)
        await q.release(b, delay=30)
        await q.dead_letter(c, "bad")
        assert await reclaimer(q).reclaim("bridge-a") == 1  # only d is still held
        assert await q.complete(d) is False
        assert numbers(await q.lease(10, 30)) == [3]
        assert len(await q.dead_letters()) == 1


class TestQueueLeaseContract(QueueLeaseContract):
    """Every backend (``make_queue`` in conftest.py)."""
