"""The engine: accepts events from the listeners, keeps them durable, applies them in per-record order.

Asynchronous events are acknowledged once durable and applied by the engine's worker loop; what
follows an apply (answer, compensation, retry, undo, dead letter) is decided in
``bridge.engine.outcome``. Synchronous events (a Dataverse synchronous step) also go
through the queue, so per-record order holds across modes, but the webhook answer waits for the
outcome until the sync budget is spent. A synchronous change whose originator gave up (budget spent,
disconnect, or a crash of the bridge) is never applied later, and if it was applied already, undone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from opentelemetry import trace

from bridge.core import rules
from bridge.core.deadline import deadline_scope
from bridge.core.events import ChangeEvent, SyncMode
from bridge.engine.activity import ActivityRecorder
from bridge.engine.apply import Applied, Applier, direction
from bridge.engine.outcome import Answer, Outcomes, Verdict, deadline_of
from bridge.engine.ownership import claim_turn, hand_back_delay, hand_back_note, held_elsewhere
from bridge.engine.ports import SinkResult
from bridge.engine.recovery import Recovery
from bridge.engine.syncgate import SyncGate
from bridge.metrics import Metrics
from bridge.queue.base import QueuedEvent, QueuePort, claiming, leasing, reclaiming
from bridge.settings import SyncSettings
from bridge.state.base import MapStatus, StatePort
from bridge.telemetry import (
    ATTR_COMPANY,
    ATTR_ENTITY,
    ATTR_EVENT_ID,
    ATTR_KEY,
    ATTR_MODE,
    ATTR_OPERATION,
    ATTR_OUTCOME,
    ATTR_SOURCE,
    NO_SPAN,
    SPAN_APPLY,
    SPAN_RECEIVE,
    extract_context,
    inject_context,
    tracing_enabled,
)

log = logging.getLogger(__name__)
STOPPED_REASON = "map-stopped"  # the skipped-changes reason of a stopped map's notifications
tracer = trace.get_tracer("dualwrite.engine")


class Engine:
    def __init__(
        self,
        *,
        queue: QueuePort,
        state: StatePort,
        applier: Applier,
        recovery: Recovery,
        metrics: Metrics,
        settings: SyncSettings,
        apply_async: Callable[[ChangeEvent], Awaitable[Applied]] | None = None,
        activity: ActivityRecorder | None = None,
        owner: str | None = None,
    ) -> None:
        self.queue = queue
        # Who this replica is on its leases: a synchronous change it receives names it as its owner
        # (bridge.engine.ownership), so no other replica sharing the queue applies it.
        reclaim = reclaiming(queue)
        self.owner = owner or (reclaim.owner if reclaim is not None else "local")
        self.state = state
        self.applier = applier
        self.recovery = recovery
        # Where asynchronous changes are applied: the apply processes' pool when there is one
        # (bridge.engine.pool). Synchronous ones stay here, next to the webhook call that waits.
        self.apply_async = apply_async or applier.apply
        self.metrics = metrics
        self.settings = settings
        self.paused: set[str] = set()  # maps whose queued changes are held (not leased)
        self.stopped: set[str] = set()  # maps whose changes are acknowledged, counted, not queued
        self.activity = activity or ActivityRecorder(state)
        self._waiters: dict[str, asyncio.Future[Answer]] = {}
        self._abandoned: OrderedDict[str, None] = OrderedDict()  # sync ids whose originator gave up
        self._recent: OrderedDict[str, Answer] = OrderedDict()  # sync answers, for Dataverse's retry
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._claims: set[asyncio.Task[None]] = set()  # this replica's sync changes waiting their turn
        self._wake = asyncio.Event()
        self._stopping = False
        self._draining = False
        self.outcomes = Outcomes(
            queue=queue,
            state=state,
            recovery=recovery,
            metrics=metrics,
            settings=settings,
            answer=self._answer_originator,
            activity=self.activity,
            released=self._retry_later,
        )
        self.gate = SyncGate(
            queue=queue, state=state, applier=applier, recovery=recovery, metrics=metrics, settings=settings
        )

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        for name in self.applier.mappings.maps:
            self.hold(name, (await self.state.get_map_state(name)).status)
        self._task = asyncio.create_task(self._run(), name="dualwrite-worker")

    @property
    def stopping(self) -> bool:
        """Shutting down (``/readyz`` says so, so a load balancer stops sending)."""
        return self._stopping or self._draining

    def drain(self) -> None:
        """Shutdown begins: readiness turns false; the changes in hand go on until ``stop``."""
        self._draining = True

    async def stop(self, grace_s: float = 0.0) -> int:
        """Stop leasing; let the changes in flight finish for up to ``grace_s``, cancel the rest, and
        hand back every lease this replica still holds (with ``RECLAIM``), so the other replicas
        take them at once instead of when they run out. Returns how many were handed back."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._claims):
            task.cancel()
        if grace_s > 0 and self._inflight:
            await asyncio.wait(set(self._inflight), timeout=grace_s)
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(*self._claims, *self._inflight, return_exceptions=True)
        await self.activity.close()
        return await self._hand_back_leases()

    async def _hand_back_leases(self) -> int:
        reclaim = reclaiming(self.queue)
        if reclaim is None or reclaim.owner != self.owner:
            return 0
        try:
            handed = await reclaim.reclaim(self.owner)
        except Exception:  # the queue gone too: the leases run out instead
            log.exception("handing back the leases of replica %s", self.owner)
            return 0
        if handed:
            log.info("replica %s handed back %d lease(s) at shutdown", self.owner, handed)
        return handed

    def hold(self, name: str, status: MapStatus) -> None:
        """Carry a map's status into the engine: a running map's changes are applied; a paused or
        initializing one's are queued and held; a stopped (or never started) one's are acknowledged
        and counted, not queued, and what it had queued before is held."""
        (self.paused.discard if status.applies else self.paused.add)(name)
        (self.stopped.discard if status.queues else self.stopped.add)(name)
        if status.applies:
            self.kick()

    def kick(self) -> None:
        self._wake.set()

    # ------------------------------------------------------------------ intake (EventSink)
    async def submit(self, event: ChangeEvent) -> SinkResult:
        tracing = tracing_enabled()
        with (
            tracer.start_as_current_span(
                SPAN_RECEIVE, kind=trace.SpanKind.SERVER, attributes=_span_attributes(event)
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
            if event.entity in self.stopped:
                return self._drop_stopped(event)
            update: dict[str, object] = {"trace_context": inject_context()} if tracing else {}
            if event.mode is SyncMode.SYNC and event.entity in self.paused:
                # A paused map queues changes: acknowledge once durable and apply on resume, as an
                # asynchronous change (a rejection then is compensated).
                update["mode"] = SyncMode.ASYNC
            elif event.mode is SyncMode.SYNC:
                update["received_by"] = self.owner  # this replica holds the call: it applies it
            if update:
                event = event.model_copy(update=update)
            if not self._is_sync(event):
                fresh = await self.queue.enqueue(event)
                self._wake.set()
                return SinkResult(accepted=True, status=202, message="queued" if fresh else "duplicate")
            return await self._submit_sync(event)

    def _drop_stopped(self, event: ChangeEvent) -> SinkResult:
        """A stopped map: acknowledged as received (a synchronous save goes through unsynced) and
        counted among the map's skipped changes, nothing queued."""
        self.metrics.skipped(event.entity, direction(event.source), STOPPED_REASON)
        status = 200 if event.mode is SyncMode.SYNC else 202
        return SinkResult(accepted=True, status=status, message="map stopped: not queued")

    async def _submit_sync(self, event: ChangeEvent) -> SinkResult:
        if event.event_id in self._recent:
            return _as_sink(self._recent[event.event_id])
        future = self._waiters.get(event.event_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._waiters[event.event_id] = future
            leaser = leasing(self.queue) if self._has_room() else None  # None: a backend without it
            if leaser is not None:
                # Its record idle (the usual case): leased as it is queued and applied at once.
                fresh, leased = await leaser.enqueue_leased(event, self.settings.lease_s)
            else:  # queued; the worker leases it (woken below)
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
                    answer = Answer(ok=verdict.ok, status=verdict.status, message=verdict.message)
                    self._answer_originator(event, answer)
                else:
                    self._claim_when_due(event)
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

    def _retry_later(self, event: ChangeEvent, delay: float) -> None:
        """A change released for another attempt: a synchronous one of ours is claimed back after
        its backoff (another replica that leases it meanwhile hands it back out of its reach)."""
        if event.mode is SyncMode.SYNC and not self._originator_gone(event):
            self._claim_when_due(event, start_after=delay)

    def _claim_when_due(self, event: ChangeEvent, *, start_after: float = 0.0) -> None:
        """Take this replica's waiting change as soon as its record's turn comes (another replica
        may finish the earlier events), rather than when the worker loop meets it."""
        claimer = claiming(self.queue)
        if claimer is None or self._stopping:
            return  # a backend without it: the worker loop leases it in turn

        def waiting() -> bool:
            return not self._stopping and not self._originator_gone(event)

        async def claim() -> None:
            try:
                leased = await claim_turn(
                    claimer,
                    event,
                    lease_s=self.settings.lease_s,
                    deadline=self._deadline(event),
                    waiting=waiting,
                    now=lambda: datetime.now(UTC),
                    start_after=start_after,
                )
            except Exception:  # the queue failing: the worker loop still leases it in turn
                log.exception("claiming synchronous change %s", event.event_id)
                return
            if leased is not None:
                self._start(leased)

        task = asyncio.create_task(claim(), name=f"dualwrite-claim-{event.event_id}")
        self._claims.add(task)  # not a worker slot: it only waits, and starts the apply in one
        task.add_done_callback(self._claims.discard)

    def _give_up(self, event: ChangeEvent, future: asyncio.Future[Answer]) -> None:
        if not future.done():
            self._abandoned[event.event_id] = None
            while len(self._abandoned) > 10_000:
                self._abandoned.popitem(last=False)

    def _deadline(self, event: ChangeEvent) -> datetime:
        return deadline_of(event, self.settings.sync_budget_s)

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
        """Below the concurrency limit (a lease the worker loop is taking may add a few more: a soft
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
                SPAN_APPLY,
                context=extract_context(event.trace_context),
                attributes=_span_attributes(event),
            )
            if tracing_enabled()
            else NO_SPAN
        ) as span:
            sync = self._is_sync(event)
            now, deadline = datetime.now(UTC), self._deadline(event)
            if sync and held_elsewhere(event, self.owner, deadline, now):
                # Another replica holds its originator's call and applies it (bridge.engine.ownership).
                delay = hand_back_delay(deadline, now, owner_claims=claiming(self.queue) is not None)
                await self.queue.release(item, delay=delay, error=hand_back_note(event))
                return
            if sync and self._originator_gone(event):
                await self.outcomes.abandoned(item)
                span.set_attribute(ATTR_OUTCOME, Verdict.ABANDONED.value)
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
                        verdict = await self._apply_and_settle(item)
            except TimeoutError:
                verdict = Verdict.RETRY
                await self.outcomes.retry(item, f"not finished within {budget:.1f}s", None)
            span.set_attribute(ATTR_OUTCOME, verdict.value)

    async def _apply_and_settle(self, item: QueuedEvent) -> Verdict:
        """Apply the change (synchronous ones here, next to the waiting webhook) and carry out what
        follows; the verdict names how it ended."""
        event = item.event
        sync = self._is_sync(event)
        try:
            applied = await (self.applier.apply if sync else self.apply_async)(event)
        except Exception as exc:  # every failure is decided there; a bug must not lose the change
            return await self.outcomes.after_failure(item, exc)
        return await self.outcomes.after_write(
            item, applied, originator_gone=sync and self._originator_gone(event)
        )

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

    def _answer_originator(self, event: ChangeEvent, answer: Answer) -> None:
        """Tell the webhook call waiting for a synchronous change how it went (and remember it, for
        Dataverse's retry of the same call)."""
        if event.mode is not SyncMode.SYNC:
            return
        self._recent[event.event_id] = answer
        while len(self._recent) > 10_000:
            self._recent.popitem(last=False)
        future = self._waiters.pop(event.event_id, None)
        if future is not None and not future.done():
            future.set_result(answer)


def _as_sink(answer: Answer) -> SinkResult:
    return SinkResult(accepted=answer.ok, status=answer.status, message=answer.message)


def _span_attributes(event: ChangeEvent) -> dict[str, str]:
    return {
        ATTR_ENTITY: event.entity,
        ATTR_COMPANY: event.company,
        ATTR_KEY: event.key,
        ATTR_OPERATION: event.operation.value,
        ATTR_SOURCE: event.source.value,
        ATTR_MODE: event.mode.value,
        ATTR_EVENT_ID: event.event_id,
    }
