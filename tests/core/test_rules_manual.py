"""The manual conflict policy's pure decisions: no side wins on its own, and the administrator's
winning version (the winner's row with edits to the plain columns that flow out of it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.core.events import System
from bridge.core.mapping import ConflictPolicy, EntityMap, load_mappings
from bridge.core.rules import editable_columns, resolve_conflict, resolved_values

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def maps() -> dict[str, EntityMap]:
    return dict(load_mappings(MAPPINGS).maps)


@pytest.mark.parametrize("source", [System.CDS, System.SCM])
@pytest.mark.parametrize(
    "times", [(T0, T0 + timedelta(seconds=1)), (T0 + timedelta(seconds=1), T0), (None, None)]
)
def test_manual_picks_no_side_whatever_the_times(source: System, times: tuple[datetime | None, ...]) -> None:
    assert resolve_conflict(ConflictPolicy.MANUAL, source, times[0], times[1]) is None


def test_the_other_policies_still_pick_a_side() -> None:
    for policy in (ConflictPolicy.NEWER_WINS, ConflictPolicy.CDS_WINS, ConflictPolicy.SCM_WINS):
        assert resolve_conflict(policy, System.CDS, T0, T0) in (System.CDS, System.SCM)


def test_manual_is_a_policy_a_mapping_file_may_name(maps: dict[str, EntityMap]) -> None:
    data = maps["ship_via"].model_dump()
    data["conflict_policy"] = "manual"
    assert EntityMap.model_validate(data).conflict_policy is ConflictPolicy.MANUAL


def test_the_winner_with_edits_over_its_current_row(maps: dict[str, EntityMap]) -> None:
    ship_via = maps["ship_via"]
    current = {"ModeCode": "AIR", "ModeDescription": "fno", "dataAreaId": "usmf"}
    assert resolved_values(ship_via, System.SCM, current, {}) == current
    edited = resolved_values(ship_via, System.SCM, current, {"ModeDescription": "agreed"})
    assert edited == {**current, "ModeDescription": "agreed"}
    assert current["ModeDescription"] == "fno"  # the row read is not changed


def test_edits_of_columns_that_do_not_flow_out_are_refused(maps: dict[str, EntityMap]) -> None:
    ship_via = maps["ship_via"]
    with pytest.raises(ValueError, match=r"not an editable cds column of ship_via: ModeDescription, nope"):
        resolved_values(ship_via, System.CDS, {}, {"nope": 1, "ModeDescription": "x"})


def test_lookups_are_not_editable(maps: dict[str, EntityMap]) -> None:
    with_lookup = next(m for m in maps.values() if any(f.lookup for f in m.fields))
    lookup = next(f for f in with_lookup.fields if f.lookup)
    for side in (System.CDS, System.SCM):
        assert lookup.column(side) not in editable_columns(with_lookup, side)
        plain = [f.column(side) for f in with_lookup.fields_from(side) if f.lookup is None]
        assert set(plain) == set(editable_columns(with_lookup, side))
