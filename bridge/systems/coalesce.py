"""Coalesce concurrent single writes to one system into one ``$batch`` of independent requests.

The worker applies many records in parallel; each write is one small HTTP request, and the per-request
cost (building, TLS, the service's own per-request work) dominates. Writes are sent together as one
``$batch`` with ``Prefer: odata.continue-on-error``: every request still succeeds or fails on its own
and its caller gets exactly its own answer, so nothing above this module knows.

Self-clocking, no timer: while fewer than ``max_in_flight`` requests are out, what was issued in the
current event-loop turn goes at once (a lone write as a plain request); otherwise writes wait for the
next request to come back and then all go together. An idle link adds no delay; a busy one sends
bigger batches exactly when they pay. Writes made under a deadline (a synchronous change) are never
held back: see ``HttpClient.request``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.core.errors import RejectedError, RetryableError
from bridge.systems.batch import BatchOperation, BatchResult, build_independent, parse_batch_response
from bridge.systems.errors import classify
from bridge.systems.transport import Response

log = logging.getLogger(__name__)

# (method, path, json body, headers) -> the single request's answer; raises the error hierarchy.
SendOne = Callable[[str, str, Any, Mapping[str, str]], Awaitable[Response]]
# (content type, body) -> the $batch answer; raises the error hierarchy.
SendBatch = Callable[[str, bytes], Awaitable[Response]]


@dataclass(slots=True)
class _Pending:
    op: BatchOperation
    future: asyncio.Future[Response]


class WriteCoalescer:
    """For one system (``system`` names it in errors): ``send_one`` and ``send_batch`` are its HTTP
    client's (``HttpClient.send_one``/``send_batch``), given by the composition."""

    def __init__(
        self,
        *,
        system: str,
        base_url: str,
        send_one: SendOne,
        send_batch: SendBatch,
        max_operations: int = 100,
        max_in_flight: int = 2,
    ) -> None:
        self.system = system
        self.base_url = base_url
        self._send_one = send_one
        self._send_batch = send_batch
        self.max_operations = max_operations
        self.max_in_flight = max_in_flight
        self._pending: list[_Pending] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches_sent = 0  # observability (and tests)
        self.operations_batched = 0
        self.fallbacks = 0  # batches that failed as a whole, then sent one by one

    async def write(self, method: str, path: str, body: Any, headers: Mapping[str, str]) -> Response:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Response] = loop.create_future()
        self._pending.append(_Pending(BatchOperation(method, path, body, dict(headers)), future))
        if len(self._tasks) < self.max_in_flight and not self._scheduled:
            # Let the writes issued in this loop turn join, then send.
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        while self._pending and len(self._tasks) < self.max_in_flight:
            batch = self._pending[: self.max_operations]
            del self._pending[: self.max_operations]
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._pending:
            self._flush()  # what waited meanwhile goes now, together

    async def _send(self, batch: list[_Pending]) -> None:
        if len(batch) == 1:
            await self._alone(batch[0])
            return
        try:
            content_type, body = build_independent(self.base_url, [p.op for p in batch])
            self.batches_sent += 1
            self.operations_batched += len(batch)
            answer = await self._send_batch(content_type, body)
            results = parse_batch_response(answer.headers.get("Content-Type", ""), answer.text)
            if len(results) != len(batch):
                raise RejectedError(
                    f"$batch answered {len(results)} of {len(batch)} requests (status {answer.status})"
                )
        except RetryableError as exc:
            if exc.status is None or exc.status in WAIT_ALL:
                # Throttled, down or unreachable after the client's own retries: every write waits
                # (one by one would only add load where the service asked for less).
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                return
            await self._one_by_one(batch, exc)  # another server error: it may be one write's doing
            return
        except Exception as exc:  # refused as a whole, or an unreadable answer
            await self._one_by_one(batch, exc)
            return
        for item, result in zip(batch, results, strict=True):
            if item.future.done():
                continue
            if 200 <= result.status < 300:
                item.future.set_result(_response(result))
            else:
                item.future.set_exception(
                    classify(self.system, result.status, result.headers, result.body, result.text)
                )

    async def _one_by_one(self, batch: list[_Pending], why: Exception) -> None:
        """The batch failed as a whole, not as one write's own answer: send each write on its own so
        each change gets its own, real answer. Safe to resend: every write is conditional (If-Match,
        or a create the target refuses as a duplicate)."""
        log.warning("$batch of %d writes failed as a whole (%s); sending them one by one", len(batch), why)
        self.fallbacks += 1
        await asyncio.gather(*(self._alone(item) for item in batch))

    async def _alone(self, item: _Pending) -> None:
        """One write as a plain request; its caller gets that request's answer or error."""
        op = item.op
        await _settle(item.future, self._send_one(op.method, op.path, op.body, op.headers))


# Whole-batch answers that say "wait" (about the service, not about any one request).
WAIT_ALL = (429, 502, 503, 504)


def _response(result: BatchResult) -> Response:
    """What the single request would have returned."""
    return Response(result.status, result.headers, result.body, result.text)


async def _settle(future: asyncio.Future[Response], call: Awaitable[Response]) -> None:
    try:
        result = await call
    except Exception as exc:
        if not future.done():
            future.set_exception(exc)
    else:
        if not future.done():
            future.set_result(result)
