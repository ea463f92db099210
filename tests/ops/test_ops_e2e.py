"""The ops API over the running bridge with both emulators: pause, queue up, resume in each mode;
replay of a dead letter once its cause is fixed; auto-pause by an alert rule; refusals."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bridge import telemetry
from bridge.sandbox.faults import FaultSettings
from bridge.systems.http import RetryPolicy
from tests.e2e.entities import site_id
from tests.e2e.harness import Harness, eventually

pytestmark = pytest.mark.timeout(90)


def _record_spans() -> InMemorySpanExporter:
    """Record the process's spans in memory (the global provider can be set only once per process)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


async def _ship_via_on_scm(env: Harness, code: str) -> None:
    resp = await env.scm_create("DeliveryModesV2", {"ModeCode": code, "ModeDescription": f"mode {code}"})
    assert resp.status == 201, resp.body


async def _in_cds(env: Harness, code: str) -> dict[str, Any] | None:
    return await env.cds_find("msdyn_shipvias", "msdyn_name", code)


async def _pause_and_queue(env: Harness, codes: list[str]) -> None:
    """Pause ship_via, make changes on both sides, and see them wait in the queue."""
    assert (await env.ops("POST", "/api/maps/ship_via/pause", {"reason": "maintenance"})).status == 200
    for code in codes:
        await _ship_via_on_scm(env, code)
    resp = await env.cds_create(
        "msdyn_shipvias", {"msdyn_name": codes[0] + "C", "msdyn_description": "from CDS"}
    )
    assert resp.status == 201, resp.body  # a paused map queues even a synchronous step's change

    async def queued() -> bool:
        view = (await env.ops("GET", "/api/maps/ship_via")).body
        return bool(view["queue_depth"] == len(codes) + 1 and view["state"] == "paused")

    await eventually(queued, what="changes queued while paused")
    for code in codes:
        assert await _in_cds(env, code) is None
    assert await env.scm_find("DeliveryModesV2", "ModeCode", codes[0] + "C") is None


async def test_pause_queue_resume_catch_up_applies_the_backlog(env: Harness) -> None:
    await _pause_and_queue(env, ["CU1", "CU2"])

    resp = await env.ops("POST", "/api/maps/ship_via/resume", {"mode": "catch-up"})
    await env.settle()

    assert resp.status == 200 and resp.body["mode"] == "catch-up"
    for code in ("CU1", "CU2"):
        row = await _in_cds(env, code)
        assert row is not None and row["msdyn_description"] == f"mode {code}"
    assert await env.scm_find("DeliveryModesV2", "ModeCode", "CU1C") is not None
    view = (await env.ops("GET", "/api/maps/ship_via")).body
    assert (view["state"], view["queue_depth"]) == ("running", 0)
    assert view["success"] >= 3


async def test_pause_queue_resume_skip_keep_turns_the_backlog_into_retryable_failures(env: Harness) -> None:
    await _pause_and_queue(env, ["SK1", "SK2"])

    resp = await env.ops("POST", "/api/maps/ship_via/resume", {"mode": "skip-keep"})
    await _ship_via_on_scm(env, "SK3")  # live again
    await eventually(lambda: _in_cds(env, "SK3"), what="a live change applied after resume")

    assert resp.body["backlog"] == 3
    assert await _in_cds(env, "SK1") is None and await _in_cds(env, "SK2") is None
    failures = (await env.ops("GET", "/api/failures?entity=ship_via")).body["items"]
    kept = {f["key"]: f for f in failures}
    assert set(kept) == {"SK1", "SK2", "SK1C"}
    retry = await env.ops("POST", f"/api/failures/{kept['SK1']['id']}/retry")
    assert retry.status == 200
    await eventually(lambda: _in_cds(env, "SK1"), what="the kept change applied on retry")
    assert await _in_cds(env, "SK2") is None


async def test_pause_queue_resume_skip_discard_drops_the_backlog(env: Harness) -> None:
    await _pause_and_queue(env, ["SD1", "SD2"])

    resp = await env.ops("POST", "/api/maps/ship_via/resume", {"mode": "skip-discard"})
    await _ship_via_on_scm(env, "SD3")
    await eventually(lambda: _in_cds(env, "SD3"), what="a live change applied after resume")
    await env.settle()

    assert resp.body["backlog"] == 3
    assert await _in_cds(env, "SD1") is None and await _in_cds(env, "SD2") is None
    assert await env.scm_find("DeliveryModesV2", "ModeCode", "SD1C") is None
    assert (await env.ops("GET", "/api/failures?entity=ship_via")).body["total"] == 0


async def test_dead_letter_replayed_after_its_cause_is_fixed(env: Harness) -> None:
    env.bridge.cds.http.retry = RetryPolicy(attempts=1)  # the engine's retries only, to keep this short
    env.sandbox.faults["dataverse"].configure(FaultSettings(unavailable_rate=1.0, retry_after=0))
    await _ship_via_on_scm(env, "DL1")

    async def dead() -> list[dict[str, Any]]:
        return list((await env.ops("GET", "/api/deadletters")).body["items"])

    [letter] = await eventually(dead, what="the change dead-lettered after its retries")
    assert letter["entity"] == "ship_via" and letter["key"] == "DL1"
    env.sandbox.faults["dataverse"].configure(FaultSettings())  # the cause is fixed

    resp = await env.ops("POST", "/api/deadletters/replay", {"seqs": [letter["seq"]]})
    row = await eventually(lambda: _in_cds(env, "DL1"), what="the replayed change applied")

    assert resp.body == {"action": "replay", "count": 1}
    assert row["msdyn_description"] == "mode DL1"
    assert await dead() == []


async def test_alert_rule_pauses_a_failing_map_and_says_why(env: Harness) -> None:
    put = await env.ops("POST", "/api/alerts", {"map": "warehouse", "failures": 2, "minutes": 5})
    site = await site_id(env, "1")
    for name in ("WAREHOUSE-NORTH", "WAREHOUSE-SOUTH"):  # F&O's WarehouseId takes 10 characters
        resp = await env.cds_create(
            "msdyn_warehouses",
            {
                "msdyn_warehouseidentifier": name,
                "msdyn_name": name,
                "msdyn_operationalsite@odata.bind": f"/msdyn_operationalsites({site})",
            },
        )
        assert resp.status >= 400  # the synchronous step refused the save

    async def paused() -> dict[str, Any] | None:
        view = (await env.ops("GET", "/api/maps/warehouse")).body
        return view if view["state"] == "paused" else None

    view = await eventually(paused, timeout=10, what="warehouse paused by its alert rule")

    assert put.status == 200
    assert view["paused_by_rule"] is True
    assert "2 failures in the last 5 min" in view["reason"]
    maps = (await env.ops("GET", "/api/maps")).body
    assert "warehouse" in maps["attention"]
    others = [m["state"] for m in maps["maps"] if m["entity"] != "warehouse"]
    assert set(others) == {"running"}


async def test_unauthenticated_calls_to_the_bridge_are_refused(env: Harness) -> None:
    async with env.http.post(f"{env.bridge.url}/api/pause", json={}) as resp:
        status = resp.status
    async with env.http.get(f"{env.bridge.url}/healthz") as health:
        health_status = health.status

    assert status == 401 and health_status == 200
    view = (await env.ops("GET", "/api/maps")).body
    assert {m["state"] for m in view["maps"]} == {"running"}


async def test_one_connected_trace_per_change_from_webhook_to_write(env: Harness) -> None:
    exporter = _record_spans()
    await _ship_via_on_scm(env, "TR1")
    await eventually(lambda: _in_cds(env, "TR1"), what="the change applied")
    await env.settle()

    # The F&O change (the bridge's own write echoes back from Dataverse as a trace of its own).
    spans = [
        s
        for s in exporter.get_finished_spans()
        if (s.attributes or {}).get(telemetry.ATTR_KEY) == "TR1"
        and (s.attributes or {}).get("dualwrite.source") == "scm"
    ]
    [receive] = [s for s in spans if s.name == telemetry.SPAN_RECEIVE]
    [apply] = [s for s in spans if s.name == telemetry.SPAN_APPLY]

    assert receive.context is not None and apply.context is not None
    assert apply.parent is not None and apply.parent.span_id == receive.context.span_id
    assert apply.context.trace_id == receive.context.trace_id
    assert apply.attributes is not None and apply.attributes[telemetry.ATTR_OUTCOME] == "applied"
    # The write on Dataverse is a child of the apply span: the same trace, end to end.
    writes = [
        s
        for s in exporter.get_finished_spans()
        if s.name == telemetry.SPAN_WRITE
        and s.parent is not None
        and s.parent.span_id == apply.context.span_id
    ]
    assert len(writes) == 1 and writes[0].context is not None
    assert writes[0].context.trace_id == receive.context.trace_id
    assert writes[0].attributes is not None and writes[0].attributes["dualwrite.system"] == "cds"
