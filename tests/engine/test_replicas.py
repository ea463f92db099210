"""Synchronous changes across replicas (bridge/engine/ownership.py): two engines share one queue and
one state store (the in-memory doubles on shared data, as two processes share PostgreSQL), each
with its own lease owner id and its own clients of the same two systems.

The replica that holds the originator's webhook call applies the change; another one that meets it
hands it back, and settles it (exactly once) only after its owner can no longer be waiting."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.core.errors import RetryableError
from bridge.core.events import ChangeEvent, Operation, SyncMode, System
from bridge.core.kinds import FailureKind
from bridge.core.mapping import EntityMap, LookupSpec, load_mappings
from bridge.engine import ownership
from bridge.engine.apply import Applier
from bridge.engine.recovery import Recovery
from bridge.engine.sideports import Row, Sides
from bridge.engine.worker import Engine
from bridge.metrics import Metrics
from bridge.queue.memory import MemoryQueue, MemoryQueueData
from bridge.settings import SyncSettings
from bridge.state.memory import MemoryState, MemoryStateData

MAPPINGS = load_mappings(Path(__file__).resolve().parents[2] / "mappings")
T0 = datetime(2026, 1, 5, 8, 0, 0, tzinfo=UTC)


@dataclasses.dataclass
class System_:
    """One system's records, shared by every replica's client of it; who wrote what, in order."""

    rows: dict[str, Row] = dataclasses.field(default_factory=dict)
    writes: list[tuple[str, str, Any]] = dataclasses.field(default_factory=list)  # (replica, key, value)
    gate: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)  # writes wait while clear
    hang_after_write: str | None = None  # this replica's write lands, then its call never returns

    def __post_init__(self) -> None:
        self.gate.set()


class Side:
    """A replica's client of one system."""

    def __init__(self, system: System, shared: System_, replica: str) -> None:
        self._system, self.shared, self.replica = system, shared, replica

    @property
    def system(self) -> System:
        return self._system

    async def read(
        self, emap: EntityMap, company: str, key: str, *, record_id: str | None = None
    ) -> Row | None:
        return self.shared.rows.get(key)

    async def _write(self, key: str, row: Row | None) -> None:
        await self.shared.gate.wait()
        if row is None:
            self.shared.rows.pop(key, None)
        else:
            self.shared.rows[key] = row
        value = None if row is None else row.image.get("ModeDescription", row.image.get("msdyn_description"))
        self.shared.writes.append((self.replica, key, value))
        if self.shared.hang_after_write == self.replica:
            await asyncio.Event().wait()  # the process dies here, its answer never comes

    async def create(
        self,
        emap: EntityMap,
        company: str,
        key: str,
        payload: dict[str, Any],
        *,
        record_id: str | None = None,
    ) -> tuple[str | None, str | None]:
        await self._write(key, Row(image=dict(payload), record_id=record_id, etag='"1"'))
        return record_id, '"1"'

    async def update(
        self, emap: EntityMap, company: str, key: str, row: Row, payload: dict[str, Any]
    ) -> str | None:
        await self._write(key, Row(image={**row.image, **payload}, record_id=row.record_id, etag='"2"'))
        return '"2"'

    async def delete(self, emap: EntityMap, company: str, key: str, row: Row) -> None:
        await self._write(key, None)


class DataverseSide(Side):
    async def read_by_id(self, emap: EntityMap, record_id: str) -> Row | None:
        return next((r for r in self.shared.rows.values() if r.record_id == record_id), None)

    async def company_code(self, company_id: str) -> str | None:
        return "USMF"

    async def natural_key(self, spec: LookupSpec, guid: str) -> str | None:
        return None

    async def guid_of(self, spec: LookupSpec, company: str, natural: str) -> str | None:
        return None


@dataclasses.dataclass
class Cluster:
    queue_data: MemoryQueueData
    state: MemoryState
    cds: System_
    scm: System_
    settings: SyncSettings
    engines: list[Engine] = dataclasses.field(default_factory=list)

    def replica(self, name: str) -> Engine:
        """A replica on the shared queue and state, not started."""
        queue = MemoryQueue(self.queue_data, owner=name)
        sides = Sides(cds=DataverseSide(System.CDS, self.cds, name), scm=Side(System.SCM, self.scm, name))
        engine = Engine(
            queue=queue,
            state=self.state,
            applier=Applier(mappings=MAPPINGS, state=self.state, sides=sides, own_ids=set()),
            recovery=Recovery(mappings=MAPPINGS, state=self.state, sides=sides),
            metrics=Metrics(maps=MAPPINGS.maps),
            settings=self.settings,
        )
        self.engines.append(engine)
        return engine


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    settings = SyncSettings(sync_budget_s=2.0, lease_s=1.0, backoff_initial_s=0.05, backoff_max_s=0.2)
    world = Cluster(MemoryQueueData(), MemoryState(MemoryStateData()), System_(), System_(), settings)
    yield world
    world.cds.gate.set()
    world.scm.gate.set()
    for engine in world.engines:
        with contextlib.suppress(Exception):
            await engine.stop()


def dataverse_change(n: int, value: str, *, mode: SyncMode, op: Operation = Operation.UPDATE) -> ChangeEvent:
    return ChangeEvent(
        event_id=f"cds:{n}",
        source=System.CDS,
        entity="ship_via",
        company="USMF",
        key="AIR",
        record_id="7b0c5a8e-0000-4000-8000-000000000001",
        operation=op,
        mode=mode,
        changed={"msdyn_description": value},
        image={"msdyn_name": "AIR", "msdyn_description": value},
        source_timestamp=T0 + timedelta(seconds=n),
    )


async def until(condition: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {condition}"
        await asyncio.sleep(0.01)


def crash(engine: Engine) -> None:
    """The replica's process dies: its tasks end where they are, its leases stay held until they
    run out (nothing is handed back, unlike ``stop``)."""
    for task in [engine._task, *engine._inflight, *engine._claims]:  # a kill -9
        if task is not None:
            task.cancel()


async def test_a_save_behind_a_busy_record_is_applied_by_the_replica_holding_its_call(
    cluster: Cluster,
) -> None:
    b = cluster.replica("replica-b")
    await b.start()
    cluster.scm.gate.clear()  # F&O is slow: b's write of the record's earlier change is in flight
    assert (
        await b.submit(dataverse_change(1, "created", mode=SyncMode.ASYNC, op=Operation.CREATE))
    ).status == 202
    await until(lambda: b._inflight)
    a = cluster.replica("replica-a")
    await a.start()
    save = asyncio.create_task(a.submit(dataverse_change(2, "saved", mode=SyncMode.SYNC)))
    await asyncio.sleep(0.1)  # queued behind the earlier change, which b holds
    cluster.scm.gate.set()  # b finishes it; b's worker loop then meets the save first
    answer = await save
    assert (answer.status, answer.accepted) == (200, True), answer.message
    assert cluster.scm.rows["AIR"].image["ModeDescription"] == "saved"
    # b wrote its change, a (the owner) wrote the save; nobody reverted anything
    assert cluster.scm.writes == [("replica-b", "AIR", "created"), ("replica-a", "AIR", "saved")]
    assert await cluster.state.failures(entity="ship_via") == []
    assert await cluster.state.get_journal("cds:2") is None


async def test_a_save_its_owner_retries_is_applied_by_its_owner_after_the_backoff(cluster: Cluster) -> None:
    a, b = cluster.replica("replica-a"), cluster.replica("replica-b")
    await a.start()
    await b.start()
    cluster.scm.rows["AIR"] = Row(image={"ModeCode": "AIR", "ModeDescription": "old"}, etag='"1"')
    failures = iter([RetryableError("F&O 503", system="scm", status=503)])
    real = Side.update

    async def once_unavailable(self: Side, *args: Any) -> str | None:
        exc = next(failures, None)
        if exc is not None:
            raise exc
        return await real(self, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Side, "update", once_unavailable)
        answer = await a.submit(dataverse_change(3, "retried", mode=SyncMode.SYNC))
    assert answer.status == 200, answer.message
    assert cluster.scm.writes == [("replica-a", "AIR", "retried")]


async def test_a_replica_that_dies_mid_call_leaves_its_write_reverted_exactly_once(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ownership, "CLOCK_GRACE", timedelta(seconds=0.2))
    a, b = cluster.replica("replica-a"), cluster.replica("replica-b")
    await a.start()
    await a.submit(dataverse_change(3, "before", mode=SyncMode.ASYNC, op=Operation.CREATE))
    await until(lambda: cluster.queue_data.events == {})  # synced: the ledger knows the record
    cluster.scm.hang_after_write = "replica-a"  # a's write lands in F&O, then a dies
    call = asyncio.create_task(a.submit(dataverse_change(4, "lost", mode=SyncMode.SYNC)))
    await until(lambda: len(cluster.scm.writes) == 2)
    crash(a)
    call.cancel()  # the webhook call died with it: Dataverse rolls the save back
    assert await cluster.state.get_journal("cds:4") is not None  # journalled before the write
    await b.start()
    # a's lease runs out after 1 s; the save's 2 s budget then still runs: b hands it back, keeps it
    await asyncio.sleep(1.4)
    assert cluster.scm.rows["AIR"].image["ModeDescription"] == "lost"
    assert [w[0] for w in cluster.scm.writes] == ["replica-a", "replica-a"]
    # past the deadline b settles it: the write is taken back, once
    await until(lambda: len(cluster.scm.writes) == 3)
    await until(lambda: cluster.queue_data.events == {})
    c = cluster.replica("replica-c")
    await c.start()
    await asyncio.sleep(0.3)
    assert cluster.scm.writes == [
        ("replica-a", "AIR", "before"),
        ("replica-a", "AIR", "lost"),
        ("replica-b", "AIR", "before"),
    ]
    assert cluster.scm.rows["AIR"].image["ModeDescription"] == "before"
    assert await cluster.state.get_journal("cds:4") is None
    [failure] = await cluster.state.failures(entity="ship_via")
    assert FailureKind(failure.kind) is FailureKind.TIMEOUT


async def test_a_save_meeting_an_fno_write_in_flight_on_another_replica_is_decided_at_once(
    cluster: Cluster,
) -> None:
    """The rule of the hardening issue across replicas: b's F&O -> Dataverse write waits on the row
    the save holds, so a must decide the save without queueing it behind that write."""
    a, b = cluster.replica("replica-a"), cluster.replica("replica-b")
    await b.start()
    await a.start()
    cluster.cds.rows["AIR"] = Row(image={"msdyn_name": "AIR", "msdyn_description": "base"}, etag='"1"')
    cluster.cds.gate.clear()  # Dataverse's row is locked by the save in progress
    fno = ChangeEvent(
        event_id="scm:1",
        source=System.SCM,
        entity="ship_via",
        company="USMF",
        key="AIR",
        operation=Operation.UPDATE,
        changed={"ModeDescription": "fno"},
        image={"dataAreaId": "usmf", "ModeCode": "AIR", "ModeDescription": "fno"},
        source_timestamp=T0,
    )
    assert (await b.submit(fno)).status == 202
    await until(lambda: b._inflight)
    started = asyncio.get_running_loop().time()
    answer = await a.submit(dataverse_change(5, "saved later", mode=SyncMode.SYNC))
    assert asyncio.get_running_loop().time() - started < cluster.settings.sync_budget_s / 2
    assert answer.status == 200 and "policy is newer-wins" in answer.message
    assert cluster.scm.writes == [("replica-a", "AIR", "saved later")]
    cluster.cds.gate.set()  # the save commits; b's write of the older F&O change is skipped


async def test_a_replica_stopping_hands_its_leases_back_to_the_others_at_once(cluster: Cluster) -> None:
    a, b = cluster.replica("replica-a"), cluster.replica("replica-b")
    await a.start()
    cluster.scm.gate.clear()
    assert (
        await a.submit(dataverse_change(6, "handed", mode=SyncMode.ASYNC, op=Operation.CREATE))
    ).status == 202
    await until(lambda: a._inflight)
    assert await a.stop(grace_s=0.05) == 1  # cancelled in flight, and its lease handed back
    cluster.scm.gate.set()
    await b.start()
    await until(lambda: cluster.scm.writes, timeout=0.9)  # well before a's 1 s lease would run out
    assert cluster.scm.writes == [("replica-b", "AIR", "handed")]
