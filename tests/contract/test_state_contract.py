"""The StatePort contract: every state backend runs these tests, built through its factory.

``TestStateContract`` runs them for every backend ``bridge.state.factory`` knows (``STATE_BUILDERS``):
a new backend is one module and one entry there, and these tests then run against it. ``make_state``
is ``make(name) -> opened StatePort`` where the same ``name`` reaches the same durable storage again
(after ``close``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bridge.core.ledger import LedgerEntry
from bridge.state.base import Failure, MapState, MapStatus, StatePort

StateFactory = Callable[[str], Awaitable[StatePort]]

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
PLUS2 = timezone(timedelta(hours=2))


def make_entry(
    key: str = "WH-1", *, cds_id: str | None = "7b0c5a8e-0000-4000-8000-000000000001"
) -> LedgerEntry:
    return LedgerEntry(
        record_key=f"warehouse|USMF|{key}",
        entity="warehouse",
        company="USMF",
        key=key,
        cds_id=cds_id,
        cds_image={
            "msdyn_name": "Main",
            "msdyn_capacity": 12.5,
            "_msdyn_site_value": None,
            "tags": ["a", "b"],
        },
        scm_image={"WarehouseName": "Main", "IsActive": "Yes", "nested": {"x": 1}},
        cds_written_at=T0,
        scm_written_at=T0 + timedelta(seconds=1),
        last_event_id="scm:abc",
        last_source_timestamp=T0 + timedelta(seconds=1),
        deleted=False,
        updated_at=T0 + timedelta(seconds=2),
    )


def make_failure(
    n: int, *, entity: str = "warehouse", at: datetime | None = None, corr: str | None = None
) -> Failure:
    return Failure(
        entity=entity,
        company="USMF",
        key=f"WH-{n}",
        direction="cds->scm",
        operation="update",
        event_id=f"cds:{n}",
        source_message="restored the last synced image",
        target_message=f"Site 'X{n}' does not exist",
        kind="rejected",
        correlation_id=corr,
        attempts=2,
        occurred_at=at or T0 + timedelta(minutes=n),
        compensated=True,
        details={"status": 400, "fields": ["InventSiteId"]},
    )


class StateContract:
    @pytest.fixture
    async def state(self, make_state: StateFactory) -> StatePort:
        return await make_state("main")

    async def test_implements_the_port(self, state: StatePort) -> None:
        assert isinstance(state, StatePort)

    # ---- ledger --------------------------------------------------------------------------------

    async def test_unknown_record_has_no_ledger(self, state: StatePort) -> None:
        assert await state.get_ledger("warehouse|USMF|nope") is None
        assert await state.find_ledger_by_cds_id("7b0c5a8e-0000-4000-8000-00000000ffff") is None

    async def test_ledger_entry_round_trips(self, state: StatePort) -> None:
        entry = make_entry()
        await state.put_ledger(entry)
        assert await state.get_ledger(entry.record_key) == entry

    async def test_ledger_keeps_both_sides_etags(self, state: StatePort) -> None:
        entry = replace(make_entry(), cds_etag='W/"1234"', scm_etag='W/"MSwy"')
        await state.put_ledger(entry)
        stored = await state.get_ledger(entry.record_key)
        assert stored is not None and (stored.cds_etag, stored.scm_etag) == ('W/"1234"', 'W/"MSwy"')

    async def test_put_ledger_replaces_the_records_entry(self, state: StatePort) -> None:
        await state.put_ledger(make_entry())
        newer = dataclasses.replace(make_entry(), scm_image={"WarehouseName": "Renamed"}, deleted=True)
        await state.put_ledger(newer)
        assert await state.get_ledger(newer.record_key) == newer

    async def test_put_ledger_stamps_updated_at_when_missing(self, state: StatePort) -> None:
        before = datetime.now(UTC)
        entry = dataclasses.replace(make_entry(), updated_at=None, cds_written_at=None)
        await state.put_ledger(entry)
        got = await state.get_ledger(entry.record_key)
        assert got is not None and got.updated_at is not None and got.updated_at >= before
        assert got.cds_written_at is None

    async def test_find_ledger_by_cds_id_follows_the_current_id(self, state: StatePort) -> None:
        first = make_entry()
        await state.put_ledger(make_entry("WH-2", cds_id="7b0c5a8e-0000-4000-8000-000000000002"))
        await state.put_ledger(first)
        assert await state.find_ledger_by_cds_id(str(first.cds_id)) == first
        moved = dataclasses.replace(first, cds_id="7b0c5a8e-0000-4000-8000-000000000009")
        await state.put_ledger(moved)
        assert await state.find_ledger_by_cds_id(str(first.cds_id)) is None
        assert await state.find_ledger_by_cds_id("7b0c5a8e-0000-4000-8000-000000000009") == moved

    # ---- failures ------------------------------------------------------------------------------

    async def test_failure_round_trips_with_an_assigned_id(self, state: StatePort) -> None:
        failure = make_failure(1, corr="corr-1")
        fid = await state.add_failure(failure)
        [got] = await state.failures()
        assert got == dataclasses.replace(failure, id=fid)

    async def test_failure_ids_increase_and_occurred_at_defaults_to_now(self, state: StatePort) -> None:
        before = datetime.now(UTC)
        a = await state.add_failure(dataclasses.replace(make_failure(1), occurred_at=None))
        b = await state.add_failure(make_failure(2))
        assert b > a
        [got] = [f for f in await state.failures() if f.id == a]
        assert got.occurred_at is not None and got.occurred_at >= before

    async def test_failures_are_paged_newest_first(self, state: StatePort) -> None:
        for n in (2, 0, 3, 1):  # added out of time order
            await state.add_failure(make_failure(n))
        assert [f.key for f in await state.failures(limit=2)] == ["WH-3", "WH-2"]
        assert [f.key for f in await state.failures(offset=2, limit=2)] == ["WH-1", "WH-0"]
        assert await state.failures(offset=4) == []

    async def test_failures_filter_by_map(self, state: StatePort) -> None:
        await state.add_failure(make_failure(1))
        await state.add_failure(make_failure(2, entity="ship_via"))
        assert [f.entity for f in await state.failures(entity="ship_via")] == ["ship_via"]

    async def test_count_failures_by_map_and_since(self, state: StatePort) -> None:
        for n in range(4):
            await state.add_failure(make_failure(n, entity="ship_via" if n == 3 else "warehouse"))
        assert await state.count_failures() == 4
        assert await state.count_failures(entity="warehouse") == 3
        assert await state.count_failures(since=T0 + timedelta(minutes=2)) == 2
        assert await state.count_failures(entity="warehouse", since=T0 + timedelta(minutes=2)) == 1
        assert await state.count_failures(since=T0 + timedelta(hours=1)) == 0
        assert await state.count_failures(exclude_kinds=("rejected",)) == 0  # make_failure's kind
        assert await state.count_failures(exclude_kinds=("conflict", "timeout")) == 4

    async def test_count_since_compares_instants_across_time_zones(self, state: StatePort) -> None:
        await state.add_failure(make_failure(0, at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC)))
        assert await state.count_failures(since=datetime(2024, 5, 1, 13, 59, tzinfo=PLUS2)) == 1
        assert await state.count_failures(since=datetime(2024, 5, 1, 14, 1, tzinfo=PLUS2)) == 0

    async def test_find_failures_by_correlation_id(self, state: StatePort) -> None:
        await state.add_failure(make_failure(1, corr="corr-A"))
        await state.add_failure(make_failure(2, corr="corr-B"))
        await state.add_failure(make_failure(3, corr="corr-A"))
        assert [f.key for f in await state.find_failures(correlation_id="corr-A")] == ["WH-3", "WH-1"]
        assert await state.find_failures(correlation_id="corr-Z") == []

    async def test_get_failure_by_id(self, state: StatePort) -> None:
        first = await state.add_failure(make_failure(1))
        await state.add_failure(make_failure(2))
        found = await state.get_failure(first)
        assert found is not None and (found.id, found.key) == (first, "WH-1")
        assert found.details == make_failure(1).details
        assert await state.get_failure(first + 1000) is None

    # ---- map states ----------------------------------------------------------------------------

    async def test_map_state_defaults_to_running(self, state: StatePort) -> None:
        got = await state.get_map_state("warehouse")
        assert got.entity == "warehouse" and got.status is MapStatus.RUNNING and got.reason is None

    async def test_map_state_is_stored_and_replaced(self, state: StatePort) -> None:
        paused = MapState("warehouse", MapStatus.PAUSED, "F&O maintenance", T0)
        await state.set_map_state(paused)
        assert await state.get_map_state("warehouse") == paused
        assert (await state.get_map_state("ship_via")).status is MapStatus.RUNNING
        await state.set_map_state(MapState("warehouse", MapStatus.STOPPED, None, None))
        got = await state.get_map_state("warehouse")
        assert got.status is MapStatus.STOPPED and got.reason is None and got.changed_at is not None

    # ---- undo journal --------------------------------------------------------------------------

    async def test_journal_put_get_drop(self, state: StatePort) -> None:
        entry = {"target": "scm", "before": {"WarehouseName": "Old"}, "ledger_before": None, "deleted": False}
        assert await state.get_journal("cds:1") is None
        assert await state.put_journal("cds:1", entry) is True
        assert await state.get_journal("cds:1") == entry
        # An earlier attempt's entry is the true "before": a later one never replaces it.
        assert await state.put_journal("cds:1", {**entry, "before": {"WarehouseName": "New"}}) is False
        assert await state.get_journal("cds:1") == entry
        await state.drop_journal("cds:1")
        assert await state.get_journal("cds:1") is None
        await state.drop_journal("cds:1")  # dropping twice is harmless

    async def test_a_ledger_write_can_settle_an_undo_entry_with_it(self, state: StatePort) -> None:
        await state.put_journal("cds:1", {"target": "scm"})
        await state.put_journal("cds:2", {"target": "scm"})
        await state.put_ledger(make_entry(), drop_journal_of="cds:1")
        assert await state.get_ledger(make_entry().record_key) == make_entry()
        assert await state.get_journal("cds:1") is None
        assert await state.get_journal("cds:2") == {"target": "scm"}  # only the one named
        await state.put_ledger(make_entry(), drop_journal_of="cds:9")  # none there: harmless
        assert await state.get_journal("cds:2") == {"target": "scm"}

    # ---- durability ----------------------------------------------------------------------------

    async def test_everything_survives_reopen(self, make_state: StateFactory) -> None:
        s = await make_state("durable")
        await s.put_ledger(make_entry())
        fid = await s.add_failure(make_failure(1, corr="c"))
        await s.set_map_state(MapState("warehouse", MapStatus.PAUSED, "why", T0))
        await s.put_journal("cds:1", {"a": 1})
        await s.close()
        s = await make_state("durable")
        assert await s.get_ledger(make_entry().record_key) == make_entry()
        assert [f.id for f in await s.find_failures(correlation_id="c")] == [fid]
        assert (await s.get_map_state("warehouse")).status is MapStatus.PAUSED
        assert await s.get_journal("cds:1") == {"a": 1}


class TestStateContract(StateContract):
    """Every backend of ``STATE_BUILDERS`` (``make_state`` in tests/contract/conftest.py)."""
