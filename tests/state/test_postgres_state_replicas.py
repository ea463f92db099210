"""The PostgreSQL state store shared by several replicas (real PostgreSQL, tests/pg_support.py): what two
bridges may do at once is decided once, by the database: one undo entry per change, one rule set
seeded, one open conflict per record, one resolution of a failure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest

from bridge.settings import StorageSettings
from bridge.state.base import FailureState, ParkedConflict, StoredAlertRule
from bridge.state.factory import build_state
from bridge.state.postgres import PostgresState
from tests.contract.test_state_contract import make_entry, make_failure
from tests.pg_support import SchemaFactory, pg_schemas, pg_settings

__all__ = ["pg_schemas"]

ReplicaFactory = Callable[[int], Awaitable[list[PostgresState]]]


@pytest.fixture
async def replicas(pg_schemas: SchemaFactory) -> AsyncIterator[ReplicaFactory]:
    opened: list[PostgresState] = []
    settings = pg_settings(pg_schemas("shared"))

    async def make(n: int) -> list[PostgresState]:
        states = []
        for _ in range(n):
            state = build_state("postgres", StorageSettings(), settings=settings)
            assert isinstance(state, PostgresState)
            states.append(state)
        await asyncio.gather(*(s.open() for s in states))  # their migrations race: one applies
        opened.extend(states)
        return states

    yield make
    for state in opened:
        await state.close()


async def test_one_replicas_writes_are_the_others_reads(replicas: ReplicaFactory) -> None:
    a, b = await replicas(2)
    entry = make_entry()
    await a.put_ledger(entry)
    assert await b.get_ledger(entry.record_key) == entry
    fid = await b.add_failure(make_failure(1))
    assert [f.id for f in await a.failures()] == [fid]


async def test_one_undo_entry_per_change_when_replicas_write_it_at_once(replicas: ReplicaFactory) -> None:
    states = await replicas(3)
    stored = await asyncio.gather(*(s.put_journal("cds:1", {"by": i}) for i, s in enumerate(states)))
    assert sorted(stored) == [False, False, True]
    assert await states[0].get_journal("cds:1") == {"by": stored.index(True)}
    assert await states[1].journal_ids() == ["cds:1"]


async def test_the_rule_set_is_seeded_once_by_replicas_starting_together(replicas: ReplicaFactory) -> None:
    states = await replicas(3)
    rules = [StoredAlertRule(entity="*", failures=10, minutes=15, action="pause")]
    seeded = await asyncio.gather(*(s.seed_alert_rules(rules) for s in states))
    assert sorted(seeded) == [False, False, True]
    stored = await states[2].alert_rules()
    assert stored is not None and [(r.entity, r.failures) for r in stored] == [("*", 10)]


async def test_a_records_conflict_parked_by_two_replicas_is_one_open_conflict(
    replicas: ReplicaFactory,
) -> None:
    a, b = await replicas(2)

    def conflict(event_id: str) -> ParkedConflict:
        return ParkedConflict(
            entity="warehouse",
            company="USMF",
            key="WH-1",
            cds_values={"msdyn_name": "A"},
            scm_values={"WarehouseName": "B"},
            event_id=event_id,
            detected_at=datetime.now(UTC),
        )

    ids = await asyncio.gather(a.park_conflict(conflict("cds:1")), b.park_conflict(conflict("scm:2")))
    assert ids[0] == ids[1]
    assert len(await a.conflicts()) == 1


async def test_a_failure_is_retried_by_one_replica_only(replicas: ReplicaFactory) -> None:
    a, b = await replicas(2)
    fid = await a.add_failure(make_failure(1))
    only_open = [FailureState.OPEN]
    moved = await asyncio.gather(
        a.set_failure_state([fid], state=FailureState.RETRYING, by="admin token", only=only_open),
        b.set_failure_state([fid], state=FailureState.RETRYING, by="admin session 1a2b3c4d", only=only_open),
    )
    assert sorted(moved) == [[], [fid]]
    got = await b.get_failure(fid)
    assert got is not None and got.state is FailureState.RETRYING
