"""``TurnBatcher``: the calls of one event-loop turn run as one operation, each caller gets its own
results (the queue's use of it: tests/queue/test_sqlite_queue.py)."""

from __future__ import annotations

import asyncio

from bridge.storage.batcher import TurnBatcher


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
