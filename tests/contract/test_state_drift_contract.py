"""The DriftPort contract (issue 21, item 4): each map's last drift check and the modified-on
watermarks, on every state backend ``bridge.state.factory`` knows, built through its factory; a store
opened again on the same storage sees what the last one wrote."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bridge.state.driftport import DriftCheck, DriftedRecord, DriftPort
from bridge.state.factory import drift_state
from tests.contract.test_state_contract import StateFactory

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def check(entity: str = "warehouse", *, different: int = 1, at: datetime = T0) -> DriftCheck:
    return DriftCheck(
        entity=entity,
        started_at=at,
        finished_at=at + timedelta(seconds=3),
        companies=("USMF", "USRT"),
        read={"cds": 10, "scm": 11},
        missing={"cds": 1, "scm": 0},
        different=different,
        unchanged=9,
        drift=(
            DriftedRecord("USMF", "21", "cds"),
            DriftedRecord("USRT", "7", None, {"scm": ["WarehouseName"]}, repair="applied"),
        ),
        repaired_from="cds",
        repaired=1,
        repair_failed=1,
        error=None,
    )


@pytest.fixture
async def drift(make_state: StateFactory) -> DriftPort:
    return drift_state(await make_state("main"))


async def test_a_new_store_has_no_checks_and_no_watermarks(drift: DriftPort) -> None:
    assert await drift.drift_checks() == []
    assert await drift.drift_check("warehouse") is None
    assert await drift.watermark("warehouse", "cds") is None


async def test_the_last_check_per_map_is_kept_whole(drift: DriftPort) -> None:
    await drift.put_drift_check(check())
    await drift.put_drift_check(check("ship_via", different=0))
    assert await drift.drift_check("warehouse") == check()
    assert [c.entity for c in await drift.drift_checks()] == ["ship_via", "warehouse"]
    assert check().drifted == 2


async def test_a_later_check_replaces_the_map_s_last(drift: DriftPort) -> None:
    await drift.put_drift_check(check())
    later = check(different=0, at=T0 + timedelta(hours=1))
    await drift.put_drift_check(later)
    assert await drift.drift_check("warehouse") == later
    assert len(await drift.drift_checks()) == 1


async def test_times_come_back_in_utc(drift: DriftPort) -> None:
    local = T0.astimezone(timezone(timedelta(hours=2)))
    await drift.put_drift_check(check(at=local))
    stored = await drift.drift_check("warehouse")
    assert stored is not None and stored.started_at == T0 and stored.started_at.utcoffset() == timedelta(0)


async def test_a_watermark_only_moves_forward_per_map_and_side(drift: DriftPort) -> None:
    await drift.put_watermark("warehouse", "cds", T0)
    await drift.put_watermark("warehouse", "cds", T0 - timedelta(minutes=1))
    assert await drift.watermark("warehouse", "cds") == T0
    await drift.put_watermark("warehouse", "cds", T0 + timedelta(minutes=1))
    assert await drift.watermark("warehouse", "cds") == T0 + timedelta(minutes=1)
    assert await drift.watermark("warehouse", "scm") is None
    assert await drift.watermark("ship_via", "cds") is None


async def test_checks_and_watermarks_survive_reopen(make_state: StateFactory) -> None:
    first = await make_state("durable")
    await drift_state(first).put_drift_check(check())
    await drift_state(first).put_watermark("warehouse", "scm", T0)
    await first.close()
    again = drift_state(await make_state("durable"))
    assert await again.drift_check("warehouse") == check()
    assert await again.watermark("warehouse", "scm") == T0
