"""``TurnBatcher``: the calls of one event-loop turn run as one operation, each caller gets its own
results; the queue's enqueues and completions go through it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.queue.sqlite import SqliteQueue
from bridge.storage.batcher import TurnBatcher
from tests.contract.test_queue_contract import make_event


class Recorder:
    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[list[int]] = []
        self.fail = fail

    async def run_many(self, items: list[int]) -> list[int]:
        self.calls.append(list(items))
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        return [item * 10 for item in items]


async def test_one_turns_calls_run_once_and_each_caller_gets_its_slice() -> None:
    recorder = Recorder()
    batcher: TurnBatcher[int, int] = TurnBatcher(recorder.run_many)
    results = await asyncio.gather(batcher.submit([1, 2]), batcher.submit([3]), batcher.submit([4, 5, 6]))
    assert list(results) == [[10, 20], [30], [40, 50, 60]]
    assert recorder.calls == [[1, 2, 3, 4, 5, 6]]
    assert batcher.batches == 1


async def test_calls_of_later_turns_go_separately_and_an_idle_loop_adds_no_wait() -> None:
    recorder = Recorder()
    batcher: TurnBatcher[int, int] = TurnBatcher(recorder.run_many)
    assert await batcher.submit([1]) == [10]
    assert await batcher.submit([2]) == [20]
    assert recorder.calls == [[1], [2]]


async def test_a_failure_of_the_joint_operation_is_every_callers() -> None:
    recorder = Recorder(fail=RuntimeError("disk I/O error"))
    batcher: TurnBatcher[int, int] = TurnBatcher(recorder.run_many)
    results = await asyncio.gather(batcher.submit([1]), batcher.submit([2]), return_exceptions=True)
    assert [str(r) for r in results] == ["disk I/O error", "disk I/O error"]
    assert all(isinstance(r, RuntimeError) for r in results)
    assert recorder.calls == [[1, 2]]


async def test_a_cancelled_caller_leaves_the_others_their_results() -> None:
    recorder = Recorder()
    batcher: TurnBatcher[int, int] = TurnBatcher(recorder.run_many)
    first = asyncio.ensure_future(batcher.submit([1]))
    second = asyncio.ensure_future(batcher.submit([2]))
    await asyncio.sleep(0)  # both submitted: the flush is scheduled
    first.cancel()
    assert await second == [20]
    assert recorder.calls == [[1, 2]]  # the cancelled caller's item ran all the same
    assert first.cancelled()


async def test_wait_idle_returns_once_everything_submitted_was_answered() -> None:
    recorder = Recorder()
    batcher: TurnBatcher[int, int] = TurnBatcher(recorder.run_many)
    pending = asyncio.ensure_future(batcher.submit([7]))
    await asyncio.sleep(0)
    await batcher.wait_idle()
    assert pending.done() and pending.result() == [70]


# ---- the queue -----------------------------------------------------------------------------------


class Statements:
    """The statements the queue's connection runs, from ``start()`` to ``stop()``."""

    def __init__(self, queue: SqliteQueue) -> None:
        self.queue = queue
        self.seen: list[str] = []

    async def start(self) -> None:
        await self.queue.db.run(lambda c: c.set_trace_callback(self.seen.append))

    async def stop(self) -> None:
        await self.queue.db.run(lambda c: c.set_trace_callback(None))

    def transactions(self) -> int:
        """Transactions and savepoints the operations ended: one per operation (plus a group's own)."""
        return sum(1 for s in self.seen if s in ("COMMIT", "RELEASE tx"))


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[SqliteQueue]:
    q = SqliteQueue(tmp_path / "q.db")
    await q.open()
    yield q
    await q.close()


async def test_concurrent_enqueues_are_one_database_operation(queue: SqliteQueue) -> None:
    events = [make_event(n, key=f"R{n}") for n in range(20)]
    statements = Statements(queue)
    await statements.start()
    added = await asyncio.gather(*(queue.enqueue(e) for e in events), queue.enqueue(events[3]))
    await statements.stop()
    assert added == [True] * 20 + [False]  # the repeat in the same turn is still a repeat
    assert statements.transactions() <= 2  # one operation (in a group of its own or not), not 21
    assert sum(1 for s in statements.seen if s.startswith("INSERT INTO depth")) == 1
    assert await queue.depth() == 20


async def test_concurrent_completions_are_one_operation_and_a_stale_lease_is_still_refused(
    queue: SqliteQueue,
) -> None:
    for n in range(10):
        await queue.enqueue(make_event(n, key=f"R{n}"))
    items = await queue.lease(10, 30.0)
    stale = dataclasses.replace(items[0], lease_token="someone-else")
    statements = Statements(queue)
    await statements.start()
    done = await asyncio.gather(*(queue.complete(i) for i in [stale, *items[1:]]))
    await statements.stop()
    assert done == [False] + [True] * 9
    assert statements.transactions() <= 2  # one operation, not 10
    assert await queue.depth() == 1  # only the stale one's event is left


async def test_close_runs_what_was_submitted_in_its_turn(tmp_path: Path) -> None:
    q = SqliteQueue(tmp_path / "c.db")
    await q.open()
    pending = asyncio.ensure_future(q.enqueue(make_event(1, key="R1")))
    await asyncio.sleep(0)  # submitted; its flush is on the next turn
    await q.close()
    assert pending.result() is True
    reopened = SqliteQueue(tmp_path / "c.db")
    await reopened.open()
    try:
        assert await reopened.depth() == 1
    finally:
        await reopened.close()
