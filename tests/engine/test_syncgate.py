"""A synchronous save that meets a pending F&O change of the same record (bridge/engine/syncgate.py).

Decision unit tests per policy, then the gate with the real applier, queue and state over two
in-memory sides, where Dataverse holds the saved row while the save's step runs (as the real one
does: the write of the pending F&O change into it waits until the save commits or rolls back): what
the save is answered, and what becomes of the F&O -> Dataverse write that was on its way."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.core.entitymap import ConflictPolicy, EntityMap
from bridge.core.errors import ConflictError, RejectedError, RetryableError
from bridge.core.events import ChangeEvent, Operation, SyncMode, System
from bridge.core.ledger import LedgerEntry
from bridge.core.mapping import MappingSet, load_mappings
from bridge.engine.apply import Applier, Result
from bridge.engine.recovery import Recovery
from bridge.engine.sideports import Row, Sides
from bridge.engine.syncgate import SyncGate, decide, rivals
from bridge.metrics import Metrics
from bridge.queue.base import QueueCapability
from bridge.queue.sqlite import SqliteQueue
from bridge.settings import SyncSettings
from bridge.state.sqlite import SqliteState

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
CDS_ID = "7b0c5a8e-0000-4000-8000-000000000001"
# Event times have milliseconds, the systems' modified times whole seconds (bridge/listeners).
T = datetime(2026, 1, 5, 8, 0, 0, tzinfo=UTC)  # in the past, as every event time is
EARLY, LATE = T + timedelta(milliseconds=900), T + timedelta(milliseconds=950)


def fno_change(at: datetime, value: str = "scm", n: int = 1) -> ChangeEvent:
    return ChangeEvent(
        event_id=f"scm:{n}",
        source=System.SCM,
        entity="ship_via",
        company="USMF",
        key="AIR",
        operation=Operation.UPDATE,
        changed={"ModeDescription": value},
        image={"dataAreaId": "usmf", "ModeCode": "AIR", "ModeDescription": value},
        source_timestamp=at,
    )


def dataverse_save(at: datetime, value: str = "cds") -> ChangeEvent:
    return ChangeEvent(
        event_id="cds:save",
        source=System.CDS,
        entity="ship_via",
        company="USMF",
        key="AIR",
        record_id=CDS_ID,
        operation=Operation.UPDATE,
        mode=SyncMode.SYNC,
        changed={"msdyn_description": value},
        image={"msdyn_shipviaid": CDS_ID, "msdyn_name": "AIR", "msdyn_description": value},
        source_timestamp=at,
    )


# ---------------------------------------------------------------- the decision


@pytest.mark.parametrize(
    ("policy", "save_at", "fno_at", "save_wins"),
    [
        (ConflictPolicy.NEWER_WINS, LATE, EARLY, True),
        (ConflictPolicy.NEWER_WINS, EARLY, LATE, False),
        (ConflictPolicy.CDS_WINS, EARLY, LATE, True),
        (ConflictPolicy.SCM_WINS, LATE, EARLY, False),
    ],
    ids=["newer-wins-save-later", "newer-wins-fno-later", "cds-wins", "scm-wins"],
)
def test_the_decision_follows_the_policy(
    policy: ConflictPolicy, save_at: datetime, fno_at: datetime, save_wins: bool
) -> None:
    decision = decide(policy, dataverse_save(save_at), [fno_change(fno_at)])
    assert decision is not None and decision.save_wins is save_wins
    stamp = fno_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    verb = "accepted" if save_wins else "conflict"
    assert decision.reason.startswith(f"{verb}: Finance and Operations changed this record at {stamp}")
    assert decision.reason.endswith(f"and the map's policy is {policy}")


def test_the_newest_pending_change_is_the_one_decided_against() -> None:
    pending = [fno_change(EARLY, n=1), fno_change(T + timedelta(seconds=1), n=2)]
    decision = decide(ConflictPolicy.NEWER_WINS, dataverse_save(LATE), pending)
    assert decision is not None and not decision.save_wins and decision.rival.event_id == "scm:2"


def test_without_a_pending_change_there_is_nothing_to_decide() -> None:
    assert decide(ConflictPolicy.SCM_WINS, dataverse_save(LATE), []) is None


def test_only_unapplied_changes_of_the_other_side_are_rivals() -> None:
    save = dataverse_save(LATE)
    applied, older, same_side = fno_change(EARLY, n=1), fno_change(T, n=2), dataverse_save(EARLY)
    pending = fno_change(EARLY + timedelta(milliseconds=10), n=3)
    ledger = _ledger(last_event_id="scm:1", last_source_timestamp=EARLY)
    assert rivals(save, [applied, older, same_side, pending], ledger) == [pending]


# ---------------------------------------------------------------- the gate, end to end in memory


class MemorySide:
    """One system's copy of the record: ETags, whole-second modified times, and a row lock the
    write of another client waits for while the save's synchronous step runs."""

    def __init__(self, system: System, image: dict[str, Any], record_id: str | None) -> None:
        self.system = system
        self.image = image
        self.record_id = record_id
        self.version = 1
        self.modified = T - timedelta(minutes=5)
        self.unlocked = asyncio.Event()
        self.unlocked.set()
        self.writes: list[dict[str, Any]] = []
        self.refuse: Exception | None = None  # what every write raises, when set

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'

    def row(self) -> Row:
        return Row(
            image=dict(self.image),
            record_id=self.record_id,
            etag=self.etag,
            modified_at=self.modified.replace(microsecond=0),
        )

    def change(self, values: dict[str, Any], at: datetime) -> None:
        self.image.update(values)
        self.version += 1
        self.modified = at

    async def read(self, emap: EntityMap, company: str, key: str, *, record_id: str | None = None) -> Row:
        return self.row()

    async def create(self, *args: Any, **kwargs: Any) -> tuple[str | None, str | None]:
        raise AssertionError("the record exists on both sides")

    async def update(
        self, emap: EntityMap, company: str, key: str, row: Row, payload: dict[str, Any]
    ) -> str | None:
        await self.unlocked.wait()  # the row is locked by a save in progress
        if self.refuse is not None:
            raise self.refuse
        if row.etag is not None and row.etag != self.etag:
            raise ConflictError("changed since", system=self.system.value, status=412, code="stale")
        self.writes.append(dict(payload))
        self.change(payload, datetime.now(UTC))
        return self.etag

    async def delete(self, *args: Any) -> None:
        raise AssertionError("no deletes here")


def _ledger(**changes: Any) -> LedgerEntry:
    base = LedgerEntry(
        record_key="ship_via|USMF|AIR",
        entity="ship_via",
        company="USMF",
        key="AIR",
        cds_id=CDS_ID,
        cds_image={"msdyn_description": "base"},
        scm_image={"ModeDescription": "base"},
        last_event_id="scm:0",
        last_source_timestamp=T - timedelta(minutes=5),
        cds_etag='W/"1"',
        scm_etag='W/"1"',
    )
    return dataclasses.replace(base, **changes)


@dataclasses.dataclass
class World:
    gate: SyncGate
    applier: Applier
    queue: SqliteQueue
    state: SqliteState
    cds: MemorySide
    scm: MemorySide


@pytest.fixture
async def world(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    policy: ConflictPolicy = request.param
    loaded = load_mappings(MAPPINGS)
    emap = loaded.maps["ship_via"].model_copy(update={"conflict_policy": policy})
    mappings = MappingSet(maps={"ship_via": emap})
    queue, state = SqliteQueue(tmp_path / "q.db"), SqliteState(tmp_path / "s.db")
    await queue.open()
    await state.open()
    await state.put_ledger(_ledger())
    cds = MemorySide(System.CDS, {"msdyn_name": "AIR", "msdyn_description": "base"}, CDS_ID)
    scm = MemorySide(System.SCM, {"dataAreaId": "usmf", "ModeCode": "AIR", "ModeDescription": "base"}, None)
    sides = Sides(cds=cds, scm=scm)  # MemorySide has only what the gate's path calls of Dataverse
    applier = Applier(mappings=mappings, state=state, sides=sides, own_ids=set())
    recovery = Recovery(mappings=mappings, state=state, sides=sides)
    gate = SyncGate(
        queue=queue,
        state=state,
        applier=applier,
        recovery=recovery,
        metrics=Metrics(),
        settings=SyncSettings(),
    )
    try:
        yield World(gate, applier, queue, state, cds, scm)
    finally:
        await queue.close()
        await state.close()


async def _meet(
    world: World, save_at: datetime, fno_at: datetime, budget_s: float = 20.0
) -> tuple[Any, asyncio.Task[Any]]:
    """F&O is edited at ``fno_at`` and its change is on its way into Dataverse (leased, its write
    waiting on the row); Dataverse's save of ``save_at`` is then in its synchronous step, queued
    behind it. Returns the gate's answer and the in-flight F&O -> Dataverse apply."""
    fno = fno_change(fno_at)
    world.scm.change({"ModeDescription": "scm"}, fno_at)
    await world.queue.enqueue(fno)
    [leased] = await world.queue.lease(1, 30)
    world.cds.unlocked.clear()  # the save holds the row from here until it commits or rolls back
    in_flight = asyncio.create_task(world.applier.apply(leased.event))
    await asyncio.sleep(0.05)  # it has read the ledger and is waiting on the row
    save = dataverse_save(save_at)
    await world.queue.enqueue(save)
    verdict = await world.gate.decide_ahead(save, datetime.now(UTC) + timedelta(seconds=budget_s))
    return verdict, in_flight


async def _queued(world: World) -> list[str]:
    return [e.event_id for e in await world.queue.pending_of("ship_via|USMF|AIR")]


async def _save_commits(world: World, at: datetime) -> None:
    world.cds.change({"msdyn_description": "cds"}, at)
    world.cds.unlocked.set()


@pytest.mark.parametrize(
    ("world", "save_at", "fno_at"),
    [
        (ConflictPolicy.NEWER_WINS, LATE, EARLY),
        (ConflictPolicy.CDS_WINS, EARLY, LATE),
    ],
    ids=["newer-wins-save-later", "cds-wins"],
    indirect=["world"],
)
async def test_a_winning_save_is_written_to_fno_at_once_and_the_write_on_its_way_is_skipped(
    world: World, save_at: datetime, fno_at: datetime
) -> None:
    verdict, in_flight = await _meet(world, save_at, fno_at)
    assert verdict is not None and (verdict.ok, verdict.status) == (True, 200)
    assert await _queued(world) == ["scm:1"]  # decided: the save is out of the queue
    assert "accepted: Finance and Operations changed this record" in verdict.message
    assert world.scm.image["ModeDescription"] == "cds"  # written to F&O before the answer
    assert not in_flight.done()  # still waiting on the row: the save did not wait for it
    await _save_commits(world, save_at)
    applied = await in_flight  # 412 once the save committed: the decision stands, no retry over it
    assert applied.result is Result.SKIPPED and "superseded" in applied.reason
    assert world.cds.image["msdyn_description"] == "cds" and world.cds.writes == []
    [conflict] = await world.state.failures()  # listed for admins: F&O's change lost
    assert (conflict.kind, conflict.event_id, conflict.direction) == ("conflict", "scm:1", "scm->cds")


@pytest.mark.parametrize(
    ("world", "save_at", "fno_at"),
    [
        (ConflictPolicy.NEWER_WINS, EARLY, LATE),
        (ConflictPolicy.SCM_WINS, LATE, EARLY),
    ],
    ids=["newer-wins-fno-later", "scm-wins"],
    indirect=["world"],
)
async def test_a_losing_save_is_refused_at_once_and_the_write_on_its_way_lands(
    world: World, save_at: datetime, fno_at: datetime
) -> None:
    verdict, in_flight = await _meet(world, save_at, fno_at)
    assert verdict is not None and (verdict.ok, verdict.status) == (False, 409)
    assert await _queued(world) == ["scm:1"]
    assert verdict.message.startswith("conflict: Finance and Operations changed this record at")
    assert world.scm.image["ModeDescription"] == "scm" and world.scm.writes == []  # F&O untouched
    assert not in_flight.done()
    world.cds.unlocked.set()  # Dataverse rolls the save back: the row is as it was
    applied = await in_flight
    assert applied.result is Result.APPLIED
    assert world.cds.image["msdyn_description"] == "scm"  # both sides hold F&O's change
    [conflict] = await world.state.failures()  # listed for admins: the save lost
    assert (conflict.kind, conflict.event_id, conflict.direction) == ("conflict", "cds:save", "cds->scm")


@pytest.mark.parametrize("world", [ConflictPolicy.SCM_WINS], indirect=True)
async def test_a_save_behind_changes_of_its_own_side_only_waits_its_turn(world: World) -> None:
    earlier = dataverse_save(EARLY).model_copy(update={"event_id": "cds:earlier", "mode": SyncMode.ASYNC})
    save = dataverse_save(LATE)
    await world.queue.enqueue(earlier)
    await world.queue.enqueue(save)
    assert await world.gate.decide_ahead(save, datetime.now(UTC) + timedelta(seconds=20)) is None
    assert [e.event_id for e in await world.queue.pending_of(save.record_key)] == ["cds:earlier", "cds:save"]


@pytest.mark.parametrize("world", [ConflictPolicy.SCM_WINS], indirect=True)
async def test_on_a_queue_that_cannot_show_a_record_the_save_waits_its_turn(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backend without ``RECORD_VIEW`` (Service Bus) is never asked for ``pending_of``: the gate
    steps aside instead of failing the save."""
    await world.queue.enqueue(fno_change(EARLY))
    save = dataverse_save(LATE)
    await world.queue.enqueue(save)
    monkeypatch.setattr(world.queue, "capabilities", world.queue.capabilities - {QueueCapability.RECORD_VIEW})

    async def refuse(record_key: str) -> list[ChangeEvent]:
        raise AssertionError("pending_of asked of a queue that does not declare it")

    monkeypatch.setattr(world.queue, "pending_of", refuse)
    assert await world.gate.decide_ahead(save, datetime.now(UTC) + timedelta(seconds=20)) is None


@pytest.mark.parametrize("world", [ConflictPolicy.NEWER_WINS], indirect=True)
async def test_a_winning_save_that_fno_rejects_is_refused_and_the_write_on_its_way_lands(
    world: World,
) -> None:
    world.scm.refuse = RejectedError("ModeDescription is too long", system="scm", status=400)
    verdict, in_flight = await _meet(world, LATE, EARLY)
    assert verdict is not None and (verdict.ok, verdict.status) == (False, 400)
    assert verdict.message == "Finance and Operations rejected the change: ModeDescription is too long"
    assert world.scm.image["ModeDescription"] == "scm" and world.scm.writes == []
    assert await world.state.get_journal("cds:save") is None  # nothing written: the undo entry is settled
    assert await _queued(world) == ["scm:1"]
    world.cds.unlocked.set()  # Dataverse rolls the save back
    applied = await in_flight
    assert applied.result is Result.APPLIED and world.cds.image["msdyn_description"] == "scm"
    [failure] = await world.state.failures()
    assert (failure.kind, failure.event_id) == ("rejected", "cds:save")


@pytest.mark.parametrize("world", [ConflictPolicy.NEWER_WINS], indirect=True)
async def test_a_winning_save_fno_cannot_take_in_the_budget_is_refused_and_left_queued_to_take_back(
    world: World,
) -> None:
    world.scm.refuse = RetryableError("503 Service Unavailable", system="scm", status=503)
    verdict, in_flight = await _meet(world, LATE, EARLY, budget_s=0.3)
    assert verdict is not None and (verdict.ok, verdict.status) == (False, 503)
    assert verdict.message == "Finance and Operations unavailable: 503 Service Unavailable"
    # F&O unreachable even for the take-back: the undo entry and the queued save stay, so the save's
    # turn (its originator gone) takes back whatever an attempt may have written.
    assert await world.state.get_journal("cds:save") is not None
    assert await _queued(world) == ["scm:1", "cds:save"]
    world.cds.unlocked.set()
    assert (await in_flight).result is Result.APPLIED
    [failure] = await world.state.failures()
    assert (failure.kind, failure.event_id) == ("retry-exhausted", "cds:save")
