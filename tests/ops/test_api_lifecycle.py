"""Issue 20 in the operations API: failures filtered by state and discarded, who acted (token or
session), the activity log, start and stop, and the derived Failing state."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from bridge.ops.watcher import is_failing
from bridge.state.base import Activity, ActivityKind, FailureState, MapStatus, Resolution
from tests.ops.conftest import BEARER, Ops
from tests.ops.helpers import failures


async def _session(ops: Ops) -> tuple[dict[str, str], str]:
    """A dashboard session: the CSRF header to send and the actor it is recorded as."""
    resp = await ops.client.post("/login", data={"password": "open-sesame-pw"}, allow_redirects=False)
    assert resp.status in (302, 303)
    session = await (await ops.client.get("/api/session")).json()
    cookie = ops.client.session.cookie_jar.filter_cookies(ops.client.make_url("/"))["dualwrite_session"].value
    verified = ops.auth.verify_cookie(cookie)
    assert verified is not None
    actor = "admin session " + hashlib.sha256(verified.nonce.encode()).hexdigest()[:8]
    return {"X-CSRF-Token": session["csrf_token"]}, actor


async def test_failures_filter_by_state(ops: Ops) -> None:
    ids = await failures(ops.state, 4)
    await ops.state.set_failure_state([ids[0]], state=FailureState.DISCARDED, by="admin token")
    await ops.state.set_failure_state(
        [ids[1]], state=FailureState.RETRYING, by="admin token", resolution=Resolution.RETRY
    )
    await ops.state.resolve_record("warehouse", "USMF", "K2", resolution=Resolution.LATER_SUCCESS)

    async def listed(state: str) -> tuple[list[int], int]:
        resp = await ops.client.get(f"/api/failures?state={state}", headers=BEARER)
        assert resp.status == 200
        body = await resp.json()
        return sorted(f["id"] for f in body["items"]), body["total"]

    assert await listed("open") == ([ids[3]], 1)
    assert await listed("retrying") == ([ids[1]], 1)
    assert await listed("resolved") == ([ids[2]], 1)
    assert await listed("discarded") == ([ids[0]], 1)
    assert await listed("unresolved") == ([ids[1], ids[3]], 2)
    everything = await (await ops.client.get("/api/failures", headers=BEARER)).json()
    assert everything["total"] == 4
    resolved = next(f for f in everything["items"] if f["id"] == ids[2])
    assert (resolved["state"], resolved["resolution"], resolved["state_by"]) == (
        "resolved",
        "later-success",
        None,
    )
    bad = await ops.client.get("/api/failures?state=closed", headers=BEARER)
    assert bad.status == 400 and "state" in (await bad.json())["message"]


async def test_discard_a_failure_records_the_token_as_actor(ops: Ops) -> None:
    [fid] = await failures(ops.state, 1)
    ok = await ops.client.post(f"/api/failures/{fid}/discard", headers=BEARER)
    again = await ops.client.post(f"/api/failures/{fid}/discard", headers=BEARER)
    bad = await ops.client.post("/api/failures/x/discard", headers=BEARER)
    assert ok.status == 200 and await ok.json() == {"id": fid, "state": "discarded"}
    assert again.status == 404 and bad.status == 400
    got = await ops.state.get_failure(fid)
    assert got is not None and (got.state, got.state_by) == (FailureState.DISCARDED, "admin token")


async def test_a_dashboard_session_is_recorded_as_its_own_actor(ops: Ops) -> None:
    headers, actor = await _session(ops)
    [fid] = await failures(ops.state, 1)
    ops.controller.retryable.add(fid)
    retry = await ops.client.post(f"/api/failures/{fid}/retry", headers=headers)
    stop = await ops.client.post("/api/maps/warehouse/stop", headers=headers, json={"reason": "cutover"})
    assert retry.status == 200 and stop.status == 200
    assert ops.controller.actors == [actor, actor]
    assert actor.startswith("admin session ") and len(actor) == len("admin session ") + 8


async def test_stop_and_start_a_map(ops: Ops) -> None:
    stop = await ops.client.post("/api/maps/warehouse/stop", headers=BEARER, json={"reason": "cutover"})
    assert stop.status == 200 and await stop.json() == {
        "entity": "warehouse",
        "action": "stop",
        "mode": None,
        "backlog": None,
    }
    view = await (await ops.client.get("/api/maps/warehouse", headers=BEARER)).json()
    assert (view["state"], view["shown_state"], view["reason"]) == ("stopped", "stopped", "cutover")
    maps = await (await ops.client.get("/api/maps", headers=BEARER)).json()
    assert maps["attention"] == ["warehouse"]
    start = await ops.client.post("/api/maps/warehouse/start", headers=BEARER)
    assert start.status == 200 and (await start.json())["action"] == "start"
    assert (await ops.state.get_map_state("warehouse")).status is MapStatus.RUNNING
    assert ops.controller.calls == [("stop", ("warehouse", "cutover")), ("start", "warehouse")]
    assert ops.controller.actors == ["admin token", "admin token"]
    unknown = await ops.client.post("/api/maps/nope/stop", headers=BEARER)
    assert unknown.status == 404


async def test_stop_without_a_body_has_a_default_reason_and_bad_bodies_are_refused(ops: Ops) -> None:
    ok = await ops.client.post("/api/maps/asset/stop", headers=BEARER)
    bad = await ops.client.post("/api/maps/warehouse/stop", headers=BEARER, json={"why": "x"})
    assert ok.status == 200 and (await ops.state.get_map_state("asset")).reason == "stopped by admin"
    assert bad.status == 400
    assert (await ops.state.get_map_state("warehouse")).status is MapStatus.RUNNING  # nothing changed


async def test_activity_is_listed_by_map_and_category_newest_first(ops: Ops) -> None:
    t0 = datetime(2026, 1, 2, 9, 0, tzinfo=UTC)
    await ops.state.add_activity(
        [
            Activity("warehouse", ActivityKind.PAUSED, "maintenance", actor="admin token", at=t0),
            Activity(
                "warehouse",
                ActivityKind.APPLIED,
                "update",
                at=t0 + timedelta(seconds=1),
                direction="cds->scm",
                key="USMF/11",
                latency_s=0.4,
                trace_id="0af7651916cd43dd8448eb211c80319c",
            ),
            Activity("asset", ActivityKind.STARTED, at=t0 + timedelta(seconds=2)),
        ],
        keep=10,
    )
    resp = await ops.client.get("/api/activity?entity=warehouse", headers=BEARER)
    assert resp.status == 200
    body = await resp.json()
    assert body["total"] == 2 and [a["kind"] for a in body["items"]] == ["applied", "paused"]
    applied = body["items"][0]
    assert (applied["category"], applied["direction"], applied["key"], applied["latency_s"]) == (
        "change",
        "cds->scm",
        "USMF/11",
        0.4,
    )
    assert applied["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    events = await (await ops.client.get("/api/activity?category=event&limit=1", headers=BEARER)).json()
    assert [a["entity"] for a in events["items"]] == ["asset"] and events["total"] == 2
    for query, status in (("entity=nope", 404), ("category=all", 400), ("limit=0", 400)):
        bad = await ops.client.get(f"/api/activity?{query}", headers=BEARER)
        assert bad.status == status, query


async def test_resolved_and_discarded_failures_leave_the_banner_and_failing(ops: Ops) -> None:
    ids = await failures(ops.state, 2)

    async def warehouse() -> dict[str, object]:
        maps = await (await ops.client.get("/api/maps", headers=BEARER)).json()
        return next(m for m in maps["maps"] if m["entity"] == "warehouse") | {"attention": maps["attention"]}

    before = await warehouse()
    assert (before["failing"], before["shown_state"], before["recent_failures"]) == (True, "failing", 2)
    assert before["attention"] == ["warehouse"]
    await ops.state.resolve_record("warehouse", "USMF", "K0", resolution=Resolution.RESYNC, by="admin token")
    await ops.state.set_failure_state([ids[1]], state=FailureState.DISCARDED, by="admin token")
    after = await warehouse()
    assert (after["failing"], after["shown_state"], after["recent_failures"]) == (False, "running", 0)
    assert after["attention"] == []


async def test_an_applied_change_after_the_failure_ends_failing_below_the_threshold(ops: Ops) -> None:
    await failures(ops.state, 1)  # K0, still open
    await ops.state.add_activity(
        [Activity("warehouse", ActivityKind.APPLIED, "update", direction="cds->scm", key="USMF/K9")], keep=10
    )
    view = await (await ops.client.get("/api/maps/warehouse", headers=BEARER)).json()
    assert view["recent_failures"] == 1 and view["failing"] is False  # 1 < the rule's 10, last apply fine
    await failures(ops.state, 1)  # a newer failure: the last apply failed
    view = await (await ops.client.get("/api/maps/warehouse", headers=BEARER)).json()
    assert view["failing"] is True and view["shown_state"] == "failing"


def test_the_failing_rule() -> None:
    assert is_failing(MapStatus.RUNNING, 10, 10, False)
    assert is_failing(MapStatus.RUNNING, 1, 10, True)
    assert not is_failing(MapStatus.RUNNING, 9, 10, False)
    for status in (MapStatus.PAUSED, MapStatus.STOPPED, MapStatus.INITIALIZING, MapStatus.NOT_RUNNING):
        assert not is_failing(status, 50, 10, True)


async def test_an_alert_rule_that_fires_is_in_the_activity_log(ops: Ops) -> None:
    await failures(ops.state, 10)  # the default rule: 10 in 15 minutes
    [decision] = await ops.watcher.check("warehouse")  # one rule: the default
    assert decision.pause
    assert ops.controller.actors == ["alert rule"]  # the pause, by the rule
    body = await (await ops.client.get("/api/activity?entity=warehouse", headers=BEARER)).json()
    [fired] = body["items"]
    assert (fired["kind"], fired["actor"]) == ("alert-fired", "alert rule")
    assert fired["message"] == decision.reason


async def test_resolved_failures_do_not_count_toward_an_alert_rule(ops: Ops) -> None:
    await failures(ops.state, 10)
    for n in range(10):
        await ops.state.resolve_record("warehouse", "USMF", f"K{n}", resolution=Resolution.LATER_SUCCESS)
    [decision] = await ops.watcher.check("warehouse")  # one rule: the default
    assert not decision.pause and decision.failures == 0 and ops.controller.calls == []
