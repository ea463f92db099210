"""The StatePort contract for alert rules and parked conflicts (issue 20, items 6 and 7): every state
backend ``bridge.state.factory`` knows runs these, built through its factory, and a store opened
again on the same storage sees what the last one wrote (the restart an admin relies on)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bridge.state.base import ConflictStatus, ParkedConflict, StatePort, StoredAlertRule
from tests.contract.test_state_contract import StateFactory

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
PAUSE = StoredAlertRule(entity="warehouse", failures=3, minutes=5, action="pause")
HOOK = StoredAlertRule(entity="*", failures=1, minutes=10, action="webhook", url="https://hooks.example/x")


def conflict(key: str = "WH-1", *, name: str = "Main", event_id: str = "cds:1") -> ParkedConflict:
    return ParkedConflict(
        entity="warehouse",
        company="USMF",
        key=key,
        cds_values={"msdyn_name": name, "msdyn_capacity": 12.5},
        scm_values={"WarehouseName": "Other", "Capacity": 7},
        event_id=event_id,
        cds_modified_at=T0,
        scm_modified_at=T0 + timedelta(seconds=1),
        detected_at=T0 + timedelta(seconds=2),
    )


@pytest.fixture
async def state(make_state: StateFactory) -> StatePort:
    return await make_state("main")


# ---- alert rules -------------------------------------------------------------------------------


async def test_a_new_store_has_no_rule_set(state: StatePort) -> None:
    assert await state.alert_rules() is None


async def test_seeding_stores_the_rules_once(state: StatePort) -> None:
    assert await state.seed_alert_rules([PAUSE, HOOK]) is True
    stored = await state.alert_rules()
    assert stored is not None
    assert [replace(r, id=None) for r in stored] == [PAUSE, HOOK]
    assert all(r.id is not None for r in stored)
    assert await state.seed_alert_rules([PAUSE]) is False  # seeded already: settings do not overwrite
    assert len(await state.alert_rules() or []) == 2


async def test_seeding_nothing_still_counts_as_a_rule_set(state: StatePort) -> None:
    assert await state.seed_alert_rules([]) is True
    assert await state.alert_rules() == []
    assert await state.seed_alert_rules([PAUSE]) is False


async def test_put_inserts_then_replaces_a_rule(state: StatePort) -> None:
    rid = await state.put_alert_rule(PAUSE)
    assert rid is not None
    assert await state.alert_rules() == [replace(PAUSE, id=rid)]
    changed = replace(PAUSE, id=rid, failures=9, action="log")
    assert await state.put_alert_rule(changed) == rid
    assert await state.alert_rules() == [changed]
    assert await state.seed_alert_rules([HOOK]) is False  # changed through the API: the store wins


async def test_put_of_an_unknown_id_changes_nothing(state: StatePort) -> None:
    assert await state.put_alert_rule(replace(PAUSE, id=999)) is None
    assert await state.alert_rules() is None


async def test_several_rules_per_map(state: StatePort) -> None:
    a = await state.put_alert_rule(PAUSE)
    b = await state.put_alert_rule(replace(PAUSE, action="log", failures=1))
    assert a != b
    assert [r.id for r in await state.alert_rules() or []] == [a, b]


async def test_delete_a_rule(state: StatePort) -> None:
    await state.seed_alert_rules([PAUSE, HOOK])
    first = (await state.alert_rules() or [])[0]
    assert first.id is not None
    assert await state.delete_alert_rule(first.id) is True
    assert await state.delete_alert_rule(first.id) is False
    assert [replace(r, id=None) for r in await state.alert_rules() or []] == [HOOK]


async def test_deleting_every_rule_leaves_an_empty_rule_set(state: StatePort) -> None:
    rid = await state.put_alert_rule(PAUSE)
    assert rid is not None
    await state.delete_alert_rule(rid)
    assert await state.alert_rules() == []
    assert await state.seed_alert_rules([HOOK]) is False


# ---- parked conflicts --------------------------------------------------------------------------


async def test_a_parked_conflict_round_trips(state: StatePort) -> None:
    cid = await state.park_conflict(conflict())
    got = await state.get_conflict(cid)
    assert got == replace(conflict(), id=cid)
    assert got.status is ConflictStatus.OPEN
    assert await state.open_conflict_of("warehouse|USMF|WH-1") == got
    assert await state.get_conflict(cid + 100) is None


async def test_detected_at_defaults_to_now(state: StatePort) -> None:
    before = datetime.now(UTC)
    cid = await state.park_conflict(replace(conflict(), detected_at=None))
    got = await state.get_conflict(cid)
    assert got is not None and got.detected_at is not None and got.detected_at >= before


async def test_one_open_conflict_per_record_takes_the_newest_versions(state: StatePort) -> None:
    first = await state.park_conflict(conflict())
    again = await state.park_conflict(conflict(name="Newer", event_id="scm:2"))
    assert again == first
    got = await state.get_conflict(first)
    assert got is not None and got.cds_values["msdyn_name"] == "Newer" and got.event_id == "scm:2"
    other = await state.park_conflict(conflict("WH-2"))
    assert other != first
    assert [c.id for c in await state.conflicts()] == [other, first]  # newest first


async def test_conflicts_filter_by_map_and_status(state: StatePort) -> None:
    a = await state.park_conflict(conflict())
    b = await state.park_conflict(replace(conflict("WH-2"), entity="site"))
    assert await state.close_conflict(a, winner="scm", by="admin", at=T0)
    assert [c.id for c in await state.conflicts(entity="site")] == [b]
    assert [c.id for c in await state.conflicts(status=ConflictStatus.OPEN)] == [b]
    assert [c.id for c in await state.conflicts(status=ConflictStatus.RESOLVED)] == [a]
    assert [c.id for c in await state.conflicts(limit=1)] == [b]


async def test_closing_records_who_and_when_once(state: StatePort) -> None:
    cid = await state.park_conflict(conflict())
    assert await state.close_conflict(cid, winner="cds", by="session:admin", at=T0) is True
    got = await state.get_conflict(cid)
    assert got is not None
    assert (got.status, got.winner, got.resolved_by, got.resolved_at) == (
        ConflictStatus.RESOLVED,
        "cds",
        "session:admin",
        T0,
    )
    assert await state.close_conflict(cid, winner="scm", by="x", at=T0) is False
    assert await state.close_conflict(cid + 100, winner="scm", by="x", at=T0) is False
    assert await state.open_conflict_of(got.record_key) is None
    # A later conflict of the same record is a new one.
    assert await state.park_conflict(conflict()) != cid


async def test_rules_and_conflicts_survive_reopen(make_state: StateFactory) -> None:
    s = await make_state("durable")
    rid = await s.put_alert_rule(HOOK)
    cid = await s.park_conflict(conflict())
    await s.close()
    s = await make_state("durable")
    assert await s.alert_rules() == [replace(HOOK, id=rid)]
    assert await s.get_conflict(cid) == replace(conflict(), id=cid)
    assert await s.seed_alert_rules([PAUSE]) is False
