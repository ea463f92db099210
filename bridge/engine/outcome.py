"""What happens to a change after its apply, decided in one place.

    written, originator gone   -> undo the write; a "timeout" failure; answer 504
    applied                    -> counted; answer 200
    skipped                    -> counted with its reason; answer 200
    conflict lost              -> a "conflict" failure (compensated: the source was brought in line)
    rejected, synchronous      -> a "rejected" (or "conflict") failure, the undo journal settled, the
                                  originator answered (its transaction rolls back); a lost conflict
                                  queues a follow-up from the winner
    rejected, asynchronous     -> the originator is compensated: a "rejected" failure, or
                                  "compensation-failed" if that is refused too (retried if retryable)
    retryable                  -> released with a backoff; a synchronous change whose budget ends
                                  first: "retry-exhausted", reverted, answer 503; an asynchronous one
                                  out of attempts: "retry-exhausted", dead-lettered
    abandoned before its apply -> reverted if it wrote; a "timeout" failure; answer 504 (or 200 when
                                  it was applied and recorded before a restart)

Each failed attempt logs one line at WARNING (map, record, direction, attempt n of m, the other
system's answer or the network error, and the next attempt, or why there is none), and the map's
"retrying" figures (``Metrics.retrying``, shown on the card) follow the change until it settles.

Every change then leaves the queue (completed, dead-lettered, or released for its retry). The
decisions are pure functions below; ``Outcomes`` carries them out (queue, state, recovery, metrics)
and answers a waiting synchronous originator through the engine's callback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from tenacity import RetryCallState, Retrying, wait_exponential, wait_random_exponential

from bridge.core.deadline import own_deadline
from bridge.core.errors import RejectedError, RetryableError, SyncError
from bridge.core.events import ChangeEvent, Operation, SyncMode, System
from bridge.core.kinds import FailureKind
from bridge.engine.activity import ActivityRecorder
from bridge.engine.apply import Applied, Result, direction
from bridge.engine.docundo import DocUndo
from bridge.engine.journal import Undo
from bridge.engine.recovery import Recovery
from bridge.metrics import Metrics
from bridge.queue.base import QueuedEvent, QueuePort
from bridge.settings import SyncSettings
from bridge.state.base import Failure, Resolution, StatePort

log = logging.getLogger(__name__)

UNCONFIRMED = (
    "applied and recorded, but the bridge stopped before it knew that the originator had the answer:"
    " if the save failed there, resync the record from its originator"
)
GAVE_UP_BEFORE = "the originator gave up before the change was applied"
GAVE_UP_AFTER = "the originator gave up after the write (timeout or disconnect)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """What a waiting synchronous originator is told (the webhook's HTTP answer)."""

    ok: bool
    status: int
    message: str


class Verdict(StrEnum):
    """How an apply ended, as the apply span's ``dualwrite.outcome`` says it."""

    APPLIED = Result.APPLIED.value
    SKIPPED = Result.SKIPPED.value
    CONFLICT_LOST = Result.CONFLICT_LOST.value
    REJECTED = "rejected"
    RETRY = "retry"
    ABANDONED = "abandoned"


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """A failure to record, as admins see it."""

    kind: FailureKind
    source_message: str | None = None  # what the originator said (e.g. the compensation's result)
    target_message: str | None
    compensated: bool = False


@dataclass(frozen=True, slots=True)
class Retry:
    """An attempt that may succeed later."""

    message: str
    retry_after: float | None = None


class RetryStep(StrEnum):
    RELEASE = "release"  # back to the queue, due after the backoff
    BUDGET_SPENT = "budget-spent"  # synchronous: the retry would end past the originator's deadline
    DEAD_LETTER = "dead-letter"  # asynchronous: out of attempts


# ---------------------------------------------------------------------- decisions (pure)


def classify(exc: Exception) -> RejectedError | Retry:
    """A failed apply: refused for good (compensate or answer) or worth another attempt. Any other
    exception is a bug, and a bug must not lose the change: it is retried, dead-lettered at the end."""
    if isinstance(exc, RejectedError):
        return exc
    if isinstance(exc, RetryableError):
        return Retry(exc.message, exc.retry_after)
    if isinstance(exc, SyncError):
        return RejectedError(exc.message, system=exc.system, status=exc.status)
    return Retry(f"{type(exc).__name__}: {exc}")


def needs_undo(applied: Applied, *, originator_gone: bool) -> bool:
    """The synchronous originator gave up while we wrote: its transaction rolled back, so ours must
    be taken back (only a write has an undo)."""
    return originator_gone and applied.undo is not None


def record_of_write(applied: Applied) -> Record | None:
    """A write (or skip) to note among the failures: only a lost conflict, whose source was brought
    in line with the winner."""
    if applied.result is Result.CONFLICT_LOST:
        return Record(kind=FailureKind.CONFLICT, target_message=applied.reason, compensated=True)
    return None


def answer_of_write(applied: Applied) -> Answer:
    return Answer(ok=True, status=200, message=applied.reason or applied.result.value)


def record_of_undo(why: str, error: str | None) -> tuple[Record, Answer]:
    """A write taken back (``error`` None) or not (the target's message)."""
    note = "reverted on the target" if error is None else f"revert failed: {error}"
    record = Record(
        kind=FailureKind.TIMEOUT, source_message=note, target_message=why, compensated=error is None
    )
    return record, Answer(ok=False, status=504, message=f"{why}; {note}")


def is_lost_conflict(exc: RejectedError) -> bool:
    """The target refused because its newer change wins (``Applier`` refuses a synchronous change so)."""
    return exc.code == "conflict"


def record_of_sync_rejection(exc: RejectedError) -> Record:
    """Refused synchronously: the webhook answer fails the originator's transaction, nothing to
    compensate."""
    kind = FailureKind.CONFLICT if is_lost_conflict(exc) else FailureKind.REJECTED
    return Record(kind=kind, target_message=exc.message)


def answer_of_rejection(event: ChangeEvent, exc: RejectedError) -> Answer:
    return Answer(
        ok=False, status=status_for(exc), message=f"{target_name(event)} rejected the change: {exc.message}"
    )


def record_of_compensation(exc: RejectedError, result: str | SyncError) -> Record:
    """Refused asynchronously, and the originator put back (``result`` says how) or not (the error)."""
    if isinstance(result, SyncError):
        return Record(
            kind=FailureKind.COMPENSATION_FAILED,
            source_message=f"compensation failed: {result.message}",
            target_message=exc.message,
        )
    return Record(
        kind=FailureKind.REJECTED, source_message=result, target_message=exc.message, compensated=True
    )


def next_retry_step(
    *, sync: bool, attempts: int, max_attempts: int, due: datetime, deadline: datetime
) -> RetryStep:
    """After failed attempt number ``attempts``, with the next one due at ``due``."""
    if sync:
        return RetryStep.BUDGET_SPENT if due > deadline else RetryStep.RELEASE
    return RetryStep.DEAD_LETTER if attempts >= max_attempts else RetryStep.RELEASE


def attempt_bound(event: ChangeEvent, max_attempts: int, budget_s: float) -> str:
    """What bounds a change's attempts, for its log line: " of 8", or a synchronous save's budget."""
    if event.mode is SyncMode.SYNC:
        left = (deadline_of(event, budget_s) - datetime.now(UTC)).total_seconds()
        return f" (synchronous: its {budget_s:g}s budget ends in {max(left, 0.0):.1f}s)"
    return f" of {max_attempts}"


def after_attempt(step: RetryStep, delay: float) -> str:
    """The end of a failed attempt's log line: when the next one comes, or why none does."""
    if step is RetryStep.RELEASE:
        return f"next attempt in {delay:.1f}s"
    if step is RetryStep.DEAD_LETTER:
        return "no attempts left: dead-lettered (replay it from the dashboard once the cause is fixed)"
    return "the save's budget is spent: answered 503, nothing applied"


def answer_of_spent_budget(event: ChangeEvent, message: str) -> Answer:
    return Answer(ok=False, status=503, message=f"{target_name(event)} unavailable: {message}")


def after_abandon(*, reverted: bool, recorded: bool) -> tuple[str, Answer]:
    """A synchronous change nobody waits for any more, before its apply: what to note, what to tell
    a retry of its originator. Applied and recorded (the bridge stopped between recording it and
    taking it off the queue) and not reverted: nothing to undo, but nobody knows for sure that the
    answer reached the originator, so say so (and answer its retry with success)."""
    if recorded and not reverted:
        return UNCONFIRMED, Answer(ok=True, status=200, message="applied before")
    return GAVE_UP_BEFORE, Answer(ok=False, status=504, message=GAVE_UP_BEFORE)


def status_for(exc: SyncError) -> int:
    """The webhook's status for a refused change: 409 a lost conflict, 400 the data, 502 the system."""
    if exc.code == "conflict":
        return 409
    refused_the_data = (exc.status or 400) < 500
    return 400 if refused_the_data else 502


def target_name(event: ChangeEvent) -> str:
    return "Finance and Operations" if event.source is System.CDS else "Dataverse"


def deadline_of(event: ChangeEvent, budget_s: float) -> datetime:
    """When the synchronous originator of ``event`` stops waiting."""
    return event.received_at + timedelta(seconds=budget_s)


# Exponential backoff with "equal jitter": half the exponential step fixed, half random, so the
# retries of many changes spread out, yet none comes back sooner than half its step. tenacity's wait
# objects compute it (tenacity already drives the system clients' retries); they take a retry
# state, of which they read only the attempt number.
_RETRYING = Retrying()


def backoff_wait(initial_s: float, max_s: float) -> Callable[[RetryCallState], float]:
    half = {"multiplier": initial_s / 2, "max": max_s / 2}
    return wait_exponential(**half) + wait_random_exponential(**half)


def backoff_delay(wait: Callable[[RetryCallState], float], attempts: int, retry_after: float | None) -> float:
    """Seconds before attempt ``attempts + 1``; never sooner than the server's Retry-After."""
    state = RetryCallState(_RETRYING, None, (), {})
    state.attempt_number = attempts
    return max(wait(state), retry_after or 0.0)


def follow_up_from_winner(event: ChangeEvent) -> ChangeEvent:
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


def resolution_of(event: ChangeEvent) -> Resolution:
    """How an applied change resolves its record's failures: an admin's retry (its event id says
    so: ``bridge.engine.control``), else a later success (a replayed dead letter's failure was marked
    retrying by the replay and keeps that)."""
    return Resolution.RETRY if RETRY_MARK in event.event_id else Resolution.LATER_SUCCESS


RETRY_MARK = ":retry:"  # in the event id of an admin's retry of a failure


def failure_record(item: QueuedEvent, record: Record, *, attempts: int) -> Failure:
    """A failure as admins see it, keeping the change itself so it can be retried."""
    event = item.event
    return Failure(
        entity=event.entity,
        company=event.company,
        key=event.key,
        direction=direction(event.source),
        operation=event.operation.value,
        event_id=event.event_id,
        source_message=record.source_message,
        target_message=record.target_message,
        kind=record.kind.value,
        correlation_id=event.correlation_id,
        attempts=attempts,
        occurred_at=datetime.now(UTC),
        compensated=record.compensated,
        details={"event": event.model_dump(mode="json")},
    )


# ---------------------------------------------------------------------- carrying them out


class Outcomes:
    """Carries out the decisions above for one leased change; ``answer`` tells a waiting
    synchronous originator (the engine's, a no-op for an asynchronous change)."""

    def __init__(
        self,
        *,
        queue: QueuePort,
        state: StatePort,
        recovery: Recovery,
        metrics: Metrics,
        settings: SyncSettings,
        answer: Callable[[ChangeEvent, Answer], None],
        activity: ActivityRecorder | None = None,
        released: Callable[[ChangeEvent, float], None] | None = None,
    ) -> None:
        self.queue = queue
        self.state = state
        self.recovery = recovery
        self.metrics = metrics
        self.settings = settings
        self.answer = answer
        self.activity = activity
        self.released = released  # told of a release for a retry (the change, its delay)
        self.wait = backoff_wait(settings.backoff_initial_s, settings.backoff_max_s)

    async def after_write(self, item: QueuedEvent, applied: Applied, *, originator_gone: bool) -> Verdict:
        event = item.event
        self.metrics.settled(event.entity, event.record_key)
        if needs_undo(applied, originator_gone=originator_gone):
            assert applied.undo is not None
            await self._undo(item, applied.undo, GAVE_UP_AFTER)
            return Verdict(applied.result.value)
        dir_ = direction(event.source)
        if applied.result is Result.SKIPPED:
            self.metrics.skipped(event.entity, dir_, applied.reason)
        elif applied.result is Result.CONFLICT_LOST:
            self.metrics.skipped(event.entity, dir_, Result.CONFLICT_LOST.value)
        else:
            latency = (datetime.now(UTC) - event.received_at).total_seconds()
            self.metrics.applied(event.entity, dir_, latency)
        record = record_of_write(applied)
        if record is not None:
            await self._record(item, record)
        # Decided and recorded (a synchronous write's undo entry went with its ledger entry): the
        # waiting originator gets its answer first, and taking the event off the queue follows. If
        # the bridge stops in between, the change is found recorded after the restart (abandoned);
        # the record's next change waits for the complete as any other.
        self.answer(event, answer_of_write(applied))
        if applied.result is Result.APPLIED:
            await self._on_success(event)  # after the answer: a waiting save is not held up by it
        await self.queue.complete(item)
        return Verdict(applied.result.value)

    async def _on_success(self, event: ChangeEvent) -> None:
        """The record's change applied: its open failures are resolved (how: ``resolution_of``),
        and the change goes into the map's activity log."""
        try:
            await self.state.resolve_record(
                event.entity, event.company, event.key, resolution=resolution_of(event)
            )
        except Exception:  # the change is applied: taking it off the queue must not depend on this
            log.exception("resolving the failures of %s after its change applied", event.record_key)
        if self.activity is not None:
            self.activity.applied(event)

    async def after_failure(self, item: QueuedEvent, exc: Exception) -> Verdict:
        decided = classify(exc)
        if isinstance(decided, Retry):
            if not isinstance(exc, SyncError):
                log.error("unexpected error applying %s", item.event.event_id, exc_info=exc)
            await self.retry(item, decided.message, decided.retry_after)
            return Verdict.RETRY
        await self._rejected(item, decided)
        return Verdict.REJECTED

    async def _rejected(self, item: QueuedEvent, exc: RejectedError) -> None:
        event = item.event
        self.metrics.settled(event.entity, event.record_key)
        self.metrics.failed(event.entity, direction(event.source), FailureKind.REJECTED, exc.message)
        if event.mode is SyncMode.SYNC:
            await self._record(item, record_of_sync_rejection(exc))
            await self.recovery.settle(event)
            if is_lost_conflict(exc):
                # The other side's newer values win: bring the originator in line once its transaction
                # has rolled back (queued behind this event, so per-record order holds).
                await self.queue.enqueue(follow_up_from_winner(event))
            await self.queue.complete(item)
            self.answer(event, answer_of_rejection(event, exc))
            return
        if not self.recovery.compensates(event):
            kept = "kept at the source: retry once the cause is fixed (documents are not compensated)"
            await self._record(
                item, Record(kind=FailureKind.REJECTED, source_message=kept, target_message=exc.message)
            )
            await self.queue.complete(item)
            return
        result: str | SyncError
        try:
            result = await self.recovery.compensate(event, await self.state.get_ledger(event.record_key))
        except RetryableError as comp_exc:
            await self.retry(item, f"compensation pending: {comp_exc.message}", comp_exc.retry_after)
            return
        except SyncError as comp_exc:
            result = comp_exc
        await self._record(item, record_of_compensation(exc, result))
        await self.queue.complete(item)

    async def retry(self, item: QueuedEvent, message: str, retry_after: float | None) -> None:
        event = item.event
        attempts = item.attempts + 1
        delay = backoff_delay(self.wait, attempts, retry_after)
        step = next_retry_step(
            sync=event.mode is SyncMode.SYNC,
            attempts=attempts,
            max_attempts=self.settings.max_attempts,
            due=datetime.now(UTC) + timedelta(seconds=delay),
            deadline=deadline_of(event, self.settings.sync_budget_s),
        )
        log.log(
            logging.ERROR if step is RetryStep.DEAD_LETTER else logging.WARNING,
            "map %s, record %s/%s (%s): attempt %d%s failed: %s; %s",
            event.entity,
            event.company,
            event.key,
            direction(event.source),
            attempts,
            attempt_bound(event, self.settings.max_attempts, self.settings.sync_budget_s),
            message,
            after_attempt(step, delay),
        )
        if step is RetryStep.RELEASE:
            self.metrics.retrying(event.entity, direction(event.source), event.record_key, message, delay)
            await self.queue.release(item, delay=delay, error=message)
            if self.released is not None:
                self.released(event, delay)
            return
        self.metrics.settled(event.entity, event.record_key)
        self.metrics.failed(event.entity, direction(event.source), FailureKind.RETRY_EXHAUSTED, message)
        await self._record(item, Record(kind=FailureKind.RETRY_EXHAUSTED, target_message=message))
        if step is RetryStep.DEAD_LETTER:
            await self.queue.dead_letter(item, message)
            return
        # An attempt that timed out may still have written: take it back.
        await self._revert_if_applied(item)
        await self.queue.complete(item)
        self.answer(event, answer_of_spent_budget(event, message))

    async def abandoned(self, item: QueuedEvent) -> None:
        """A synchronous change whose originator gave up before its apply (or an earlier run of the
        bridge received it): never applied now, and taken back if an earlier attempt wrote."""
        event = item.event
        self.metrics.settled(event.entity, event.record_key)
        reverted = await self._revert_if_applied(item)
        recorded = not reverted and await self._recorded(event)
        message, answer = after_abandon(reverted=reverted, recorded=recorded)
        await self._record(item, Record(kind=FailureKind.TIMEOUT, target_message=message))
        await self.queue.complete(item)
        self.answer(event, answer)

    async def _revert_if_applied(self, item: QueuedEvent) -> bool:
        """Take back what an earlier attempt may have written, from the undo journal; a revert the
        target refuses (e.g. a document posted meanwhile) is listed with its message for admins."""
        try:
            return await self.recovery.revert_if_applied(item.event)
        except SyncError as exc:
            record, _ = record_of_undo(GAVE_UP_AFTER, exc.message)
            await self._record(item, record)
            await self.recovery.settle(item.event)
            return False

    async def _recorded(self, event: ChangeEvent) -> bool:
        """The ledger's last change of the record is this one: it was applied (and its undo entry
        dropped with that ledger entry)."""
        ledger = await self.state.get_ledger(event.record_key)
        return ledger is not None and ledger.last_event_id == event.event_id

    async def _undo(self, item: QueuedEvent, undo: Undo | DocUndo, why: str) -> None:
        error: str | None = None
        try:
            # The originator's budget is over (that is why it is undone): the undo has its own.
            with own_deadline(self.settings.lease_s * 0.8):
                await self.recovery.guard(item.event, undo)
                await self.recovery.undo(undo)
        except SyncError as exc:
            error = exc.message
        record, answer = record_of_undo(why, error)
        await self._record(item, record)
        await self.recovery.settle(item.event)
        await self.queue.complete(item)
        self.answer(item.event, answer)

    async def _record(self, item: QueuedEvent, record: Record) -> None:
        await self.state.add_failure(failure_record(item, record, attempts=item.attempts + 1))
