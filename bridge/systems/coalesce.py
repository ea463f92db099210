"""Coalesce concurrent single writes to one system into one ``$batch`` of independent requests.

The worker applies many records in parallel; each write is one small HTTP request, and the per-request
cost (building, TLS, the service's own per-request work) dominates. Writes issued in the same event
loop tick are sent together as one ``$batch`` with ``Prefer: odata.continue-on-error``: every request
still succeeds or fails on its own and its caller gets exactly its own answer, so nothing above this
module knows. A lone write goes out as a plain request. Writes made under a deadline (a synchronous
change) are never held back: see ``HttpClient.request``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.core.errors import RejectedError, SyncError
from bridge.systems.batch import BatchOperation, build_independent, parse_batch_response

# (method, path, json body, headers) -> the single request's answer; raises the error hierarchy.
SendOne = Callable[[str, str, Any, Mapping[str, str]], Awaitable[Any]]
# (content type, body) -> the $batch answer: (status, headers, text).
SendBatch = Callable[[str, bytes], Awaitable[tuple[int, Mapping[str, str], str]]]
# (status, headers, parsed body, text) -> the error for a failed part.
Classify = Callable[[int, Mapping[str, str], Any, str], SyncError]
# (status, headers, parsed body, text) -> what the single request would have returned.
MakeResponse = Callable[[int, Mapping[str, str], Any, str], Any]


@dataclass(slots=True)
class _Pending:
    op: BatchOperation
    future: asyncio.Future[Any]


class WriteCoalescer:
    def __init__(
        self,
        *,
        base_url: str,
        send_one: SendOne,
        send_batch: SendBatch,
        classify: Classify,
        make_response: MakeResponse,
        max_operations: int = 100,
        window_s: float = 0.002,
    ) -> None:
        self.base_url = base_url
        self._send_one = send_one
        self._send_batch = send_batch
        self._classify = classify
        self._make_response = make_response
        self.max_operations = max_operations
        self.window_s = window_s
        self._pending: list[_Pending] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches_sent = 0  # observability (and tests)

    async def write(self, method: str, path: str, body: Any, headers: Mapping[str, str]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(_Pending(BatchOperation(method, path, body, dict(headers)), future))
        if len(self._pending) >= self.max_operations:
            self._flush()
        elif not self._scheduled:
            # Collect the writes issued within a short window (asynchronous changes only), then send
            # them together.
            self._scheduled = True
            loop.call_later(self.window_s, self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[_Pending]) -> None:
        if len(batch) == 1:
            item = batch[0]
            await _settle(
                item.future, self._send_one(item.op.method, item.op.path, item.op.body, item.op.headers)
            )
            return
        try:
            content_type, body = build_independent(self.base_url, [p.op for p in batch])
            self.batches_sent += 1
            status, headers, text = await self._send_batch(content_type, body)
            kind = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
            results = parse_batch_response(kind, text)
        except Exception as exc:  # the whole batch failed: every caller gets that error
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        if len(results) != len(batch):
            error = RejectedError(
                f"$batch answered {len(results)} of {len(batch)} requests (status {status})"
            )
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(error)
            return
        for item, result in zip(batch, results, strict=True):
            if item.future.done():
                continue
            if 200 <= result.status < 300:
                item.future.set_result(
                    self._make_response(result.status, result.headers, result.body, result.text)
                )
            else:
                item.future.set_exception(
                    self._classify(result.status, result.headers, result.body, result.text)
                )


async def _settle(future: asyncio.Future[Any], call: Awaitable[Any]) -> None:
    try:
        result = await call
    except Exception as exc:
        if not future.done():
            future.set_exception(exc)
    else:
        if not future.done():
            future.set_result(result)
