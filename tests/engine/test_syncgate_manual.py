"""A synchronous save meeting a pending change of the other side under ``conflict_policy: manual``:
accepted at once, nothing written to F&O, the conflict parked with both versions; the pending change
then meets it and updates the same parked conflict, writing nothing either."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.core.entitymap import ConflictPolicy
from bridge.engine.apply import Result
from bridge.engine.syncgate import decide
from bridge.state.base import ConflictStatus
from tests.engine.test_syncgate import (
    EARLY,
    LATE,
    World,
    _meet,
    _queued,
    _save_commits,
    dataverse_save,
    fno_change,
)
from tests.engine.test_syncgate import world as world


@pytest.mark.parametrize(
    ("save_at", "fno_at"), [(LATE, EARLY), (EARLY, LATE)], ids=["save-later", "fno-later"]
)
def test_under_manual_the_save_is_accepted_and_parked_whatever_the_times(
    save_at: datetime, fno_at: datetime
) -> None:
    decision = decide(ConflictPolicy.MANUAL, dataverse_save(save_at), [fno_change(fno_at)])
    assert decision is not None and decision.parked and not decision.save_wins
    assert decision.reason.startswith("accepted: Finance and Operations changed this record at")
    assert decision.reason.endswith("and the map's policy is manual")


@pytest.mark.parametrize("world", [ConflictPolicy.MANUAL], indirect=True)
async def test_a_conflicting_save_is_accepted_at_once_parked_and_nothing_is_written(world: World) -> None:
    verdict, in_flight = await _meet(world, LATE, EARLY)

    assert verdict is not None and (verdict.ok, verdict.status) == (True, 200)
    assert "conflict parked for an administrator" in verdict.message
    assert await _queued(world) == ["scm:1"]  # the save is decided: out of the queue
    assert world.scm.writes == [] and world.scm.image["ModeDescription"] == "scm"  # F&O not written
    [parked] = await world.state.conflicts()
    assert (parked.status, parked.key, parked.event_id) == (ConflictStatus.OPEN, "AIR", "cds:save")
    assert parked.cds_values["msdyn_description"] == "cds"
    assert parked.scm_values["ModeDescription"] == "scm"
    assert not in_flight.done()

    await _save_commits(world, LATE)  # Dataverse commits the accepted save
    applied = await in_flight  # F&O's change meets it: the same conflict, nothing written

    assert applied.result is Result.SKIPPED and "conflict parked" in applied.reason
    assert world.cds.image["msdyn_description"] == "cds" and world.cds.writes == []
    [again] = await world.state.conflicts()
    assert again.id == parked.id and again.event_id == "scm:1"
    assert await world.state.failures() == []  # parked, not a failure


def test_the_parked_reason_names_the_time_of_the_other_change() -> None:
    at = datetime(2026, 1, 5, 8, 0, 1, 250000, tzinfo=UTC) - timedelta(0)
    decision = decide(ConflictPolicy.MANUAL, dataverse_save(LATE), [fno_change(at)])
    assert decision is not None and "2026-01-05T08:00:01.250Z" in decision.reason
