"""The StatePort contract, part two: failures' life cycle, the activity log, every map state, and the
migration of an older state.db. Runs against every backend ``bridge.state.factory`` knows, as
tests/contract/test_state_contract.py does (same factory, same reopen rule)."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.state.base import (
    UNRESOLVED,
    Activity,
    ActivityCategory,
    ActivityKind,
    FailureState,
    MapState,
    MapStatus,
    Resolution,
    StatePort,
)
from bridge.state.sqlite import SqliteState
from tests.contract.test_state_contract import T0, StateFactory, make_failure


@pytest.fixture
async def state(make_state: StateFactory) -> StatePort:
    return await make_state("main")


# ---- failures' life cycle ----------------------------------------------------------------------


async def test_a_new_failure_is_open_with_no_actor(state: StatePort) -> None:
    fid = await state.add_failure(make_failure(1))
    got = await state.get_failure(fid)
    assert got is not None and got.state is FailureState.OPEN
    assert (got.state_by, got.resolution, got.state_changed_at) == (None, None, None)


async def test_set_failure_state_stamps_who_and_when(state: StatePort) -> None:
    fid = await state.add_failure(make_failure(1))
    before = datetime.now(UTC)
    moved = await state.set_failure_state(
        [fid], state=FailureState.RETRYING, by="admin token", resolution=Resolution.RETRY
    )
    assert moved == [fid]
    got = await state.get_failure(fid)
    assert got is not None and got.state is FailureState.RETRYING
    assert (got.state_by, got.resolution) == ("admin token", Resolution.RETRY)
    assert got.state_changed_at is not None and got.state_changed_at >= before


async def test_set_failure_state_only_moves_failures_in_the_states_given(state: StatePort) -> None:
    fid = await state.add_failure(make_failure(1))
    await state.set_failure_state([fid], state=FailureState.DISCARDED, by="admin session 1")
    # discarded is final: a retry of it (only from open or retrying) does not move it
    assert await state.set_failure_state([fid], state=FailureState.RETRYING, by="x", only=UNRESOLVED) == []
    got = await state.get_failure(fid)
    assert got is not None and (got.state, got.state_by) == (FailureState.DISCARDED, "admin session 1")
    assert await state.set_failure_state([], state=FailureState.DISCARDED, by="x") == []
    assert await state.set_failure_state([fid + 99], state=FailureState.DISCARDED, by="x") == []


async def test_set_failure_state_by_event_id(state: StatePort) -> None:
    a = await state.add_failure(make_failure(1))  # event cds:1
    await state.add_failure(make_failure(2))
    moved = await state.set_failure_state(
        event_ids=["cds:1"], state=FailureState.RETRYING, by="admin token", resolution=Resolution.REPLAY
    )
    assert moved == [a]
    assert [f.id for f in await state.failures(states=[FailureState.RETRYING])] == [a]


async def test_list_and_count_filter_by_state(state: StatePort) -> None:
    ids = [await state.add_failure(make_failure(n)) for n in range(4)]
    await state.set_failure_state([ids[0]], state=FailureState.DISCARDED, by="t")
    await state.set_failure_state([ids[1]], state=FailureState.RETRYING, by="t", resolution=Resolution.RETRY)
    assert [f.id for f in await state.failures(states=[FailureState.OPEN])] == [ids[3], ids[2]]
    assert [f.id for f in await state.failures(states=UNRESOLVED)] == [ids[3], ids[2], ids[1]]
    assert len(await state.failures()) == 4  # no filter: every state
    assert await state.count_failures(states=UNRESOLVED) == 3
    assert await state.count_failures(states=[FailureState.DISCARDED]) == 1
    assert await state.count_failures(states=UNRESOLVED, since=T0 + timedelta(minutes=2)) == 2


async def test_a_later_success_resolves_the_records_open_failures(state: StatePort) -> None:
    first = await state.add_failure(make_failure(1))
    second = await state.add_failure(dataclasses.replace(make_failure(1), event_id="cds:1b"))
    other = await state.add_failure(make_failure(2))  # another record
    assert await state.resolve_record("warehouse", "USMF", "WH-1", resolution=Resolution.LATER_SUCCESS) == 2
    for fid in (first, second):
        got = await state.get_failure(fid)
        assert got is not None and got.state is FailureState.RESOLVED
        assert (got.resolution, got.state_by) == (Resolution.LATER_SUCCESS, None)
    untouched = await state.get_failure(other)
    assert untouched is not None and untouched.state is FailureState.OPEN
    # nothing left to resolve
    assert await state.resolve_record("warehouse", "USMF", "WH-1", resolution=Resolution.LATER_SUCCESS) == 0


async def test_resolving_keeps_who_retried_and_how(state: StatePort) -> None:
    discarded = await state.add_failure(dataclasses.replace(make_failure(1), event_id="cds:9"))
    await state.set_failure_state([discarded], state=FailureState.DISCARDED, by="admin token")
    fid = await state.add_failure(make_failure(1))
    await state.set_failure_state(
        [fid], state=FailureState.RETRYING, by="admin token", resolution=Resolution.RETRY
    )
    await state.resolve_record("warehouse", "USMF", "WH-1", resolution=Resolution.LATER_SUCCESS)
    got = await state.get_failure(fid)
    assert got is not None and got.state is FailureState.RESOLVED
    assert (got.resolution, got.state_by) == (Resolution.RETRY, "admin token")
    still = await state.get_failure(discarded)
    assert still is not None and still.state is FailureState.DISCARDED  # a discarded one stays so


async def test_a_new_failure_of_the_record_reopens_its_retrying_ones(state: StatePort) -> None:
    fid = await state.add_failure(make_failure(1))
    elsewhere = await state.add_failure(make_failure(2))
    await state.set_failure_state(
        [fid, elsewhere], state=FailureState.RETRYING, by="admin token", resolution=Resolution.RETRY
    )
    await state.add_failure(dataclasses.replace(make_failure(1), event_id="cds:1:retry:1:1"))
    got = await state.get_failure(fid)
    assert got is not None and got.state is FailureState.OPEN
    assert (got.resolution, got.state_by) == (None, None)
    other = await state.get_failure(elsewhere)
    assert other is not None and other.state is FailureState.RETRYING  # another record's retry goes on


# ---- activity ----------------------------------------------------------------------------------


def _applied(n: int, entity: str = "warehouse") -> Activity:
    return Activity(
        entity=entity,
        kind=ActivityKind.APPLIED,
        direction="cds->scm",
        key=f"USMF/WH-{n}",
        latency_s=0.25 + n,
        trace_id=f"{n:032x}",
        at=T0 + timedelta(seconds=n),
    )


async def test_activity_round_trips_newest_first(state: StatePort) -> None:
    paused = Activity("warehouse", ActivityKind.PAUSED, "F&O maintenance", actor="admin token", at=T0)
    await state.add_activity([paused, _applied(1)], keep=10)
    newest, oldest = await state.activity()
    assert newest == dataclasses.replace(_applied(1), id=newest.id)
    assert oldest == dataclasses.replace(paused, id=oldest.id)
    assert newest.id is not None and oldest.id is not None and newest.id > oldest.id


async def test_activity_defaults_its_time_to_now(state: StatePort) -> None:
    before = datetime.now(UTC)
    await state.add_activity([Activity("warehouse", ActivityKind.STARTED)], keep=10)
    [got] = await state.activity()
    assert got.at is not None and got.at >= before and got.actor is None


async def test_activity_filters_by_map_and_category_and_pages(state: StatePort) -> None:
    await state.add_activity([_applied(n) for n in range(3)], keep=10)
    await state.add_activity([_applied(9, "ship_via"), Activity("warehouse", ActivityKind.STOPPED)], keep=10)
    assert [a.key for a in await state.activity(entity="warehouse", category=ActivityCategory.CHANGE)] == [
        "USMF/WH-2",
        "USMF/WH-1",
        "USMF/WH-0",
    ]
    assert [a.kind for a in await state.activity(category=ActivityCategory.EVENT)] == [ActivityKind.STOPPED]
    assert [a.entity for a in await state.activity(entity="ship_via")] == ["ship_via"]
    page = await state.activity(entity="warehouse", offset=1, limit=2)
    assert [a.key for a in page] == ["USMF/WH-2", "USMF/WH-1"]
    assert await state.count_activity(entity="warehouse") == 4
    assert await state.count_activity(category=ActivityCategory.CHANGE) == 4


async def test_activity_keeps_the_last_n_per_map_and_category(state: StatePort) -> None:
    await state.add_activity([Activity("warehouse", ActivityKind.PAUSED, "first")], keep=3)
    for n in range(5):
        await state.add_activity([_applied(n)], keep=3)
    await state.add_activity([_applied(7, "ship_via")], keep=3)
    kept = await state.activity(entity="warehouse", category=ActivityCategory.CHANGE)
    assert [a.key for a in kept] == ["USMF/WH-4", "USMF/WH-3", "USMF/WH-2"]
    # the burst of applied changes did not push out the map's events, nor another map's changes
    assert [a.message for a in await state.activity(category=ActivityCategory.EVENT)] == ["first"]
    assert await state.count_activity(entity="ship_via") == 1
    await state.add_activity([_applied(n, "ship_via") for n in range(10, 16)], keep=2)
    assert [a.key for a in await state.activity(entity="ship_via")] == ["USMF/WH-15", "USMF/WH-14"]


# ---- map states and durability -----------------------------------------------------------------


@pytest.mark.parametrize("status", list(MapStatus))
async def test_every_map_status_is_stored_and_survives_reopen(
    make_state: StateFactory, status: MapStatus
) -> None:
    s = await make_state("durable")
    await s.set_map_state(MapState("warehouse", status, "why", T0))
    await s.close()
    s = await make_state("durable")
    assert await s.get_map_state("warehouse") == MapState("warehouse", status, "why", T0)


async def test_failure_states_and_activity_survive_reopen(make_state: StateFactory) -> None:
    s = await make_state("durable")
    fid = await s.add_failure(make_failure(1))
    await s.set_failure_state([fid], state=FailureState.DISCARDED, by="admin session ab12")
    await s.add_activity([_applied(1)], keep=5)
    await s.close()
    s = await make_state("durable")
    got = await s.get_failure(fid)
    assert got is not None and (got.state, got.state_by) == (FailureState.DISCARDED, "admin session ab12")
    assert [a.key for a in await s.activity()] == ["USMF/WH-1"]


# ---- migration (SQLite only: the double has no files) --------------------------------------------

OLD_FAILURES = """
CREATE TABLE failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT, entity TEXT NOT NULL, company TEXT NOT NULL, key TEXT NOT NULL,
    direction TEXT NOT NULL, operation TEXT NOT NULL, event_id TEXT NOT NULL, source_message TEXT,
    target_message TEXT, kind TEXT NOT NULL, correlation_id TEXT, attempts INTEGER NOT NULL,
    occurred_at TEXT NOT NULL, compensated INTEGER NOT NULL, details TEXT NOT NULL
);
INSERT INTO failures(entity, company, key, direction, operation, event_id, kind, attempts, occurred_at,
    compensated, details)
VALUES ('warehouse', 'USMF', 'WH-1', 'cds->scm', 'update', 'cds:1', 'rejected', 1,
    '2024-05-01T12:00:00.000000+00:00', 0, '{}');
"""


async def test_a_state_db_from_before_failure_states_opens_with_them_open(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as conn:  # a file as the release before this one wrote it
        conn.executescript(OLD_FAILURES)
    conn.close()
    store = SqliteState(path)
    await store.open()
    try:
        [old] = await store.failures()
        assert old.key == "WH-1" and old.state is FailureState.OPEN
        assert (
            await store.resolve_record("warehouse", "USMF", "WH-1", resolution=Resolution.RESYNC, by="t") == 1
        )
        assert await store.count_failures(states=[FailureState.RESOLVED]) == 1
        await store.add_activity([Activity("warehouse", ActivityKind.STARTED)], keep=5)
    finally:
        await store.close()
