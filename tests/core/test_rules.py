"""Echo, mapped change, no-op, staleness and conflict rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.core.events import ChangeEvent, Operation, System
from bridge.core.ledger import LedgerEntry
from bridge.core.mapping import ConflictPolicy, EntityMap, load_mappings
from bridge.core.rules import (
    changed_fields,
    detect_conflict,
    is_echo,
    is_noop,
    is_stale,
    is_superseded,
    mapped_change,
    resolve_conflict,
)

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
CDS, SCM = System.CDS, System.SCM
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
BOT = "6A1F0C3E-1111-5222-8333-444455556666"


@pytest.fixture(scope="module")
def ship_via() -> EntityMap:
    m = load_mappings(MAPPINGS).get("ship_via")
    assert m is not None
    return m


def event(**over: Any) -> ChangeEvent:
    fields: dict[str, Any] = {
        "event_id": "e1",
        "source": CDS,
        "entity": "ship_via",
        "company": "USMF",
        "key": "AIR",
        "operation": Operation.UPDATE,
        "source_timestamp": T0,
    }
    return ChangeEvent(**(fields | over))


def ledger(**over: Any) -> LedgerEntry:
    fields: dict[str, Any] = {
        "record_key": "ship_via|USMF|AIR",
        "entity": "ship_via",
        "company": "USMF",
        "key": "AIR",
        "cds_id": None,
        "cds_image": {"msdyn_description": "Air freight"},
        "scm_image": {"ModeDescription": "Air freight"},
        "last_source_timestamp": T0,
    }
    return LedgerEntry(**(fields | over))


# ---------------------------------------------------------------- changed_fields
def test_changed_fields_lists_new_values_of_differing_columns() -> None:
    before = {"a": 1, "b": 2, "gone": "x"}
    after = {"a": 1, "b": 3, "new": None, "added": "y"}
    assert changed_fields(before, after) == {"b": 3, "gone": None, "added": "y"}
    assert changed_fields(None, {"a": 1}) == {"a": 1}


# ---------------------------------------------------------------- echo
def test_change_by_the_bridge_itself_is_an_echo() -> None:
    assert is_echo(event(initiated_by=BOT.lower()), [BOT])
    assert is_echo(event(initiated_by="{" + BOT + "}"), {BOT.lower()})


def test_change_by_someone_else_or_unknown_is_not_an_echo() -> None:
    assert not is_echo(event(initiated_by="a-human"), [BOT])
    assert not is_echo(event(initiated_by=None), [BOT])
    assert not is_echo(event(initiated_by=BOT), [])


# ---------------------------------------------------------------- mapped change
def test_update_of_unmapped_columns_needs_no_write(ship_via: EntityMap) -> None:
    assert not mapped_change(ship_via, event(changed={"modifiedon": "x", "statecode": 0}))
    assert mapped_change(ship_via, event(changed={"msdyn_description": "new"}))


def test_mapped_change_falls_back_to_the_image_difference(ship_via: EntityMap) -> None:
    same = event(
        source=SCM, pre_image={"ModeDescription": "a", "X": 1}, image={"ModeDescription": "a", "X": 2}
    )
    assert not mapped_change(ship_via, same)
    diff = event(source=SCM, pre_image={"ModeDescription": "a"}, image={"ModeDescription": "b"})
    assert mapped_change(ship_via, diff)


def test_creates_deletes_and_unknown_changes_always_need_a_look(ship_via: EntityMap) -> None:
    assert mapped_change(ship_via, event(operation=Operation.CREATE))
    assert mapped_change(ship_via, event(operation=Operation.DELETE))
    assert mapped_change(ship_via, event(needs_fetch=True))


# ---------------------------------------------------------------- no-op
def test_projection_equal_to_the_ledger_is_a_noop(ship_via: EntityMap) -> None:
    assert is_noop(ship_via, SCM, {"ModeDescription": "Air freight"}, ledger())
    assert not is_noop(ship_via, SCM, {"ModeDescription": "Sea"}, ledger())


def test_without_ledger_or_after_delete_nothing_is_a_noop(ship_via: EntityMap) -> None:
    assert not is_noop(ship_via, CDS, {"msdyn_description": "Air freight"}, None)
    assert not is_noop(ship_via, CDS, {"msdyn_description": "Air freight"}, ledger(deleted=True))


def test_noop_compares_only_columns_flowing_out_and_missing_means_null(ship_via: EntityMap) -> None:
    entry = ledger(cds_image={})
    assert is_noop(ship_via, CDS, {"msdyn_description": None, "unmapped": 1}, entry)
    assert not is_noop(ship_via, CDS, {"msdyn_description": "x"}, entry)


# ---------------------------------------------------------------- staleness
def test_older_change_than_the_last_applied_is_stale() -> None:
    assert is_stale(event(source_timestamp=T0 - timedelta(seconds=1)), ledger())


def test_equal_or_newer_timestamps_are_not_stale() -> None:
    assert not is_stale(event(source_timestamp=T0), ledger())
    assert not is_stale(event(source_timestamp=T0 + timedelta(milliseconds=1)), ledger())
    assert not is_stale(event(), None)
    assert not is_stale(event(), ledger(last_source_timestamp=None))


def test_naive_timestamps_count_as_utc() -> None:
    naive = (T0 - timedelta(seconds=1)).replace(tzinfo=None)
    assert is_stale(event(source_timestamp=naive), ledger())


# ---------------------------------------------------------------- conflicts
def test_target_changed_since_sync_is_a_conflict(ship_via: EntityMap) -> None:
    assert detect_conflict(ship_via, SCM, {"ModeDescription": "changed in F&O"}, ledger())
    assert not detect_conflict(ship_via, SCM, {"ModeDescription": "Air freight"}, ledger())


def test_no_baseline_or_no_target_row_is_no_conflict(ship_via: EntityMap) -> None:
    assert not detect_conflict(ship_via, SCM, {"ModeDescription": "x"}, None)
    assert not detect_conflict(ship_via, SCM, {"ModeDescription": "x"}, ledger(deleted=True))
    assert not detect_conflict(ship_via, SCM, None, ledger())


def test_fixed_policies_pick_their_side_whatever_the_times() -> None:
    later = T0 + timedelta(hours=1)
    assert resolve_conflict(ConflictPolicy.CDS_WINS, SCM, later, T0) is CDS
    assert resolve_conflict(ConflictPolicy.SCM_WINS, CDS, later, T0) is SCM


@pytest.mark.parametrize(
    ("source", "source_ts", "target_ts", "winner"),
    [
        (SCM, T0 + timedelta(seconds=1), T0, SCM),
        (SCM, T0, T0 + timedelta(seconds=1), CDS),
        (CDS, T0, T0 + timedelta(seconds=1), SCM),
        (SCM, T0, T0, CDS),  # a tie goes to Dataverse
        (CDS, T0, T0.replace(tzinfo=None), CDS),
        (SCM, T0, None, SCM),  # an unknown time loses
        (SCM, None, T0, CDS),
        (SCM, None, None, CDS),
    ],
)
def test_newer_wins_by_timestamp(
    source: System, source_ts: datetime | None, target_ts: datetime | None, winner: System
) -> None:
    assert resolve_conflict(ConflictPolicy.NEWER_WINS, source, source_ts, target_ts) is winner


# ---------------------------------------------------------------- is_superseded
def test_a_change_made_before_the_bridge_wrote_to_that_side_is_superseded() -> None:
    # F&O changed at T0+1.5 s, then the bridge overwrote F&O at T0+2 s (it won a conflict there):
    # F&O's late notification of its own, losing change must not travel.
    written = ledger(scm_written_at=T0 + timedelta(seconds=2))
    assert is_superseded(event(source=SCM, source_timestamp=T0 + timedelta(seconds=1.5)), written)


def test_a_change_after_the_bridges_write_or_on_the_other_side_is_not_superseded() -> None:
    written = ledger(scm_written_at=T0 + timedelta(seconds=2))
    assert not is_superseded(event(source=SCM, source_timestamp=T0 + timedelta(seconds=2.1)), written)
    assert not is_superseded(event(source=CDS, source_timestamp=T0 + timedelta(seconds=1)), written)
    assert not is_superseded(event(source=SCM), ledger())  # the bridge never wrote to F&O
    assert not is_superseded(event(source=SCM), None)
