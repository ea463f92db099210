"""The engine: accepts events from the listeners, keeps them durable, applies them in per-record order.

Asynchronous events are acknowledged once durable and applied by the worker loop; a rejection is
compensated at the originator and recorded. Synchronous events (a Dataverse synchronous step) also go
through the queue, so per-record order holds across modes, but the webhook answer waits for the
outcome until the sync budget is spent. A synchronous change whose originator gave up (budget spent,
disconnect, or a crash of the bridge) is never applied later, and if it was applied already, undone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from opentelemetry import trace

from bridge.core import rules
from bridge.core.deadline import deadline_scope
from bridge.core.errors import RejectedError, RetryableError, SyncError
from bridge.core.events import ChangeEvent, Operation, SyncMode
from bridge.engine.apply import Applied, Applier, Result, direction
from bridge.engine.ports import SinkResult
from bridge.engine.recovery import Undo
from bridge.engine.syncgate import SyncGate
from bridge.metrics import Metrics
from bridge.queue.base import QueuedEvent, QueuePort
from bridge.settings import SyncSettings
from bridge.state.base import Failure, MapStatus, StatePort
from bridge.telemetry import NO_SPAN, extract_context, inject_context, tracing_enabled

log = logging.getLogger(__name__)
tracer = trace.get_tracer("dualwrite.engine")


UNCONFIRMED = (
    "applied and recorded, but the bridge stopped before it knew that the originator had the answer:"
    " if the save failed there, resync the record from its originator"
)


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status: int
    message: str


class Engine:
    def __init__(
        self,
        *,
        queue: QueuePort,
        state: StatePort,
        applier: Applier,
        metrics: Metrics,
        settings: SyncSettings,
        apply_async: Callable[[ChangeEvent], Awaitable[Applied]] | None = None,
    ) -> None:
        self.queue = queue
        self.state = state
        self.applier = applier
        # Where asynchronous changes are applied: the apply processes' pool when there is one
        # (bridge.engine.pool). Synchronous ones stay here, next to the webhook call that waits.
        self.apply_async = apply_async or applier.apply
        self.metrics = metrics
        self.settings = settings
        self.paused: set[str] = set()
        self._waiters: dict[str, asyncio.Future[Outcome]] = {}
        self._abandoned: OrderedDict[str, None] = OrderedDict()  # sync ids whose originator gave up
        self._recent: OrderedDict[str, Outcome] = OrderedDict()  # sync outcomes, for Dataverse's retry
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self._rng = random.Random()
        self.gate = SyncGate(queue=queue, state=state, applier=applier, metrics=metrics, settings=settings)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        for name in self.applier.mappings.maps:
            if (await self.state.get_map_state(name)).status is not MapStatus.RUNNING:
                self.paused.add(name)
        self._task = asyncio.create_task(self._run(), name="dualwrite-worker")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)

    def kick(self) -> None:
        self._wake.set()

    # ------------------------------------------------------------------ intake (EventSink)
    async def submit(self, event: ChangeEvent) -> SinkResult:
        tracing = tracing_enabled()
        with (
            tracer.start_as_current_span(
                "dualwrite.receive", kind=trace.SpanKind.SERVER, attributes=_span_attributes(event)
            )
            if tracing
            else NO_SPAN
        ):
            self.metrics.received(event.entity, direction(event.source))
            if rules.is_echo(event, self.applier.own_ids):
                # Our own write coming back. Answer at once: a synchronous echo arrives while the worker
                # holds the record's lease for that very write, so queueing it would wait on ourselves.
                self.metrics.skipped(event.entity, direction(event.source), "echo")
                return SinkResult(accepted=True, status=200, message="echo")
            update: dict[str, object] = {"trace_context": inject_context()} if tracing else {}
            if event.mode is SyncMode.SYNC and event.entity in self.paused:
                # A paused map queues changes: acknowledge once durable and apply on resume, as an
                # asynchronous change (a rejection then is compensated).
                update["mode"] = SyncMode.ASYNC
            if update:
                event = event.model_copy(update=update)
            if not self._is_sync(event):
                fresh = await self.queue.enqueue(event)
                self._wake.set()
                return SinkResult(accepted=True, status=202, message="queued" if fresh else "duplicate")
            return await self._submit_sync(event)

    async def _submit_sync(self, event: ChangeEvent) -> SinkResult:
        if event.event_id in self._recent:
            return _as_sink(self._recent[event.event_id])
        future = self._waiters.get(event.event_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._waiters[event.event_id] = future
            if self._has_room():
                # Its record idle (the usual case): leased as it is queued and applied at once.
                fresh, leased = await self.queue.enqueue_leased(event, self.settings.lease_s)
            else:
                fresh, leased = await self.queue.enqueue(event), None
            if not fresh:
                # Received before, by an earlier run of the bridge: that call's originator is gone, so
                # the change is dropped (or undone) when its turn comes. Fail this one too.
                self._waiters.pop(event.event_id, None)
                return SinkResult(
                    accepted=False, status=503, message="received before and not applied; save again"
                )
            if leased is not None and not self._stopping:
                self._start(leased)
            else:
                self._wake.set()  # a lease taken while stopping ends and is handed out again
            if leased is None:
                # Behind its record's earlier events: decide now if one writes into this save (syncgate).
                try:
                    verdict = await self.gate.decide_ahead(event, self._deadline(event))
                except asyncio.CancelledError:
                    self._give_up(event, future)  # the originator disconnected
                    raise
                if verdict is not None:
                    self._resolve(event, Outcome(verdict.ok, verdict.status, verdict.message))
        remaining = (self._deadline(event) - datetime.now(UTC)).total_seconds()
        try:
            done, _ = await asyncio.wait({future}, timeout=max(remaining, 0.0))
        except asyncio.CancelledError:
            self._give_up(event, future)  # the originator disconnected
            raise
        if not done:
            self._give_up(event, future)
            return SinkResult(
                accepted=False, status=504, message=f"sync budget of {self.settings.sync_budget_s:g}s spent"
            )
        return _as_sink(future.result())

    def _give_up(self, event: ChangeEvent, future: asyncio.Future[Outcome]) -> None:
        if not future.done():
            self._abandoned[event.event_id] = None
            while len(self._abandoned) > 10_000:
                self._abandoned.popitem(last=False)

    def _deadline(self, event: ChangeEvent) -> datetime:
        return event.received_at + timedelta(seconds=self.settings.sync_budget_s)

    # ------------------------------------------------------------------ worker loop
    async def _run(self) -> None:
        limit = self.settings.concurrency
        while not self._stopping:
            free = limit - len(self._inflight)
            items: list[QueuedEvent] = []
            if free > 0:
                try:
                    items = await self.queue.lease(
                        free, self.settings.lease_s, exclude_entities=frozenset(self.paused)
                    )
                except Exception:  # the queue itself failing: log, back off, keep serving
                    log.exception("lease failed")
                    await asyncio.sleep(1.0)
                    continue
            for item in items:
                self._start(item)
            if items and len(items) == free:
                continue
            self._wake.clear()
            waiters: set[asyncio.Future[object]] = {asyncio.ensure_future(self._wake.wait())}
            waiters.add(asyncio.ensure_future(self.queue.wait(0.5)))
            _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for p in pending:
                p.cancel()

    def _start(self, item: QueuedEvent) -> None:
        task = asyncio.create_task(self._handle(item))
        self._inflight.add(task)
        task.add_done_callback(self._done)

    def _has_room(self) -> bool:
        """Below the concurrency limit (a lease the worker is taking may add a few more: a soft
        bound, by at most the synchronous changes received meanwhile)."""
        return not self._stopping and len(self._inflight) < self.settings.concurrency

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("worker task failed", exc_info=task.exception())

    async def _handle(self, item: QueuedEvent) -> None:
        event = item.event
        with (
            tracer.start_as_current_span(
                "dualwrite.apply",
                context=extract_context(event.trace_context),
                attributes=_span_attributes(event),
            )
            if tracing_enabled()
            else NO_SPAN
        ) as span:
            sync = self._is_sync(event)
            if sync and self._originator_gone(event):
                await self._drop_abandoned(item)
                span.set_attribute("dualwrite.outcome", "abandoned")
                return
            # Finish well within the lease (else the event would be handed out twice) and, for a
            # synchronous change, within its deadline: the clients' own retries stop there too.
            budget = self.settings.lease_s * 0.8
            if sync:
                remaining = (self._deadline(event) - datetime.now(UTC)).total_seconds()
                budget = max(min(budget, remaining), 0.05)
            try:
                with deadline_scope(budget, urgent=sync):
                    async with asyncio.timeout(budget + 0.5):
                        await self._process(item, span)
            except TimeoutError:
                span.set_attribute("dualwrite.outcome", "retry")
                await self._retry(item, f"not finished within {budget:.1f}s", None)

    async def _process(self, item: QueuedEvent, span: trace.Span) -> None:
        event = item.event
        try:
            applied = await (self.applier.apply if self._is_sync(event) else self.apply_async)(event)
        except RejectedError as exc:
            span.set_attribute("dualwrite.outcome", "rejected")
            await self._rejected(item, exc)
        except RetryableError as exc:
            span.set_attribute("dualwrite.outcome", "retry")
            await self._retry(item, exc.message, exc.retry_after)
        except SyncError as exc:
            span.set_attribute("dualwrite.outcome", "rejected")
            await self._rejected(item, RejectedError(exc.message, system=exc.system, status=exc.status))
        except Exception as exc:  # a bug must not lose the change: keep it, retry, dead-letter at the end
            log.exception("unexpected error applying %s", event.event_id)
            await self._retry(item, f"{type(exc).__name__}: {exc}", None)
        else:
            span.set_attribute("dualwrite.outcome", applied.result.value)
            await self._succeeded(item, applied)

    @staticmethod
    def _is_sync(event: ChangeEvent) -> bool:
        """A Dataverse synchronous step waits for this change (one accepted while its map was paused
        was queued as asynchronous)."""
        return event.mode is SyncMode.SYNC

    def _originator_gone(self, event: ChangeEvent) -> bool:
        """Nobody waits for this synchronous change any more: its caller gave up (budget spent,
        disconnected), or it was received by an earlier run of the bridge (the call died with it). Its
        originator's transaction rolled back, so it must not be applied, or must be undone."""
        return event.event_id in self._abandoned or event.event_id not in self._waiters

    async def _succeeded(self, item: QueuedEvent, applied: Applied) -> None:
        event = item.event
        dir_ = direction(event.source)
        if self._is_sync(event) and self._originator_gone(event) and applied.undo is not None:
            # The originator gave up while we wrote: its transaction rolled back, so take ours back.
            await self._undo(
                item, applied.undo, "the originator gave up after the write (timeout or disconnect)"
            )
            return
        if applied.result is Result.SKIPPED:
            self.metrics.skipped(event.entity, dir_, applied.reason)
        elif applied.result is Result.CONFLICT_LOST:
            self.metrics.skipped(event.entity, dir_, "conflict-lost")
            await self._record(item, "conflict", None, applied.reason, compensated=True)
        else:
            latency = (datetime.now(UTC) - event.received_at).total_seconds()
            self.metrics.applied(event.entity, dir_, latency)
        # Decided and recorded (a synchronous write's undo entry went with its ledger entry): the
        # waiting originator gets its answer first, and taking the event off the queue follows. If
        # the bridge stops in between, the change is found recorded after the restart
        # (_drop_abandoned); the record's next change waits for the complete as any other.
        self._resolve(event, Outcome(True, 200, applied.reason or applied.result.value))
        await self.queue.complete(item)

    async def _rejected(self, item: QueuedEvent, exc: RejectedError) -> None:
        event = item.event
        self.metrics.failed(event.entity, direction(event.source), "rejected", exc.message)
        if self._is_sync(event):
            # The webhook answer fails the originator's transaction: nothing to compensate.
            await self._record(item, "conflict" if exc.code == "conflict" else "rejected", None, exc.message)
            await self.applier.recovery.settle(event)
            if exc.code == "conflict":
                # The other side's newer values win: bring the originator in line once its transaction
                # has rolled back (queued behind this event, so per-record order holds).
                await self.queue.enqueue(_follow_up_from_winner(event))
            await self.queue.complete(item)
            self._resolve(
                event,
                Outcome(False, _status_for(exc), f"{_target_name(event)} rejected the change: {exc.message}"),
            )
            return
        try:
            ledger = await self.state.get_ledger(event.record_key)
            source_message = await self.applier.recovery.compensate(event, ledger)
            compensated = True
        except RetryableError as comp_exc:
            await self._retry(item, f"compensation pending: {comp_exc.message}", comp_exc.retry_after)
            return
        except SyncError as comp_exc:
            source_message, compensated = f"compensation failed: {comp_exc.message}", False
        await self._record(item, "rejected", source_message, exc.message, compensated=compensated)
        await self.queue.complete(item)
        self._resolve(event, Outcome(False, _status_for(exc), exc.message))

    async def _retry(self, item: QueuedEvent, message: str, retry_after: float | None) -> None:
        event = item.event
        attempts = item.attempts + 1
        sync = self._is_sync(event)
        delay = self._backoff(attempts, retry_after)
        if sync and datetime.now(UTC) + timedelta(seconds=delay) > self._deadline(event):
            await self._record(item, "retry-exhausted", None, message)
            self.metrics.failed(event.entity, direction(event.source), "retry-exhausted", message)
            # An attempt that timed out may still have written: take it back.
            await self.applier.recovery.revert_if_applied(event)
            await self.queue.complete(item)
            self._resolve(event, Outcome(False, 503, f"{_target_name(event)} unavailable: {message}"))
            return
        if not sync and attempts >= self.settings.max_attempts:
            self.metrics.failed(event.entity, direction(event.source), "retry-exhausted", message)
            await self._record(item, "retry-exhausted", None, message)
            await self.queue.dead_letter(item, message)
            return
        await self.queue.release(item, delay=delay, error=message)

    async def _drop_abandoned(self, item: QueuedEvent) -> None:
        event = item.event
        gave_up = "the originator gave up before the change was applied"
        if not await self.applier.recovery.revert_if_applied(event) and await self._recorded(event):
            # Applied, recorded and answered (or about to be) when the bridge stopped or failed,
            # before the event left the queue: nothing to revert, but nobody knows for sure that the
            # answer reached the originator, so say so (and answer its retry with success).
            message, outcome = UNCONFIRMED, Outcome(True, 200, "applied before")
        else:
            message, outcome = gave_up, Outcome(False, 504, gave_up)
        await self._record(item, "timeout", None, message)
        await self.queue.complete(item)
        self._resolve(event, outcome)

    async def _recorded(self, event: ChangeEvent) -> bool:
        """The ledger's last change of the record is this one: it was applied (and its undo entry
        dropped with that ledger entry)."""
        ledger = await self.state.get_ledger(event.record_key)
        return ledger is not None and ledger.last_event_id == event.event_id

    async def _undo(self, item: QueuedEvent, undo: Undo, why: str) -> None:
        try:
            await self.applier.recovery.guard(item.event, undo)
            await self.applier.recovery.undo(undo)
            note = "reverted on the target"
        except SyncError as exc:
            note = f"revert failed: {exc.message}"
        await self._record(item, "timeout", note, why, compensated=note.startswith("reverted"))
        await self.applier.recovery.settle(item.event)
        await self.queue.complete(item)
        self._resolve(item.event, Outcome(False, 504, f"{why}; {note}"))

    def _backoff(self, attempts: int, retry_after: float | None) -> float:
        base = min(self.settings.backoff_max_s, self.settings.backoff_initial_s * 2 ** (attempts - 1))
        jittered = self._rng.uniform(base / 2, base)
        return max(jittered, retry_after or 0.0)

    def _resolve(self, event: ChangeEvent, outcome: Outcome) -> None:
        if event.mode is not SyncMode.SYNC:
            return
        self._recent[event.event_id] = outcome
        while len(self._recent) > 10_000:
            self._recent.popitem(last=False)
        future = self._waiters.pop(event.event_id, None)
        if future is not None and not future.done():
            future.set_result(outcome)

    async def _record(
        self,
        item: QueuedEvent,
        kind: str,
        source_message: str | None,
        target_message: str | None,
        *,
        compensated: bool = False,
    ) -> None:
        await self.state.add_failure(
            failure_record(
                item,
                kind,
                source_message,
                target_message,
                attempts=item.attempts + 1,
                compensated=compensated,
            )
        )


def failure_record(
    item: QueuedEvent,
    kind: str,
    source_message: str | None,
    target_message: str | None,
    *,
    attempts: int,
    compensated: bool = False,
) -> Failure:
    """A failure as admins see it, keeping the change itself so it can be retried."""
    event = item.event
    return Failure(
        entity=event.entity,
        company=event.company,
        key=event.key,
        direction=direction(event.source),
        operation=event.operation.value,
        event_id=event.event_id,
        source_message=source_message,
        target_message=target_message,
        kind=kind,
        correlation_id=event.correlation_id,
        attempts=attempts,
        occurred_at=datetime.now(UTC),
        compensated=compensated,
        details={"event": event.model_dump(mode="json")},
    )


def _follow_up_from_winner(event: ChangeEvent) -> ChangeEvent:
    """An update from the winning side, read fresh when applied, for a refused synchronous change."""
    return ChangeEvent(
        event_id=f"conflict:{event.event_id}",
        source=event.source.other,
        entity=event.entity,
        company=event.company,
        key=event.key,
        operation=Operation.UPDATE,
        needs_fetch=True,
        correlation_id=event.correlation_id,
        trace_context=event.trace_context,
    )


def _as_sink(outcome: Outcome) -> SinkResult:
    return SinkResult(accepted=outcome.ok, status=outcome.status, message=outcome.message)


def _status_for(exc: SyncError) -> int:
    return 409 if exc.code == "conflict" else 400 if (exc.status or 400) < 500 else 502


def _target_name(event: ChangeEvent) -> str:
    return "Finance and Operations" if event.source.value == "cds" else "Dataverse"


def _span_attributes(event: ChangeEvent) -> dict[str, str]:
    return {
        "dualwrite.entity": event.entity,
        "dualwrite.company": event.company,
        "dualwrite.key": event.key,
        "dualwrite.operation": event.operation.value,
        "dualwrite.source": event.source.value,
        "dualwrite.mode": event.mode.value,
        "dualwrite.event_id": event.event_id,
    }
