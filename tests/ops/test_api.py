"""Every operation of the ops API, over HTTP, against the real SQLite queue and state."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bridge.core.events import System
from bridge.engine.ports import ResumeMode
from bridge.state.base import MapStatus
from tests.ops.conftest import BEARER, Ops
from tests.ops.helpers import dead_letters, event, failures


async def test_maps_show_state_depth_lag_and_figures(ops: Ops) -> None:
    await ops.queue.enqueue(event(key="1"))
    await ops.queue.enqueue(event(key="2"))
    ops.metrics.received("warehouse", "cds->scm")
    ops.metrics.applied("warehouse", "cds->scm", 0.25)
    ops.metrics.failed("warehouse", "scm->cds", "rejected", "Site 9 does not exist")

    resp = await ops.client.get("/api/maps", headers=BEARER)

    assert resp.status == 200
    body = await resp.json()
    maps = {m["entity"]: m for m in body["maps"]}
    assert set(maps) == {"asset", "warehouse"}
    wh = maps["warehouse"]
    assert (wh["state"], wh["queue_depth"], wh["success"], wh["failures"]) == ("running", 2, 1, 1)
    assert wh["lag_s"] is not None and wh["lag_s"] >= 0 and wh["oldest_enqueued_at"]
    cds = next(d for d in wh["directions"] if d["direction"] == "cds->scm")
    assert (cds["applied"], cds["applied_per_minute"], cds["p50_s"], cds["p99_s"]) == (1, 1, 0.25, 0.25)
    assert wh["last_error"]["message"] == "Site 9 does not exist"
    assert wh["last_error"]["direction"] == "scm->cds"
    assert maps["asset"]["queue_depth"] == 0 and maps["asset"]["lag_s"] is None


async def test_one_map_and_unknown_map(ops: Ops) -> None:
    ok = await ops.client.get("/api/maps/warehouse", headers=BEARER)
    missing = await ops.client.get("/api/maps/nope", headers=BEARER)

    assert ok.status == 200 and (await ok.json())["entity"] == "warehouse"
    assert missing.status == 404
    assert (await missing.json()) == {
        "error": "not_found",
        "message": "no map named 'nope'; maps: asset, warehouse",
    }


async def test_pause_one_map_records_reason(ops: Ops) -> None:
    resp = await ops.client.post(
        "/api/maps/warehouse/pause", json={"reason": "SCM maintenance"}, headers=BEARER
    )

    assert resp.status == 200
    assert ops.controller.calls == [("pause", ("warehouse", "SCM maintenance"))]
    view = await (await ops.client.get("/api/maps/warehouse", headers=BEARER)).json()
    assert (view["state"], view["reason"], view["paused_by_rule"]) == ("paused", "SCM maintenance", False)


async def test_pause_without_body_uses_default_reason(ops: Ops) -> None:
    resp = await ops.client.post("/api/maps/asset/pause", headers=BEARER)

    assert resp.status == 200
    assert ops.controller.calls == [("pause", ("asset", "paused by admin"))]


@pytest.mark.parametrize("mode", list(ResumeMode))
async def test_resume_one_map_in_each_mode(ops: Ops, mode: ResumeMode) -> None:
    resp = await ops.client.post("/api/maps/warehouse/resume", json={"mode": mode.value}, headers=BEARER)

    assert resp.status == 200
    assert await resp.json() == {"entity": "warehouse", "action": "resume", "mode": mode.value, "backlog": 3}
    assert ops.controller.calls == [("resume", ("warehouse", mode))]


async def test_resume_rejects_unknown_mode_and_changes_nothing(ops: Ops) -> None:
    resp = await ops.client.post("/api/maps/warehouse/resume", json={"mode": "later"}, headers=BEARER)

    assert resp.status == 400
    body = await resp.json()
    assert body["error"] == "bad_request" and body["message"].startswith("mode:")
    assert ops.controller.calls == []


async def test_pause_and_resume_all(ops: Ops) -> None:
    paused = await ops.client.post("/api/pause", json={"reason": "cutover"}, headers=BEARER)
    states = {e: (await ops.state.get_map_state(e)).status for e in ("asset", "warehouse")}
    resumed = await ops.client.post("/api/resume", json={"mode": "skip-discard"}, headers=BEARER)

    assert paused.status == 200 and resumed.status == 200
    assert states == {"asset": MapStatus.PAUSED, "warehouse": MapStatus.PAUSED}
    assert ops.controller.calls == [("pause", (None, "cutover")), ("resume", (None, ResumeMode.SKIP_DISCARD))]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1]", "JSON object"),
        (b'{"reason": 5}', "reason"),
        (b'{"x": 1}', "x"),
    ],
)
async def test_bad_pause_bodies_are_400_and_change_nothing(ops: Ops, body: bytes, named: str) -> None:
    resp = await ops.client.post("/api/maps/warehouse/pause", data=body, headers=BEARER)

    assert resp.status == 400
    assert named in (await resp.json())["message"]
    assert ops.controller.calls == []


async def test_failures_are_paged_newest_first_with_both_messages(ops: Ops) -> None:
    ids = await failures(ops.state, 5)
    await failures(ops.state, 1, entity="asset")

    first = await (await ops.client.get("/api/failures?entity=warehouse&limit=2", headers=BEARER)).json()
    last = await (
        await ops.client.get("/api/failures?entity=warehouse&offset=4&limit=2", headers=BEARER)
    ).json()
    every = await (await ops.client.get("/api/failures", headers=BEARER)).json()

    assert first["total"] == 5 and [f["id"] for f in first["items"]] == [ids[4], ids[3]]
    assert [f["id"] for f in last["items"]] == [ids[0]]
    item = first["items"][0]
    assert item["target_message"] == "Field 'Site' must be filled in (4)"
    assert item["source_message"] == "restored the last synced image"
    assert (item["direction"], item["attempts"], item["kind"]) == ("cds->scm", 1, "rejected")
    assert every["total"] == 6


@pytest.mark.parametrize(
    ("query", "status", "named"),
    [
        ("limit=0", 400, "limit"),
        ("offset=-1", 400, "offset"),
        ("limit=x", 400, "limit"),
        ("color=red", 400, "color"),
        ("entity=nope", 404, "nope"),
    ],
)
async def test_bad_failure_queries(ops: Ops, query: str, status: int, named: str) -> None:
    resp = await ops.client.get(f"/api/failures?{query}", headers=BEARER)

    assert resp.status == status
    assert named in (await resp.json())["message"]


async def test_retry_failure(ops: Ops) -> None:
    [fid] = await failures(ops.state, 1)
    ops.controller.retryable.add(fid)

    ok = await ops.client.post(f"/api/failures/{fid}/retry", headers=BEARER)
    gone = await ops.client.post(f"/api/failures/{fid + 100}/retry", headers=BEARER)
    bad = await ops.client.post("/api/failures/abc/retry", headers=BEARER)

    assert ok.status == 200 and await ok.json() == {"id": fid, "requeued": True}
    assert gone.status == 404 and bad.status == 400
    assert ops.controller.calls == [("retry", fid), ("retry", fid + 100)]


async def test_dead_letters_listed_with_their_event(ops: Ops) -> None:
    seqs = await dead_letters(ops.queue, 2)

    body = await (await ops.client.get("/api/deadletters", headers=BEARER)).json()

    assert sorted(d["seq"] for d in body["items"]) == seqs
    item = body["items"][0]
    assert item["entity"] == "warehouse" and item["reason"].startswith("target rejected")
    assert item["event"]["changed"] == {"msdyn_name": "Main"} and item["source"] == "cds"


async def test_replay_one_selected_dead_letter(ops: Ops) -> None:
    seqs = await dead_letters(ops.queue, 3)

    resp = await ops.client.post("/api/deadletters/replay", json={"seqs": [seqs[0]]}, headers=BEARER)

    assert await resp.json() == {"action": "replay", "count": 1}
    assert await ops.queue.depth("warehouse") == 1
    assert len(await ops.queue.dead_letters()) == 2


async def test_replay_all_dead_letters(ops: Ops) -> None:
    await dead_letters(ops.queue, 3)

    resp = await ops.client.post("/api/deadletters/replay", json={"all": True}, headers=BEARER)

    assert await resp.json() == {"action": "replay", "count": 3}
    assert await ops.queue.depth() == 3 and await ops.queue.dead_letters() == []


async def test_discard_selected_then_all_dead_letters(ops: Ops) -> None:
    seqs = await dead_letters(ops.queue, 3)

    some = await ops.client.post("/api/deadletters/discard", json={"seqs": seqs[:2]}, headers=BEARER)
    rest = await ops.client.post("/api/deadletters/discard", json={"all": True}, headers=BEARER)

    assert (await some.json())["count"] == 2 and (await rest.json())["count"] == 1
    assert await ops.queue.dead_letters() == [] and await ops.queue.depth() == 0


@pytest.mark.parametrize(
    "body", [{}, {"seqs": []}, {"seqs": [1], "all": True}, {"all": False}, {"seqs": ["one"]}]
)
async def test_bad_dead_letter_selections_are_400_and_change_nothing(
    ops: Ops, body: dict[str, object]
) -> None:
    await dead_letters(ops.queue, 1)

    resp = await ops.client.post("/api/deadletters/discard", json=body, headers=BEARER)

    assert resp.status == 400 and (await resp.json())["error"] == "bad_request"
    assert len(await ops.queue.dead_letters()) == 1


async def test_resync_from_chosen_side(ops: Ops) -> None:
    body = {"entity": "warehouse", "company": "usmf", "key": "11", "from": "scm"}

    resp = await ops.client.post("/api/resync", json=body, headers=BEARER)

    assert resp.status == 200
    assert await resp.json() == {
        "entity": "warehouse",
        "company": "USMF",
        "key": "11",
        "from": "scm",
        "outcome": "applied",
        "message": "",
    }
    assert ops.controller.calls == [("resync", ("warehouse", "USMF", "11", System.SCM))]


async def test_failed_resync_is_502_with_the_message(ops: Ops) -> None:
    ops.controller.resync_outcome = "failed"
    body = {"entity": "warehouse", "company": "USMF", "key": "11", "from": "cds"}

    resp = await ops.client.post("/api/resync", json=body, headers=BEARER)

    assert resp.status == 502
    assert (await resp.json())["message"] == "SCM said no"


@pytest.mark.parametrize(
    ("body", "status", "named"),
    [
        ({"entity": "warehouse", "company": "USMF", "key": "11"}, 400, "from"),
        ({"entity": "warehouse", "company": "USMF", "key": "11", "from": "erp"}, 400, "from"),
        ({"entity": "warehouse", "company": "", "key": "11", "from": "cds"}, 400, "company"),
        ({"entity": "nope", "company": "USMF", "key": "11", "from": "cds"}, 404, "nope"),
    ],
)
async def test_bad_resync_requests(ops: Ops, body: dict[str, str], status: int, named: str) -> None:
    resp = await ops.client.post("/api/resync", json=body, headers=BEARER)

    assert resp.status == status and named in (await resp.json())["message"]
    assert ops.controller.calls == []


async def test_series_has_the_last_hour_per_map(ops: Ops) -> None:
    for _ in range(4):
        ops.metrics.applied("warehouse", "scm->cds", 0.1)
    ops.metrics.failed("warehouse", "cds->scm", "rejected", "no")

    body = await (await ops.client.get("/api/series", headers=BEARER)).json()

    assert body["points"] == 60 and body["step_s"] == 60
    wh = next(s for s in body["maps"] if s["entity"] == "warehouse")
    assert wh["applied_scm_cds"][-1] == 4 and wh["failed"][-1] == 1 and sum(wh["applied_cds_scm"]) == 0
    assert all(len(wh[k]) == 60 for k in ("applied_cds_scm", "applied_scm_cds", "failed", "lag_s"))


async def test_healthz_and_readyz_need_no_credential(ops: Ops) -> None:
    health = await ops.client.get("/healthz")
    ready = await ops.client.get("/readyz")
    ops.controller.ready = False
    not_ready = await ops.client.get("/readyz")

    assert health.status == 200 and await health.json() == {"status": "ok"}
    assert ready.status == 200 and (await ready.json())["ready"] is True
    assert not_ready.status == 503
    assert (await not_ready.json())["details"] == {"scm": "connection refused"}


async def test_failing_map_needs_attention(ops: Ops) -> None:
    await failures(ops.state, 1, entity="asset")
    await failures(ops.state, 1, entity="warehouse", age=timedelta(hours=1))  # outside the window

    body = await (await ops.client.get("/api/maps", headers=BEARER)).json()

    assert body["attention"] == ["asset"]
    asset = next(m for m in body["maps"] if m["entity"] == "asset")
    assert asset["failing"] is True and asset["recent_failures"] == 1
