"""Calls made in one turn of the event loop, sent to the database as one operation.

Many webhook calls (or finished changes) arrive in one turn of a busy loop, and each would become
its own operation in the database thread: its own savepoint, its own statements for the per-map
counters, its own hand-off. ``TurnBatcher`` collects the items submitted during one turn and hands
them to ``run_many`` once, on the next turn; each caller gets its own slice of the results. An idle
loop adds no wait (the next turn comes at once), and a failure of the joint operation (it is one
transaction: all or nothing) is every caller's failure, as if each had run alone and failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class TurnBatcher(Generic[In, Out]):
    def __init__(self, run_many: Callable[[list[In]], Awaitable[list[Out]]]) -> None:
        self._run_many = run_many
        self._items: list[In] = []
        self._callers: list[tuple[int, asyncio.Future[list[Out]]]] = []  # (item count, future)
        self._flushes: set[asyncio.Task[None]] = set()
        self.batches = 0  # observability (and tests)

    async def submit(self, items: Sequence[In]) -> list[Out]:
        """``run_many(items)``'s results for ``items``, run together with this turn's other calls."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Out]] = loop.create_future()
        if not self._callers:
            loop.call_soon(self._flush)
        self._items.extend(items)
        self._callers.append((len(items), future))
        return await future

    async def wait_idle(self) -> None:
        """Until everything submitted so far has been run and answered (before closing the database)."""
        while self._callers or self._flushes:
            if self._flushes:
                await asyncio.gather(*self._flushes, return_exceptions=True)
            else:
                await asyncio.sleep(0)  # the flush is scheduled for the next turn

    def _flush(self) -> None:
        items, callers = self._items, self._callers
        self._items, self._callers = [], []
        self.batches += 1
        task = asyncio.ensure_future(self._run(items, callers))
        self._flushes.add(task)  # a strong reference until it is done
        task.add_done_callback(self._flushes.discard)

    async def _run(self, items: list[In], callers: list[tuple[int, asyncio.Future[list[Out]]]]) -> None:
        try:
            results = await self._run_many(items)
        except Exception as exc:
            for _, future in callers:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:  # cancelled (the loop is closing): so are the callers
            for _, future in callers:
                future.cancel()
            raise
        start = 0
        for count, future in callers:
            if not future.done():  # a caller that was cancelled: its items were run all the same
                future.set_result(results[start : start + count])
            start += count
