"""The queue ports' contract: every queue backend runs these tests, built through its factory.

``TestQueueContract`` (here) and ``TestQueueLeaseContract`` (test_queue_lease_contract.py: leases
taken as an event is enqueued, lease owners) run for every backend ``bridge.queue.factory`` knows
(``QUEUE_BUILDERS``; the ``make_queue`` fixture in conftest.py): a new backend is one module and one
entry there, and these tests then run against it. ``make_queue`` is ``make(name, owner=...) ->
QueuePort`` opened as the composition root opens it (``open_queue``), where the same ``name`` reaches
the same durable storage again (after ``close``). A test of an optional capability
(``QueueCapability``) is skipped for a backend that does not declare it. Set ``lease_s`` to the
shortest lease the backend allows (the expiry tests sleep a little longer than it).
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest

from bridge.queue.base import (
    LeaseReclaim,
    LeasingEnqueue,
    QueueAdmin,
    QueueCapability,
    QueuedEvent,
    QueuePort,
    WorkQueue,
    leasing,
    reclaiming,
)
from tests.contract.queue_support import QueueFactory, make_event, needs, numbers, repeat_flag


class QueueContract:
    lease_s: ClassVar[float] = 0.2

    @pytest.fixture
    async def queue(self, make_queue: QueueFactory) -> QueuePort:
        return await make_queue("main")

    # ---- enqueue and dedupe --------------------------------------------------------------------

    async def test_implements_the_port(self, queue: QueuePort) -> None:
        assert isinstance(queue, QueuePort)
        assert isinstance(queue, WorkQueue) and isinstance(queue, QueueAdmin)
        assert isinstance(queue.capabilities, frozenset)
        assert all(isinstance(c, QueueCapability) for c in queue.capabilities)

    async def test_a_declared_capability_is_really_there(self, queue: QueuePort) -> None:
        if QueueCapability.ENQUEUE_LEASED in queue.capabilities:
            assert isinstance(queue, LeasingEnqueue) and leasing(queue) is queue
        else:
            assert leasing(queue) is None
        if QueueCapability.RECLAIM in queue.capabilities:
            assert isinstance(queue, LeaseReclaim) and reclaiming(queue) is queue
        else:
            assert reclaiming(queue) is None

    async def test_enqueued_event_comes_back_unchanged(self, queue: QueuePort) -> None:
        event = make_event(1)
        before = datetime.now(UTC)
        assert await queue.enqueue(event) is True
        [item] = await queue.lease(10, 30)
        assert item.event == event
        assert item.attempts == 0 and item.last_error is None and item.lease_token
        assert before - timedelta(seconds=1) <= item.enqueued_at <= datetime.now(UTC) + timedelta(seconds=1)

    async def test_repeated_event_id_is_not_queued_again(self, queue: QueuePort) -> None:
        assert await queue.enqueue(make_event(1)) is True
        assert await queue.enqueue(make_event(2, event_id="evt-warehouse-1")) is repeat_flag(queue)
        assert await queue.depth() == 1
        assert numbers(await queue.lease(10, 30)) == [1]

    async def test_event_id_of_a_completed_event_is_still_deduplicated(self, queue: QueuePort) -> None:
        await queue.enqueue(make_event(1))
        [item] = await queue.lease(1, 30)
        assert await queue.complete(item) is True
        assert await queue.enqueue(make_event(1)) is repeat_flag(queue)
        assert await queue.depth() == 0

    async def test_event_id_of_a_dead_letter_is_deduplicated(self, queue: QueuePort) -> None:
        await queue.enqueue(make_event(1))
        [item] = await queue.lease(1, 30)
        await queue.dead_letter(item, "bad")
        assert await queue.enqueue(make_event(1)) is repeat_flag(queue)
        assert len(await queue.dead_letters()) == 1
        assert await queue.depth() == 0

    async def test_enqueue_many_flags_each_event_including_repeats_in_the_batch(
        self, queue: QueuePort
    ) -> None:
        await queue.enqueue(make_event(0, key="A"))
        flags = await queue.enqueue_many(
            [make_event(0, key="A"), make_event(1, key="B"), make_event(1, key="B"), make_event(2, key="C")]
        )
        repeat = repeat_flag(queue)
        assert flags == [repeat, True, repeat, True]
        assert await queue.depth() == 3

    async def test_enqueue_many_of_nothing_is_nothing(self, queue: QueuePort) -> None:
        assert await queue.enqueue_many([]) == []
        assert await queue.depth() == 0

    # ---- per-record order ------------------------------------------------------------------------

    async def test_one_event_per_record_the_oldest(self, queue: QueuePort) -> None:
        for n in (1, 2, 3):
            await queue.enqueue(make_event(n))
        assert numbers(await queue.lease(10, 30)) == [1]

    async def test_leased_record_hides_its_later_events(self, queue: QueuePort) -> None:
        await queue.enqueue(make_event(1))
        await queue.lease(10, 30)
        await queue.enqueue(make_event(2))
        assert await queue.lease(10, 30) == []

    async def test_completing_the_head_exposes_the_next_event_of_the_record(self, queue: QueuePort) -> None:
        for n in (1, 2, 3):
            await queue.enqueue(make_event(n))
        seen = []
        for _ in range(3):
            [item] = await queue.lease(10, 30)
            seen.append(int(item.event.changed["n"]))
            await queue.complete(item)
        assert seen == [1, 2, 3]
        assert await queue.lease(10, 30) == []

    async def test_different_records_lease_in_parallel(self, queue: QueuePort) -> None:
        for n, key in enumerate(["A", "B", "C", "A"]):
            await queue.enqueue(make_event(n, key=key))
        items = await queue.lease(10, 30)
        assert sorted(i.event.key for i in items) == ["A", "B", "C"]
        assert numbers(items) == [0, 1, 2]

    async def test_lease_takes_at_most_max_items(self, queue: QueuePort) -> None:
        await queue.enqueue_many([make_event(n, key=f"K{n}") for n in range(5)])
        first = await queue.lease(2, 30)
        rest = await queue.lease(10, 30)
        assert len(first) == 2 and len(rest) == 3
        assert {i.seq for i in first}.isdisjoint({i.seq for i in rest})

    async def test_lease_of_zero_items_is_nothing(self, queue: QueuePort) -> None:
        await queue.enqueue(make_event(1))
        assert await queue.lease(0, 30) == []
        assert len(await queue.lease(1, 30)) == 1

    async def test_seq_increases_in_enqueue_order(self, queue: QueuePort) -> None:
        await queue.enqueue_many([make_event(n, key=f"K{n}") for n in range(4)])
        items = sorted(await queue.lease(10, 30), key=lambda i: i.seq)
        assert numbers(items) == [0, 1, 2, 3]
        assert [int(i.event.changed["n"]) for i in items] == [0, 1, 2, 3]

    async def test_paused_map_is_skipped_and_kept(self, queue: QueuePort) -> None:
        await queue.enqueue(make_event(1, entity="warehouse"))
        await queue.enqueue(make_event(2, entity="ship_via"))
        items = await queue.lease(10, 30, exclude_entities={"warehouse"})
        assert [i.event.entity for i in items] == ["ship_via"]
        assert [i.event.entity for i in await queue.lease(10, 30)] == ["warehouse"]

    # ---- leases --------------------------------------------------------------------------------

    async def test_expired_lease_is_handed_out_again(self, queue: QueuePort) -> None:
        await queue.enqueue(make_event(1))
        [first] = await queue.lease(1, self.lease_s)
        assert await queue.lease(1, 30) == []
        await asyncio.sleep(self.lease_s * 1.5)
        [again] = await queue.lease(1, 30)
        assert again.seq == first.seq and again.attempts == 1
        assert again.lease_token != first.lease_token

    async def test_stale_lease_cannot_complete_the_new_lease(self, queue: QueuePort) -> None:
        await queue.enqueue(make_event(1))
        await queue.enqueue(make_event(2))
        [stale] = await queue.lease(1, self.lease_s)
        await asyncio.sleep(self.lease_s * 1.5)
        [fresh] = await queue.lease(1, 30)
        assert await queue.complete(stale) is False
        assert await queue.lease(10, 30) == []  # still held by the fresh lease: event 2 waits
        assert await queue.complete(fresh) is True
        assert numbers(await queue.lease(10, 30)) == [2]

    async def test_stale_lease_cannot_release_or_dead_letter(self, queue: QueuePort) -> None:
        await queue.enqueue(make_event(1))
        [stale] = await queue.lease(1, self.lease_s)
        await asyncio.sleep(self.lease_s * 1.5)
        [fresh] = await queue.lease(1, 30)
        assert await queue.release(stale) is False
        assert await queue.dead_letter(stale, "late") is False
        assert await queue.lease(10, 30) == []
        assert await queue.dead_letters() == []
        assert await queue.complete(fresh) is True

    async def test_completed_event_is_gone_for_good(self, queue: QueuePort) -> None:
        await queue.enqueue(make_event(1))
        [item] = await queue.lease(1, self.lease_s)
        assert await queue.complete(item) is True
        await asyncio.sleep(self.lease_s * 1.5)
        assert await queue.lease(10, 30) == []
        assert await queue.complete(item) is False
        assert await queue.depth() == 0

    async def test_complete_many_settles_each_item(self, queue: QueuePort) -> None:
        await queue.enqueue_many([make_event(n, key=f"K{n}") for n in range(3)])
        items = await queue.lease(10, 30)
        assert await queue.complete_many(items) == [True, True, True]
        assert await queue.complete_many(items) == [False, False, False]
        assert await queue.depth() == 0

    async def test_release_returns_the_event_first_in_its_record(self, queue: QueuePort) -> None:
        await queue.enqueue(make_event(1))
        await queue.enqueue(make_event(2))
        [item] = await queue.lease(1, 30)
        assert await queue.release(item, error="HTTP 503") is True
        [again] = await queue.lease(10, 30)
        assert again.seq == item.seq
        assert again.attempts == 1 and again.last_error == "HTTP 503"

    async def test_release_with_delay_hides_the_record_until_then(self, queue: QueuePort) -> None:
        await queue.enqueue(make_event(1, key="A"))
        await queue.enqueue(make_event(2, key="B"))
        items = await queue.lease(10, 30)
        a = next(i for i in items if i.event.key == "A")
        await queue.complete(next(i for i in items if i.event.key == "B"))
        await queue.release(a, delay=self.lease_s)
        await queue.enqueue(make_event(3, key="A"))
        assert await queue.lease(10, 30) == []
        await asyncio.sleep(self.lease_s * 1.5)
        assert numbers(await queue.lease(10, 30)) == [1]

    # ---- dead letters --------------------------------------------------------------------------

    async def test_dead_letter_blocks_later_events_of_its_record_only(self, queue: QueuePort) -> None:
        needs(queue, QueueCapability.ORDERED_DEAD_LETTERS)
        await queue.enqueue(make_event(1, key="A"))
        await queue.enqueue(make_event(2, key="B"))
        await queue.enqueue(make_event(3, key="A"))
        [a1] = [i for i in await queue.lease(10, 30) if i.event.key == "A"]
        assert await queue.dead_letter(a1, "rejected: no such site") is True
        assert await queue.lease(10, 30) == []  # B is still leased, A blocked behind its dead letter
        [dead] = await queue.dead_letters()
        assert dead.seq == a1.seq and dead.event == a1.event
        assert dead.reason == "rejected: no such site" and dead.attempts == 1
        assert dead.dead_lettered_at.tzinfo is not None
        assert await queue.depth() == 2  # B and A's second event; the dead letter is not counted

    async def test_replay_puts_the_dead_letter_back_before_later_events(self, queue: QueuePort) -> None:
        needs(queue, QueueCapability.ORDERED_DEAD_LETTERS)
        await queue.enqueue(make_event(1))
        await queue.enqueue(make_event(2))
        [item] = await queue.lease(1, 30)
        await queue.dead_letter(item, "bad")
        assert await queue.replay() == 1
        assert await queue.dead_letters() == []
        [again] = await queue.lease(10, 30)
        assert again.seq == item.seq and again.event == item.event
        assert await queue.depth() == 2

    async def test_discard_drops_the_dead_letter_and_unblocks_the_record(self, queue: QueuePort) -> None:
        await queue.enqueue(make_event(1))
        await queue.enqueue(make_event(2))
        [item] = await queue.lease(1, 30)
        await queue.dead_letter(item, "bad")
        assert await queue.discard() == 1
        assert await queue.dead_letters() == []
        assert numbers(await queue.lease(10, 30)) == [2]
        assert await queue.replay() == 0

    async def test_replay_and_discard_by_seq_touch_only_those(self, queue: QueuePort) -> None:
        await queue.enqueue_many([make_event(n, key=f"K{n}") for n in range(3)])
        items = sorted(await queue.lease(10, 30), key=lambda i: i.seq)
        for item in items:
            await queue.dead_letter(item, f"bad {item.seq}")
        assert await queue.replay([items[0].seq, 10**9]) == 1
        assert await queue.discard([items[1].seq]) == 1
        assert [d.seq for d in await queue.dead_letters()] == [items[2].seq]
        assert numbers(await queue.lease(10, 30)) == [0]

    async def test_dead_letters_page(self, queue: QueuePort) -> None:
        await queue.enqueue_many([make_event(n, key=f"K{n}") for n in range(5)])
        for item in await queue.lease(10, 30):
            await queue.dead_letter(item, "bad")
        page1 = await queue.dead_letters(offset=0, limit=2)
        page3 = await queue.dead_letters(offset=4, limit=2)
        assert len(page1) == 2 and len(page3) == 1
        every = [d.seq for d in await queue.dead_letters(limit=100)]
        assert len(set(every)) == 5 and [d.seq for d in page1] == every[:2]

    # ---- skipping a paused map's backlog -------------------------------------------------------

    async def test_drain_removes_queued_events_oldest_first_but_not_leased_ones(
        self, queue: QueuePort
    ) -> None:
        needs(queue, QueueCapability.MAP_FIGURES)
        needs(queue, QueueCapability.MAP_BACKLOG)
        await queue.enqueue(make_event(1, key="A"))
        [a1] = await queue.lease(1, 30)
        await queue.enqueue_many([make_event(2, key="A"), make_event(3, key="B"), make_event(4, key="B")])
        await queue.enqueue(make_event(5, entity="ship_via"))
        drained = await queue.drain("warehouse", 10)
        assert [int(i.event.changed["n"]) for i in drained] == [2, 3, 4]
        assert await queue.depth("warehouse") == 1  # the leased head
        assert await queue.complete(a1) is True
        assert [i.event.entity for i in await queue.lease(10, 30)] == ["ship_via"]
        assert await queue.drain("warehouse", 10) == []

    async def test_drain_in_chunks_returns_everything_once(self, queue: QueuePort) -> None:
        needs(queue, QueueCapability.MAP_BACKLOG)
        await queue.enqueue_many([make_event(n, key=f"K{n % 3}") for n in range(7)])
        seen: list[int] = []
        while batch := await queue.drain("warehouse", 3):
            assert len(batch) <= 3
            seen += [int(i.event.changed["n"]) for i in batch]
        assert seen == list(range(7))
        assert await queue.depth() == 0

    async def test_drain_leaves_dead_letters_and_takes_what_waits_behind_them(self, queue: QueuePort) -> None:
        needs(queue, QueueCapability.MAP_BACKLOG)
        await queue.enqueue(make_event(1))
        [item] = await queue.lease(1, 30)
        await queue.dead_letter(item, "bad")
        await queue.enqueue(make_event(2))
        assert [int(i.event.changed["n"]) for i in await queue.drain("warehouse", 10)] == [2]
        assert [d.seq for d in await queue.dead_letters()] == [item.seq]
        assert await queue.replay() == 1
        assert numbers(await queue.lease(10, 30)) == [1]

    async def test_purge_drops_a_maps_queue_but_not_leases_dead_letters_or_other_maps(
        self, queue: QueuePort
    ) -> None:
        needs(queue, QueueCapability.MAP_FIGURES)
        needs(queue, QueueCapability.MAP_BACKLOG)
        await queue.enqueue_many([make_event(1, key="A"), make_event(2, key="D")])
        leased = {i.event.key: i for i in await queue.lease(10, 30)}
        await queue.dead_letter(leased["D"], "bad")
        await queue.enqueue_many([make_event(n, key=k) for n, k in [(3, "A"), (4, "B"), (5, "D"), (6, "B")]])
        await queue.enqueue(make_event(7, entity="ship_via"))
        assert await queue.purge("warehouse") == 4
        assert await queue.depth("warehouse") == 1 and await queue.depth("ship_via") == 1
        assert [i.event.entity for i in await queue.lease(10, 30)] == ["ship_via"]
        assert await queue.complete(leased["A"]) is True
        assert await queue.discard() == 1
        await queue.enqueue(make_event(8, key="B"))  # the purged records take new events normally
        assert numbers(await queue.lease(10, 30)) == [8]

    # ---- gauges --------------------------------------------------------------------------------

    async def test_depth_counts_queued_events_per_map(self, queue: QueuePort) -> None:
        needs(queue, QueueCapability.MAP_FIGURES)
        assert await queue.depth() == 0
        await queue.enqueue_many([make_event(1), make_event(2), make_event(3, entity="ship_via")])
        assert await queue.depth() == 3
        assert await queue.depth("warehouse") == 2
        assert await queue.depth("ship_via") == 1
        assert await queue.depth("payment_terms") == 0

    async def test_oldest_enqueued_at(self, queue: QueuePort) -> None:
        needs(queue, QueueCapability.MAP_FIGURES)
        needs(queue, QueueCapability.QUEUE_AGE)
        assert await queue.oldest_enqueued_at() is None
        await queue.enqueue(make_event(1, entity="ship_via"))
        await asyncio.sleep(0.02)
        await queue.enqueue(make_event(2))
        first = await queue.oldest_enqueued_at()
        wh = await queue.oldest_enqueued_at("warehouse")
        assert first is not None and wh is not None and first < wh
        assert await queue.oldest_enqueued_at("payment_terms") is None

    # ---- waiting -------------------------------------------------------------------------------

    async def test_wait_returns_promptly_on_enqueue(self, queue: QueuePort) -> None:
        waiter = asyncio.create_task(queue.wait(5.0))
        await asyncio.sleep(0.05)
        start = time.monotonic()
        await queue.enqueue(make_event(1))
        await asyncio.wait_for(waiter, 1.0)
        assert time.monotonic() - start < 0.5

    async def test_wait_returns_promptly_on_release(self, queue: QueuePort) -> None:
        await queue.enqueue(make_event(1))
        [item] = await queue.lease(1, 30)
        await queue.wait(0.01)  # consume the enqueue's wake-up
        waiter = asyncio.create_task(queue.wait(5.0))
        await asyncio.sleep(0.05)
        await queue.release(item)
        await asyncio.wait_for(waiter, 1.0)

    async def test_wait_times_out_when_nothing_happens(self, queue: QueuePort) -> None:
        start = time.monotonic()
        await queue.wait(0.1)
        assert 0.05 <= time.monotonic() - start < 1.0

    # ---- durability and order under churn --------------------------------------------------------

    async def test_events_and_dedupe_survive_reopen(self, make_queue: QueueFactory) -> None:
        q = await make_queue("durable")
        await q.enqueue(make_event(1))
        await q.enqueue(make_event(2))
        [item] = await q.lease(1, 30)
        await q.complete(item)
        await q.close()
        q = await make_queue("durable")
        assert await q.enqueue(make_event(1)) is repeat_flag(q)
        assert numbers(await q.lease(10, 30)) == [2]

    async def test_random_churn_keeps_per_record_order_and_loses_nothing(self, queue: QueuePort) -> None:
        rng = random.Random(7)
        keys = [f"R{i}" for i in range(6)]
        enqueued: dict[str, list[int]] = {k: [] for k in keys}
        applied: dict[str, list[int]] = {k: [] for k in keys}
        held: list[QueuedEvent] = []
        n = 0
        for _ in range(300):
            op = rng.random()
            if op < 0.4:
                key = rng.choice(keys)
                await queue.enqueue(make_event(n, key=key))
                enqueued[key].append(n)
                n += 1
            elif op < 0.6:
                held += await queue.lease(rng.randint(1, 4), 30)
            elif held:
                item = held.pop(rng.randrange(len(held)))
                if op < 0.85:
                    assert await queue.complete(item)
                    applied[item.event.key].append(int(item.event.changed["n"]))
                else:
                    assert await queue.release(item, error="transient")
        for item in held:
            await queue.release(item)
        while batch := await queue.lease(10, 30):
            for item in batch:
                applied[item.event.key].append(int(item.event.changed["n"]))
            await queue.complete_many(batch)
        assert applied == enqueued


class TestQueueContract(QueueContract):
    """Every backend (``make_queue`` in conftest.py)."""
