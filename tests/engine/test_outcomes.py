"""Outcomes carrying out the decisions (bridge.engine.outcome) on a real queue and state, with the
two systems as in-memory sides (bridge.engine.sideports): what is recorded, answered, queued."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bridge import telemetry
from bridge.core.errors import RejectedError, RetryableError, SyncError
from bridge.core.events import ChangeEvent, Operation, SyncMode, System
from bridge.core.kinds import FailureKind
from bridge.core.mapping import EntityMap, LookupSpec, load_mappings
from bridge.engine.apply import Applied, Result
from bridge.engine.journal import Undo, UndoJournal
from bridge.engine.outcome import Answer, Outcomes, Verdict
from bridge.engine.recovery import Recovery
from bridge.engine.sideports import Row, Sides
from bridge.metrics import Metrics
from bridge.queue.base import QueuedEvent
from bridge.queue.sqlite import SqliteQueue
from bridge.settings import SyncSettings
from bridge.state.sqlite import SqliteState

MAPPINGS = load_mappings(Path(__file__).resolve().parents[2] / "mappings")


class MemorySide:
    """One system's records in memory; ``refuse`` makes its writes fail with that error."""

    def __init__(self, system: System) -> None:
        self._system = system
        self.rows: dict[str, Row] = {}
        self.refuse: SyncError | None = None
        self.deleted: list[str] = []

    @property
    def system(self) -> System:
        return self._system

    async def read(
        self, emap: EntityMap, company: str, key: str, *, record_id: str | None = None
    ) -> Row | None:
        return self.rows.get(key)

    async def create(
        self,
        emap: EntityMap,
        company: str,
        key: str,
        payload: dict[str, Any],
        *,
        record_id: str | None = None,
    ) -> tuple[str | None, str | None]:
        if self.refuse:
            raise self.refuse
        self.rows[key] = Row(image=dict(payload), record_id=record_id, etag='"1"')
        return record_id, '"1"'

    async def update(
        self, emap: EntityMap, company: str, key: str, row: Row, payload: dict[str, Any]
    ) -> str | None:
        if self.refuse:
            raise self.refuse
        self.rows[key] = Row(image={**row.image, **payload}, record_id=row.record_id, etag='"2"')
        return '"2"'

    async def delete(self, emap: EntityMap, company: str, key: str, row: Row) -> None:
        if self.refuse:
            raise self.refuse
        del self.rows[key]
        self.deleted.append(key)


class MemoryDataverse(MemorySide):
    async def read_by_id(self, emap: EntityMap, record_id: str) -> Row | None:
        return next((r for r in self.rows.values() if r.record_id == record_id), None)

    async def company_code(self, company_id: str) -> str | None:
        return "USMF"

    async def natural_key(self, spec: LookupSpec, guid: str) -> str | None:
        return None

    async def guid_of(self, spec: LookupSpec, company: str, natural: str) -> str | None:
        return None


@dataclasses.dataclass
class World:
    outcomes: Outcomes
    queue: SqliteQueue
    state: SqliteState
    cds: MemoryDataverse
    scm: MemorySide
    metrics: Metrics
    answers: list[tuple[str, Answer]]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    queue, state = SqliteQueue(tmp_path / "queue.db"), SqliteState(tmp_path / "state.db")
    await queue.open()
    await state.open()
    cds, scm = MemoryDataverse(System.CDS), MemorySide(System.SCM)
    metrics = Metrics(maps=MAPPINGS.maps)
    answers: list[tuple[str, Answer]] = []
    outcomes = Outcomes(
        queue=queue,
        state=state,
        recovery=Recovery(mappings=MAPPINGS, state=state, sides=Sides(cds=cds, scm=scm)),
        metrics=metrics,
        settings=SyncSettings(max_attempts=3),
        answer=lambda event, answer: answers.append((event.event_id, answer)),
    )
    yield World(outcomes, queue, state, cds, scm, metrics, answers)
    await queue.close()
    await state.close()


def _event(source: System, mode: SyncMode, key: str = "Rail") -> ChangeEvent:
    return ChangeEvent(
        event_id=f"{source.value}-{key}",
        source=source,
        entity="ship_via",
        company="USMF",
        key=key,
        operation=Operation.CREATE,
        mode=mode,
    )


async def _leased(world: World, event: ChangeEvent) -> QueuedEvent:
    assert await world.queue.enqueue(event)
    [item] = await world.queue.lease(1, 60.0)
    return item


async def test_a_refused_compensation_is_recorded_as_compensation_failed(world: World) -> None:
    # F&O created Rail, Dataverse refused it, and F&O refuses the removal too.
    world.scm.rows["Rail"] = Row(image={"ModeCode": "Rail"}, etag='"1"')
    world.scm.refuse = RejectedError("record is locked by a journal", system="scm", status=400)
    item = await _leased(world, _event(System.SCM, SyncMode.ASYNC))
    verdict = await world.outcomes.after_failure(item, RejectedError("no", system="cds", status=400))
    assert verdict is Verdict.REJECTED
    [failure] = await world.state.failures(entity="ship_via")
    assert FailureKind(failure.kind) is FailureKind.COMPENSATION_FAILED
    assert failure.compensated is False
    assert failure.source_message == "compensation failed: record is locked by a journal"
    assert failure.target_message == "no"
    assert "Rail" in world.scm.rows  # still there: an admin must act
    assert await world.queue.depth() == 0  # decided: off the queue


async def test_a_compensation_that_works_is_a_compensated_rejection(world: World) -> None:
    world.scm.rows["Rail"] = Row(image={"ModeCode": "Rail"}, etag='"1"')
    item = await _leased(world, _event(System.SCM, SyncMode.ASYNC))
    await world.outcomes.after_failure(item, RejectedError("no", system="cds", status=400))
    [failure] = await world.state.failures(entity="ship_via")
    assert FailureKind(failure.kind) is FailureKind.REJECTED and failure.compensated is True
    assert world.scm.deleted == ["Rail"]
    assert await world.queue.depth() == 0


async def test_a_compensation_that_may_work_later_is_retried_not_recorded(world: World) -> None:
    world.scm.rows["Rail"] = Row(image={"ModeCode": "Rail"}, etag='"1"')
    world.scm.refuse = RetryableError("F&O unavailable", system="scm", status=503)
    item = await _leased(world, _event(System.SCM, SyncMode.ASYNC))
    await world.outcomes.after_failure(item, RejectedError("no", system="cds", status=400))
    assert await world.state.failures(entity="ship_via") == []
    assert await world.queue.depth() == 1  # released with a delay, for the next attempt


async def test_the_compensation_has_its_own_span(tmp_path: Path) -> None:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    state = SqliteState(tmp_path / "state.db")
    await state.open()
    try:
        scm = MemorySide(System.SCM)
        scm.rows["Rail"] = Row(image={"ModeCode": "Rail"}, etag='"1"')
        recovery = Recovery(
            mappings=MAPPINGS, state=state, sides=Sides(cds=MemoryDataverse(System.CDS), scm=scm)
        )
        await recovery.compensate(_event(System.SCM, SyncMode.ASYNC), None)
    finally:
        await state.close()
    assert [s.name for s in exporter.get_finished_spans()] == [telemetry.SPAN_COMPENSATE]


async def test_a_synchronous_lost_conflict_answers_409_and_queues_the_winner(world: World) -> None:
    item = await _leased(world, _event(System.CDS, SyncMode.SYNC))
    exc = RejectedError("scm changed it and wins", system="scm", status=409, code="conflict")
    await world.outcomes.after_failure(item, exc)
    [failure] = await world.state.failures(entity="ship_via")
    assert FailureKind(failure.kind) is FailureKind.CONFLICT
    [(event_id, answer)] = world.answers
    assert event_id == item.event.event_id and (answer.ok, answer.status) == (False, 409)
    [follow] = await world.queue.lease(1, 60.0)
    assert follow.event.event_id == f"conflict:{item.event.event_id}" and follow.event.source is System.SCM


async def test_a_write_whose_originator_left_is_undone_and_answered_504(world: World) -> None:
    world.scm.rows["Rail"] = Row(image={"ModeCode": "Rail"}, etag='"1"')  # what our write created
    item = await _leased(world, _event(System.CDS, SyncMode.SYNC))
    undo = Undo(
        target=System.SCM,
        emap=MAPPINGS.maps["ship_via"],
        company="USMF",
        key="Rail",
        before=None,
        ledger_before=None,
    )
    verdict = await world.outcomes.after_write(
        item, Applied(Result.APPLIED, "created", undo), originator_gone=True
    )
    assert verdict is Verdict.APPLIED
    assert world.scm.deleted == ["Rail"]
    [failure] = await world.state.failures(entity="ship_via")
    assert FailureKind(failure.kind) is FailureKind.TIMEOUT and failure.compensated is True
    [(_, answer)] = world.answers
    assert (answer.ok, answer.status) == (False, 504)
    assert await world.state.get_journal(item.event.event_id) is None  # settled
    assert await world.queue.depth() == 0


async def test_a_write_whose_originator_waits_is_answered_and_counted(world: World) -> None:
    item = await _leased(world, _event(System.CDS, SyncMode.SYNC))
    await world.outcomes.after_write(item, Applied(Result.APPLIED, "created"), originator_gone=False)
    assert world.answers == [(item.event.event_id, Answer(ok=True, status=200, message="created"))]
    assert await world.state.failures(entity="ship_via") == []
    assert await world.queue.depth() == 0


async def test_an_asynchronous_change_out_of_attempts_is_dead_lettered(world: World) -> None:
    item = await _leased(world, _event(System.SCM, SyncMode.ASYNC))
    last = dataclasses.replace(item, attempts=2)  # max_attempts=3: this is the third
    verdict = await world.outcomes.after_failure(last, RetryableError("F&O unavailable", status=503))
    assert verdict is Verdict.RETRY
    [failure] = await world.state.failures(entity="ship_via")
    assert FailureKind(failure.kind) is FailureKind.RETRY_EXHAUSTED
    [dead] = await world.queue.dead_letters()
    assert dead.event.event_id == item.event.event_id


async def test_a_synchronous_change_past_its_budget_fails_its_originator_with_503(world: World) -> None:
    event = _event(System.CDS, SyncMode.SYNC).model_copy(
        update={"received_at": datetime(2020, 1, 1, tzinfo=UTC)}
    )
    item = await _leased(world, event)
    # An earlier attempt timed out after its write landed: journalled, and the row is on F&O.
    assert await UndoJournal(world.state).write(event, System.SCM, None, None, deleted=False)
    world.scm.rows["Rail"] = Row(image={"ModeCode": "Rail"}, etag='"1"')
    await world.outcomes.after_failure(item, RetryableError("F&O unavailable", status=503))
    [failure] = await world.state.failures(entity="ship_via")
    assert FailureKind(failure.kind) is FailureKind.RETRY_EXHAUSTED
    [(_, answer)] = world.answers
    assert answer == Answer(
        ok=False, status=503, message="Finance and Operations unavailable: F&O unavailable"
    )
    assert world.scm.deleted == ["Rail"]  # the originator rolled back: so does the target
    assert await world.state.get_journal(event.event_id) is None
    assert await world.queue.depth() == 0
