"""The decisions after an apply (bridge.engine.outcome), one test per decision, without HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.core.errors import ConflictError, RejectedError, RetryableError, SyncError
from bridge.core.events import ChangeEvent, Operation, SyncMode, System
from bridge.core.kinds import FailureKind
from bridge.core.mapping import load_mappings
from bridge.engine import outcome
from bridge.engine.apply import Applied, Result
from bridge.engine.journal import Undo
from bridge.engine.outcome import Answer, Record, Retry, RetryStep
from bridge.queue.base import QueuedEvent

MAPPINGS = load_mappings(Path(__file__).resolve().parents[2] / "mappings")


def _event(source: System = System.CDS, mode: SyncMode = SyncMode.SYNC) -> ChangeEvent:
    return ChangeEvent(
        event_id="e-1",
        source=source,
        entity="ship_via",
        company="USMF",
        key="Rail",
        operation=Operation.CREATE,
        mode=mode,
        correlation_id="corr-1",
        trace_context={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    )


def _undo() -> Undo:
    return Undo(
        target=System.SCM,
        emap=MAPPINGS.maps["ship_via"],
        company="USMF",
        key="Rail",
        before=None,
        ledger_before=None,
    )


# ---------------------------------------------------------------- classify


def test_a_rejection_stays_a_rejection() -> None:
    exc = RejectedError("too long", system="scm", status=400)
    assert outcome.classify(exc) is exc


def test_a_retryable_error_is_retried_with_its_retry_after() -> None:
    decided = outcome.classify(RetryableError("throttled", system="cds", status=429, retry_after=7.0))
    assert decided == Retry("throttled", 7.0)


@pytest.mark.parametrize("error", [ConflictError, SyncError])
def test_any_other_sync_error_is_refused_with_its_system_and_status(error: type[SyncError]) -> None:
    decided = outcome.classify(error("no", system="scm", status=412))
    assert isinstance(decided, RejectedError)
    assert (decided.message, decided.system, decided.status) == ("no", "scm", 412)


def test_a_bug_is_retried_not_lost() -> None:
    assert outcome.classify(KeyError("x")) == Retry("KeyError: 'x'")


# ---------------------------------------------------------------- after a write


def test_a_write_is_undone_only_when_its_originator_is_gone() -> None:
    written = Applied(Result.APPLIED, "created", _undo())
    assert outcome.needs_undo(written, originator_gone=True)
    assert not outcome.needs_undo(written, originator_gone=False)
    # A skip wrote nothing: nothing to undo even if nobody waits.
    assert not outcome.needs_undo(Applied(Result.SKIPPED, "stale"), originator_gone=True)


def test_only_a_lost_conflict_is_recorded_and_as_compensated() -> None:
    lost = Applied(Result.CONFLICT_LOST, "scm changed it since the last sync and wins")
    assert outcome.record_of_write(lost) == Record(
        kind=FailureKind.CONFLICT, target_message=lost.reason, compensated=True
    )
    assert outcome.record_of_write(Applied(Result.APPLIED, "updated")) is None
    assert outcome.record_of_write(Applied(Result.SKIPPED, "echo")) is None


def test_a_write_answers_success_with_its_reason_or_result() -> None:
    assert outcome.answer_of_write(Applied(Result.APPLIED, "created")) == Answer(
        ok=True, status=200, message="created"
    )
    assert outcome.answer_of_write(Applied(Result.SKIPPED)) == Answer(ok=True, status=200, message="skipped")


def test_an_undo_that_worked_is_a_compensated_timeout() -> None:
    record, answer = outcome.record_of_undo("the originator gave up", None)
    assert record == Record(
        kind=FailureKind.TIMEOUT,
        source_message="reverted on the target",
        target_message="the originator gave up",
        compensated=True,
    )
    assert answer == Answer(ok=False, status=504, message="the originator gave up; reverted on the target")


def test_an_undo_that_failed_says_why_and_is_not_compensated() -> None:
    record, answer = outcome.record_of_undo("gave up", "F&O: record locked")
    assert record.kind is FailureKind.TIMEOUT and record.compensated is False
    assert record.source_message == "revert failed: F&O: record locked"
    assert answer.status == 504 and "revert failed: F&O: record locked" in answer.message


# ---------------------------------------------------------------- rejections


def test_a_synchronous_lost_conflict_is_recorded_as_a_conflict() -> None:
    exc = RejectedError("scm wins", system="scm", status=409, code="conflict")
    assert outcome.is_lost_conflict(exc)
    assert outcome.record_of_sync_rejection(exc) == Record(
        kind=FailureKind.CONFLICT, target_message="scm wins"
    )


def test_a_synchronous_refusal_is_recorded_as_rejected() -> None:
    exc = RejectedError("too long", system="scm", status=400)
    assert not outcome.is_lost_conflict(exc)
    assert outcome.record_of_sync_rejection(exc) == Record(
        kind=FailureKind.REJECTED, target_message="too long"
    )


def test_a_synchronous_refusal_answers_with_the_target_and_its_words() -> None:
    answer = outcome.answer_of_rejection(_event(System.CDS), RejectedError("too long", status=400))
    assert answer == Answer(
        ok=False, status=400, message="Finance and Operations rejected the change: too long"
    )
    answer = outcome.answer_of_rejection(_event(System.SCM), RejectedError("no site", status=404))
    assert answer.message.startswith("Dataverse rejected the change")


def test_a_compensated_rejection_keeps_both_systems_words() -> None:
    exc = RejectedError("model year before 1900", system="cds", status=400)
    record = outcome.record_of_compensation(exc, "removed the rejected new record from scm")
    assert record == Record(
        kind=FailureKind.REJECTED,
        source_message="removed the rejected new record from scm",
        target_message="model year before 1900",
        compensated=True,
    )


def test_a_compensation_that_fails_is_recorded_as_compensation_failed() -> None:
    exc = RejectedError("model year before 1900", system="cds", status=400)
    record = outcome.record_of_compensation(exc, RejectedError("delete refused", system="scm", status=400))
    assert record == Record(
        kind=FailureKind.COMPENSATION_FAILED,
        source_message="compensation failed: delete refused",
        target_message="model year before 1900",
        compensated=False,
    )


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [("conflict", 409, 409), (None, 400, 400), (None, 404, 400), (None, None, 400), (None, 503, 502)],
)
def test_the_webhook_status_of_a_refusal(code: str | None, status: int | None, expected: int) -> None:
    assert outcome.status_for(RejectedError("x", status=status, code=code)) == expected


def test_the_follow_up_of_a_lost_conflict_reads_the_winner_fresh() -> None:
    event = _event(System.CDS)
    follow = outcome.follow_up_from_winner(event)
    assert follow.source is System.SCM and follow.operation is Operation.UPDATE and follow.needs_fetch
    assert follow.event_id == "conflict:e-1"
    assert (follow.entity, follow.company, follow.key) == (event.entity, event.company, event.key)
    assert follow.correlation_id == event.correlation_id and follow.trace_context == event.trace_context
    assert follow.mode is SyncMode.ASYNC


# ---------------------------------------------------------------- retries


NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def test_a_synchronous_retry_within_the_budget_is_released() -> None:
    step = outcome.next_retry_step(
        sync=True, attempts=50, max_attempts=8, due=NOW, deadline=NOW + timedelta(seconds=1)
    )
    assert step is RetryStep.RELEASE  # attempts do not count for a synchronous change: its budget does


def test_a_synchronous_retry_past_the_budget_gives_up() -> None:
    step = outcome.next_retry_step(
        sync=True, attempts=1, max_attempts=8, due=NOW + timedelta(seconds=1), deadline=NOW
    )
    assert step is RetryStep.BUDGET_SPENT


def test_an_asynchronous_retry_is_released_until_the_last_attempt_then_dead_lettered() -> None:
    late = NOW + timedelta(days=1)  # the synchronous budget means nothing to an asynchronous change
    assert (
        outcome.next_retry_step(sync=False, attempts=7, max_attempts=8, due=late, deadline=NOW)
        is RetryStep.RELEASE
    )
    assert (
        outcome.next_retry_step(sync=False, attempts=8, max_attempts=8, due=NOW, deadline=late)
        is RetryStep.DEAD_LETTER
    )


def test_the_backoff_doubles_with_equal_jitter_up_to_its_maximum() -> None:
    wait = outcome.backoff_wait(0.5, 60.0)
    for attempts, step in [(1, 0.5), (2, 1.0), (4, 4.0), (8, 60.0), (30, 60.0)]:
        delays = [outcome.backoff_delay(wait, attempts, None) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays), (attempts, min(delays), max(delays))
        assert max(delays) - min(delays) > step / 10  # jittered, not one fixed value


def test_the_backoff_never_comes_back_before_retry_after() -> None:
    wait = outcome.backoff_wait(0.5, 60.0)
    assert all(outcome.backoff_delay(wait, 1, 30.0) == 30.0 for _ in range(50))


# ---------------------------------------------------------------- abandoned


def test_an_abandoned_change_recorded_before_a_restart_is_answered_as_applied() -> None:
    message, answer = outcome.after_abandon(reverted=False, recorded=True)
    assert message == outcome.UNCONFIRMED and answer == Answer(ok=True, status=200, message="applied before")


@pytest.mark.parametrize(("reverted", "recorded"), [(True, False), (False, False), (True, True)])
def test_an_abandoned_change_otherwise_fails_its_originator(reverted: bool, recorded: bool) -> None:
    message, answer = outcome.after_abandon(reverted=reverted, recorded=recorded)
    assert message == outcome.GAVE_UP_BEFORE and answer == Answer(
        ok=False, status=504, message=outcome.GAVE_UP_BEFORE
    )


# ---------------------------------------------------------------- the record


def test_a_failure_record_stores_the_kind_as_its_string_and_keeps_the_change() -> None:
    event = _event(System.CDS, SyncMode.ASYNC)
    item = QueuedEvent(seq=1, event=event, attempts=2, lease_token="t", enqueued_at=NOW)
    record = Record(kind=FailureKind.COMPENSATION_FAILED, source_message="s", target_message="t")
    failure = outcome.failure_record(item, record, attempts=3)
    assert type(failure.kind) is str and failure.kind == "compensation-failed"
    assert FailureKind(failure.kind) is FailureKind.COMPENSATION_FAILED  # rows read back as the enum
    assert (failure.direction, failure.attempts, failure.compensated) == ("cds->scm", 3, False)
    assert ChangeEvent.model_validate(failure.details["event"]) == event
