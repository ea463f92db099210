"""Duplicated and reordered notifications at a high rate: one effect each, newest state wins."""

from __future__ import annotations

from bridge.sandbox.faults import FaultSettings
from tests.reliability.conftest import Rig, forms
from tests.reliability.helpers import assert_once_and_in_order, converge, stream


@forms(short=(30, 300), long=(300, 5000))
async def test_duplicated_and_reordered_data_events_apply_once_and_newest_wins(
    rig: Rig, size: tuple[int, int]
) -> None:
    records, updates = size
    faults = rig.sandbox.faults["fno"]
    faults.configure(FaultSettings(duplicate_rate=0.5, reorder_rate=0.3, reorder_hold_ms=150, seed=7))
    keys = [f"D{n:04d}" for n in range(records)]
    last = await stream(keys, updates, rig.person.scm_create, rig.person.scm_update, lanes=16)
    assert await converge(rig.sandbox) == last
    kinds = [e.kind for e in faults.log]
    assert kinds.count("duplicate") > updates // 4 and kinds.count("reorder") > updates // 10
    writes = assert_once_and_in_order(rig.cds_log, rig.bridge_client, last)
    assert writes <= records + updates  # never more than one write per change
