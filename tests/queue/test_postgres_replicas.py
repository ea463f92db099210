"""The PostgreSQL queue shared by several replicas (real PostgreSQL, tests/pg_support.py): two or more
``PostgresQueue`` instances on one schema, as two bridges would be, never hand out one record's events
at once, keep each record's order, dedupe across each other, take over a dead one's expired leases,
wake each other."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import psycopg
import pytest

from bridge.queue.postgres import PostgresQueue
from tests.contract.queue_support import make_event
from tests.pg_support import PG_URL, SchemaFactory, pg_schemas

__all__ = ["pg_schemas"]

ReplicaFactory = Callable[[int], Awaitable[list[PostgresQueue]]]


@pytest.fixture
async def replicas(pg_schemas: SchemaFactory) -> AsyncIterator[ReplicaFactory]:
    opened: list[PostgresQueue] = []
    schema = pg_schemas("shared")

    async def make(n: int) -> list[PostgresQueue]:
        queues = [PostgresQueue(PG_URL, schema=schema, owner=f"replica-{len(opened) + i}") for i in range(n)]
        await asyncio.gather(*(q.open() for q in queues))
        opened.extend(queues)
        return queues

    yield make
    for queue in opened:
        await queue.close()


async def test_two_replicas_never_lease_one_record_at_once_and_keep_order(
    replicas: ReplicaFactory,
) -> None:
    a, b = await replicas(2)
    keys = [f"R{i}" for i in range(12)]
    expected: dict[str, list[int]] = {k: [] for k in keys}
    n = 0
    for _ in range(8):
        for key in keys:
            await (a if n % 2 else b).enqueue(make_event(n, key=key))
            expected[key].append(n)
            n += 1
    held: set[str] = set()
    applied: dict[str, list[int]] = {k: [] for k in keys}
    rng = random.Random(3)

    async def worker(queue: PostgresQueue) -> None:
        idle = 0
        while idle < 3:
            batch = await queue.lease(5, 30)
            if not batch:
                idle += 1
                await asyncio.sleep(0.02)
                continue
            idle = 0
            for item in batch:
                key = item.event.key
                assert key not in held, f"{key} leased by two replicas at once"
                held.add(key)
            await asyncio.sleep(rng.random() * 0.01)
            for item in batch:
                applied[item.event.key].append(int(item.event.changed["n"]))
                held.discard(item.event.key)  # before the complete commits: the other may lease it then
                assert await queue.complete(item)

    await asyncio.gather(worker(a), worker(b))
    assert applied == expected
    assert await a.depth() == 0


async def test_one_records_enqueues_from_two_replicas_lose_nothing(
    replicas: ReplicaFactory,
) -> None:
    a, b = await replicas(2)

    async def feed(queue: PostgresQueue, start: int) -> None:
        for i in range(start, start + 40):
            await queue.enqueue(make_event(i, key="HOT"))

    async def consume(queue: PostgresQueue, got: list[int]) -> None:
        for _ in range(200):
            for item in await queue.lease(1, 30):
                got.append(int(item.event.changed["n"]))
                assert await queue.complete(item)
            await asyncio.sleep(0)

    got: list[int] = []
    await asyncio.gather(feed(a, 0), feed(b, 1000), consume(a, got))
    while batch := await b.lease(1, 30):
        got.append(int(batch[0].event.changed["n"]))
        await b.complete(batch[0])
    assert sorted(got) == [*range(40), *range(1000, 1040)]
    # each replica's own events keep their order
    assert [n for n in got if n < 1000] == list(range(40))
    assert [n for n in got if n >= 1000] == list(range(1000, 1040))
    assert await a.depth() == 0


async def test_one_event_id_from_two_replicas_is_queued_once(replicas: ReplicaFactory) -> None:
    queues = await replicas(3)
    event = make_event(1)
    flags = await asyncio.gather(*(q.enqueue(event) for q in queues))
    assert sorted(flags) == [False, False, True]
    assert await queues[0].depth() == 1


async def test_a_dead_replicas_expired_lease_is_taken_over(replicas: ReplicaFactory) -> None:
    a, b = await replicas(2)
    await a.enqueue(make_event(1))
    await a.enqueue(make_event(2))
    [held] = await a.lease(5, 0.3)  # replica a "dies" holding it
    assert await b.lease(5, 30) == []  # the record is a's until the lease runs out
    await asyncio.sleep(0.45)
    [taken] = await b.lease(5, 30)
    assert (taken.seq, taken.attempts) == (held.seq, 1)
    assert not await a.complete(held)  # the stale lease settles nothing
    assert await b.complete(taken)
    [second] = await b.lease(5, 30)
    assert int(second.event.changed["n"]) == 2


async def test_reclaim_hands_a_dead_replicas_leases_to_the_others_at_once(replicas: ReplicaFactory) -> None:
    a, b = await replicas(2)
    await a.enqueue(make_event(1))
    [held] = await a.lease(1, 300)
    assert await b.reclaim(a.owner) == 1
    [taken] = await b.lease(1, 30)
    assert taken.seq == held.seq and not await a.complete(held)


async def test_an_enqueue_on_one_replica_wakes_the_others(replicas: ReplicaFactory) -> None:
    a, b = await replicas(2)
    await b.wait(0.01)
    waiter = asyncio.create_task(b.wait(5.0))
    await asyncio.sleep(0.05)
    start = time.monotonic()
    await a.enqueue(make_event(1))
    await asyncio.wait_for(waiter, 2.0)
    assert time.monotonic() - start < 1.0


async def test_dead_letters_hold_back_the_record_on_every_replica(replicas: ReplicaFactory) -> None:
    a, b = await replicas(2)
    await a.enqueue(make_event(1))
    await b.enqueue(make_event(2))
    [first] = await a.lease(1, 30)
    assert await a.dead_letter(first, "rejected")
    assert await b.lease(5, 30) == []
    assert await b.replay() == 1
    [again] = await a.lease(5, 30)
    assert again.seq == first.seq and again.attempts == 0


async def test_a_replica_whose_connections_are_cut_carries_on(replicas: ReplicaFactory) -> None:
    """A failover or a restart of the database cuts every connection: the pools replace them as they
    meet them (no call fails), the listener listens again, and the replica's wake-ups come back."""
    a, b = await replicas(2)
    schema = b.db.schema
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        cut = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name LIKE %s AND pid <> pg_backend_pid()",
            (f"dualwrite-% {schema}",),  # this test's replicas only
        ).fetchone()
    assert cut is not None and cut[0] >= 4, schema  # both pools and both listeners
    assert await b.enqueue(make_event(1))
    assert await a.depth() == 1
    await asyncio.sleep(1.0)  # the listeners' reconnect (0.5 s after the cut)
    await b.wait(0.01)
    waiter = asyncio.create_task(b.wait(10.0))
    await asyncio.sleep(0.05)
    start = time.monotonic()
    assert await a.enqueue(make_event(2))
    await asyncio.wait_for(waiter, 5.0)
    assert time.monotonic() - start < 2.0
