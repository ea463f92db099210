"""Failures resolved end to end over real HTTP, by a replay and by a resync, with who did it: the
bridge between both emulators, a person's change in F&O, Dataverse down until the admin acts."""

from __future__ import annotations

from typing import Any

from bridge.sandbox.faults import FaultSettings
from bridge.systems.http import RetryPolicy
from tests.e2e.harness import Harness, eventually


async def _fail_for_good(env: Harness, code: str) -> dict[str, Any]:
    """A person's new delivery mode in F&O while Dataverse is down: retried to the end, dead-lettered."""
    env.bridge.cds.http.retry = RetryPolicy(attempts=1)  # the engine's retries only, to keep this short
    env.sandbox.faults["dataverse"].configure(FaultSettings(unavailable_rate=1.0, retry_after=0))
    resp = await env.scm_create("DeliveryModesV2", {"ModeCode": code, "ModeDescription": f"mode {code}"})
    assert resp.status == 201, resp.body

    async def open_failure() -> dict[str, Any] | None:
        items = (await env.ops("GET", "/api/failures?entity=ship_via&state=open")).body["items"]
        return items[0] if items else None

    failure = await eventually(open_failure, timeout=20, what="an open failure")
    env.sandbox.faults["dataverse"].configure(FaultSettings())  # the cause is fixed
    return failure


async def _failure(env: Harness, fid: int) -> dict[str, Any]:
    items = (await env.ops("GET", "/api/failures?entity=ship_via")).body["items"]
    return next(f for f in items if f["id"] == fid)


async def test_a_replayed_dead_letter_resolves_its_failure_by_replay(env: Harness) -> None:
    failure = await _fail_for_good(env, "RPL1")
    [letter] = (await env.ops("GET", "/api/deadletters")).body["items"]
    resp = await env.ops("POST", "/api/deadletters/replay", {"seqs": [letter["seq"]]})
    assert resp.body == {"action": "replay", "count": 1}
    await eventually(lambda: env.cds_find("msdyn_shipvias", "msdyn_name", "RPL1"), what="the replay applied")

    async def resolved() -> dict[str, Any] | None:
        got = await _failure(env, failure["id"])
        return got if got["state"] == "resolved" else None

    got = await eventually(resolved, what="the failure resolved")
    assert (got["resolution"], got["state_by"]) == ("replay", "admin token")
    kinds = [
        a["kind"]
        for a in (await env.ops("GET", "/api/activity?entity=ship_via&category=event")).body["items"]
    ]
    assert kinds == ["dead-letters-replayed"]


async def test_a_resync_resolves_the_records_failures_by_resync(env: Harness) -> None:
    failure = await _fail_for_good(env, "RSY1")
    resp = await env.ops(
        "POST", "/api/resync", {"entity": "ship_via", "company": "USMF", "key": "RSY1", "from": "scm"}
    )
    assert resp.status == 200 and resp.body["outcome"] == "applied", resp.body
    assert await env.cds_find("msdyn_shipvias", "msdyn_name", "RSY1") is not None
    got = await _failure(env, failure["id"])
    assert (got["state"], got["resolution"], got["state_by"]) == ("resolved", "resync", "admin token")
    maps = (await env.ops("GET", "/api/maps")).body
    assert "ship_via" not in maps["attention"]  # resolved: out of the banner
