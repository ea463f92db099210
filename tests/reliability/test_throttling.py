"""A 429 storm with Retry-After: every wait honoured (from the emulator's fault log), nothing lost."""

from __future__ import annotations

from bridge.sandbox.faults import FaultSettings
from tests.reliability.conftest import Rig, forms
from tests.reliability.helpers import assert_once_and_in_order, converge, stream


@forms(short=(20, 60), long=(200, 2000))
async def test_a_429_storm_is_waited_out_as_told_and_loses_nothing(rig: Rig, size: tuple[int, int]) -> None:
    records, updates = size
    keys = [f"T{n:04d}" for n in range(records)]
    created = await stream(keys, 0, rig.person.scm_create, rig.person.scm_update, tag="c")
    await converge(rig.sandbox)
    faults = rig.sandbox.faults["dataverse"]
    # latency_ms=1 makes the log hold every API call, so each retry can be found after its 429.
    faults.configure(FaultSettings(throttle_rate=0.4, retry_after=1, latency_ms=1, seed=3))
    faults.clear_log()
    last = await stream(keys, updates, None, rig.person.scm_update, tag="u", start=records)
    # Not a speed test: a 40% storm stretches the long form's catch-up past the default minute.
    final = await converge(rig.sandbox, timeout=180)
    assert final == {**created, **last}

    calls = [e for e in faults.log if e.kind == "latency"]
    throttles = [e for e in faults.log if e.kind == "throttle"]
    # Counted in writes refused, not requests: how many writes share a $batch depends on timing.
    refused = sum(len(t.parts) or 1 for t in throttles)
    assert refused >= 10, f"the storm did not happen: {refused} writes refused"
    assert any(t.parts for t in throttles), "no $batch was throttled: the test no longer covers batches"
    for throttled in throttles:
        # Per record, the next call carrying the same write is its retry (a refused $batch's writes
        # may come back in another batch): it must come Retry-After later.
        for write in throttled.parts or (throttled.request,):
            retry = next(
                (
                    c
                    for c in calls
                    if c.monotonic > throttled.monotonic and write in (c.parts or (c.request,))
                ),
                None,
            )
            assert retry is not None, f"never retried: {write}"
            waited = retry.monotonic - throttled.monotonic
            assert waited >= 1.0 - 0.01, f"{write}: retried after {waited:.3f}s, Retry-After was 1s"
    assert_once_and_in_order(rig.cds_log, rig.bridge_client, {**created, **last})
