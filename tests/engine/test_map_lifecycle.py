"""Issue 20 in the engine: a stopped map's notifications are acknowledged, counted and not queued; an
initializing one's are queued and held; a change that applies resolves its record's open failures
and goes into the activity log; the controller's actions record who acted."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.core.events import ChangeEvent, Operation, SyncMode, System
from bridge.core.kinds import FailureKind
from bridge.engine.activity import ActivityRecorder
from bridge.engine.apply import Applied, Applier, Result
from bridge.engine.control import EngineController
from bridge.engine.outcome import Record, failure_record
from bridge.engine.recovery import Recovery
from bridge.engine.sideports import Sides
from bridge.engine.worker import STOPPED_REASON, Engine
from bridge.metrics import Metrics
from bridge.queue.sqlite import SqliteQueue
from bridge.settings import SyncSettings
from bridge.state.base import (
    ActivityCategory,
    ActivityKind,
    FailureState,
    MapState,
    MapStatus,
    Resolution,
)
from bridge.state.sqlite import SqliteState
from tests.engine.test_outcomes import MAPPINGS, MemoryDataverse, MemorySide


@dataclasses.dataclass
class Rig:
    engine: Engine
    controller: EngineController
    queue: SqliteQueue
    state: SqliteState
    metrics: Metrics


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    queue, state = SqliteQueue(tmp_path / "queue.db"), SqliteState(tmp_path / "state.db")
    await queue.open()
    await state.open()
    sides = Sides(cds=MemoryDataverse(System.CDS), scm=MemorySide(System.SCM))
    metrics = Metrics(maps=MAPPINGS.maps)
    engine = Engine(
        queue=queue,
        state=state,
        applier=Applier(mappings=MAPPINGS, state=state, sides=sides, own_ids=set()),
        recovery=Recovery(mappings=MAPPINGS, state=state, sides=sides),
        metrics=metrics,
        settings=SyncSettings(max_attempts=3),
        activity=ActivityRecorder(state, keep=50),
    )
    controller = EngineController(engine=engine, queue=queue, state=state, probes={})
    yield Rig(engine, controller, queue, state, metrics)
    await engine.activity.close()
    await queue.close()
    await state.close()


def _event(key: str = "Rail", *, mode: SyncMode = SyncMode.ASYNC, event_id: str | None = None) -> ChangeEvent:
    return ChangeEvent(
        event_id=event_id or f"scm-{key}",
        source=System.SCM,
        entity="ship_via",
        company="USMF",
        key=key,
        operation=Operation.UPDATE,
        mode=mode,
        image={"ModeCode": key},
    )


@pytest.mark.parametrize("status", [MapStatus.STOPPED, MapStatus.NOT_RUNNING])
@pytest.mark.parametrize("mode", [SyncMode.ASYNC, SyncMode.SYNC])
async def test_a_stopped_maps_notifications_are_acknowledged_counted_not_queued(
    rig: Rig, status: MapStatus, mode: SyncMode
) -> None:
    rig.engine.hold("ship_via", status)
    result = await rig.engine.submit(_event(mode=mode))
    assert result.accepted and result.status == (200 if mode is SyncMode.SYNC else 202)
    assert "stopped" in result.message
    assert await rig.queue.depth() == 0
    [figures] = [d for d in rig.metrics.snapshot("ship_via").directions.values() if d.direction == "scm->cds"]
    assert figures.received == 1 and figures.skipped.get(STOPPED_REASON) == 1


async def test_an_initializing_maps_changes_are_queued_and_held(rig: Rig) -> None:
    rig.engine.hold("ship_via", MapStatus.INITIALIZING)
    result = await rig.engine.submit(_event(mode=SyncMode.SYNC))
    assert result.accepted and result.status == 202  # queued as asynchronous, as when paused
    assert await rig.queue.depth("ship_via") == 1
    assert await rig.queue.lease(10, 60.0, exclude_entities=frozenset(rig.engine.paused)) == []
    rig.engine.hold("ship_via", MapStatus.RUNNING)
    assert len(await rig.queue.lease(10, 60.0, exclude_entities=frozenset(rig.engine.paused))) == 1


async def test_stored_states_are_carried_into_the_engine_at_start(rig: Rig) -> None:
    await rig.state.set_map_state(MapState("ship_via", MapStatus.STOPPED, "cutover"))
    await rig.engine.start()
    try:
        assert "ship_via" in rig.engine.stopped and "ship_via" in rig.engine.paused
        assert "warehouse" not in rig.engine.stopped | rig.engine.paused
    finally:
        await rig.engine.stop()


async def test_stop_and_start_are_stored_logged_and_steer_the_engine(rig: Rig) -> None:
    await rig.controller.stop("ship_via", "cutover", actor="admin token")
    assert (await rig.state.get_map_state("ship_via")).status is MapStatus.STOPPED
    assert "ship_via" in rig.engine.stopped
    await rig.controller.start("ship_via", actor="admin session 1a2b3c4d")
    assert (await rig.state.get_map_state("ship_via")).status is MapStatus.RUNNING
    assert "ship_via" not in rig.engine.stopped | rig.engine.paused
    await rig.controller.initializing("ship_via", "initial sync", actor=None)
    assert (await rig.state.get_map_state("ship_via")).status is MapStatus.INITIALIZING
    log = await rig.state.activity(entity="ship_via")
    assert [(a.kind, a.actor) for a in log] == [
        (ActivityKind.INITIALIZING, None),
        (ActivityKind.STARTED, "admin session 1a2b3c4d"),
        (ActivityKind.STOPPED, "admin token"),
    ]
    assert log[2].message == "cutover"


async def _record_failure(rig: Rig, event: ChangeEvent) -> int:
    assert await rig.queue.enqueue(event)
    [item] = await rig.queue.lease(1, 60.0)
    record = Record(kind=FailureKind.REJECTED, target_message="no")
    fid = await rig.state.add_failure(failure_record(item, record, attempts=1))
    await rig.queue.complete(item)
    return fid


async def test_an_applied_change_resolves_its_records_failures_and_is_logged(rig: Rig) -> None:
    failed = await _record_failure(rig, _event("Rail", event_id="scm-1"))
    other = await _record_failure(rig, _event("Road", event_id="scm-2"))
    assert await rig.queue.enqueue(_event("Rail", event_id="scm-3"))
    [item] = await rig.queue.lease(1, 60.0)
    await rig.engine.outcomes.after_write(item, Applied(Result.APPLIED), originator_gone=False)
    got = await rig.state.get_failure(failed)
    assert got is not None and got.state is FailureState.RESOLVED
    assert (got.resolution, got.state_by) == (Resolution.LATER_SUCCESS, None)
    untouched = await rig.state.get_failure(other)
    assert untouched is not None and untouched.state is FailureState.OPEN
    await rig.engine.activity.flush()
    [entry] = await rig.state.activity(entity="ship_via", category=ActivityCategory.CHANGE)
    assert (entry.kind, entry.direction, entry.key) == (ActivityKind.APPLIED, "scm->cds", "USMF/Rail")
    assert entry.latency_s is not None and entry.latency_s >= 0


async def test_a_skipped_change_resolves_nothing(rig: Rig) -> None:
    failed = await _record_failure(rig, _event("Rail", event_id="scm-1"))
    assert await rig.queue.enqueue(_event("Rail", event_id="scm-3"))
    [item] = await rig.queue.lease(1, 60.0)
    await rig.engine.outcomes.after_write(item, Applied(Result.SKIPPED, "noop"), originator_gone=False)
    got = await rig.state.get_failure(failed)
    assert got is not None and got.state is FailureState.OPEN


async def test_a_retry_is_retrying_by_its_actor_and_its_success_resolves_it_so(rig: Rig) -> None:
    fid = await _record_failure(rig, _event("Rail"))
    assert await rig.controller.retry_failure(fid, actor="admin session 1a2b3c4d")
    got = await rig.state.get_failure(fid)
    assert got is not None and (got.state, got.state_by) == (FailureState.RETRYING, "admin session 1a2b3c4d")
    [item] = await rig.queue.lease(1, 60.0)  # the retry's change
    await rig.engine.outcomes.after_write(item, Applied(Result.APPLIED), originator_gone=False)
    got = await rig.state.get_failure(fid)
    assert got is not None and got.state is FailureState.RESOLVED
    assert (got.resolution, got.state_by) == (Resolution.RETRY, "admin session 1a2b3c4d")
    [retried] = await rig.state.activity(entity="ship_via", category=ActivityCategory.EVENT)
    assert retried.kind is ActivityKind.FAILURE_RETRIED and retried.actor == "admin session 1a2b3c4d"


async def test_discard_marks_the_failure_and_only_once(rig: Rig) -> None:
    fid = await _record_failure(rig, _event("Rail"))
    assert await rig.controller.discard_failure(fid, actor="admin token")
    got = await rig.state.get_failure(fid)
    assert got is not None and (got.state, got.state_by) == (FailureState.DISCARDED, "admin token")
    assert not await rig.controller.discard_failure(fid, actor="admin token")  # discarded already
    assert not await rig.controller.discard_failure(fid + 100, actor="admin token")


async def test_dead_letters_replayed_and_discarded_carry_their_failures_along(rig: Rig) -> None:
    fids = {}
    for key in ("Rail", "Road"):
        event = _event(key)
        assert await rig.queue.enqueue(event)
        [item] = await rig.queue.lease(1, 60.0)
        record = Record(kind=FailureKind.RETRY_EXHAUSTED, target_message="503")
        fids[key] = await rig.state.add_failure(failure_record(item, record, attempts=3))
        await rig.queue.dead_letter(item, "503")
    letters = {d.event.key: d.seq for d in await rig.queue.dead_letters()}
    assert await rig.controller.replay_dead_letters([letters["Rail"]], actor="admin token") == 1
    assert await rig.controller.discard_dead_letters(None, actor="admin token") == 1
    rail, road = await rig.state.get_failure(fids["Rail"]), await rig.state.get_failure(fids["Road"])
    assert rail is not None and (rail.state, rail.resolution) == (FailureState.RETRYING, Resolution.REPLAY)
    assert road is not None and road.state is FailureState.DISCARDED and road.state_by == "admin token"
    kinds = [a.kind for a in await rig.state.activity(entity="ship_via")]
    assert kinds == [ActivityKind.DEAD_LETTERS_DISCARDED, ActivityKind.DEAD_LETTERS_REPLAYED]


async def test_retrying_a_dead_lettered_failure_replays_its_dead_letter(rig: Rig) -> None:
    event = _event("Rail")
    assert await rig.queue.enqueue(event)
    [item] = await rig.queue.lease(1, 60.0)
    record = Record(kind=FailureKind.RETRY_EXHAUSTED, target_message="503")
    fid = await rig.state.add_failure(failure_record(item, record, attempts=3))
    await rig.queue.dead_letter(item, "503")
    assert await rig.controller.retry_failure(fid, actor="admin token")
    # the dead letter itself is back in the queue (it held the record), no second copy of the change
    assert await rig.queue.dead_letters() == []
    [again] = await rig.queue.lease(10, 60.0)
    assert again.event.event_id == event.event_id and await rig.queue.depth() == 1


async def test_a_failing_resolution_never_keeps_an_applied_change_on_the_queue(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(rig.state, "resolve_record", broken)
    assert await rig.queue.enqueue(_event("Rail"))
    [item] = await rig.queue.lease(1, 60.0)
    verdict = await rig.engine.outcomes.after_write(item, Applied(Result.APPLIED), originator_gone=False)
    assert verdict.value == "applied" and await rig.queue.depth() == 0
