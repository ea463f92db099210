"""Drift in the operations API of a running bridge (GET /api/drift, GET /api/drift/{entity},
POST /api/drift/check), and ``dualwrite sync check`` going through it while the bridge runs: the
drift is made behind the bridge's back (the person's F&O writes with their data events dropped)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.sandbox.cli import write_info
from bridge.state.factory import drift_state
from tests.e2e.harness import Harness, eventually
from tests.tryit.conftest import dualwrite

OPERATIONS_DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


@pytest.fixture
def webhook_mode() -> str:
    return "async"


async def _behind_the_bridge(env: Harness) -> None:
    """One ship via synced, then changed in F&O; one created there: both data events dropped."""
    made = await env.scm_create("DeliveryModesV2", {"ModeCode": "Seen", "ModeDescription": "seen"})
    assert made.status == 201, made.body
    await eventually(lambda: env.cds_find("msdyn_shipvias", "msdyn_name", "Seen"), what="the synced one")
    await env.settle()
    env.sandbox.faults["fno"].update(drop_next=2)
    changed = await env.scm_update("DeliveryModesV2", "ModeCode", "Seen", {"ModeDescription": "changed"})
    assert changed.status == 204, changed.body
    hidden = await env.scm_create("DeliveryModesV2", {"ModeCode": "Hidden", "ModeDescription": "hidden"})
    assert hidden.status == 201, hidden.body
    await env.settle()
    assert [e.kind for e in env.sandbox.faults["fno"].log] == ["drop", "drop"]


async def test_drift_is_listed_checked_and_repaired_through_the_api(env: Harness) -> None:
    empty = await env.ops("GET", "/api/drift")
    assert empty.status == 200 and empty.body == {"checking": False, "check_every_minutes": 0, "maps": []}
    await _behind_the_bridge(env)

    found = await env.ops("POST", "/api/drift/check", {"maps": ["ship_via"]})
    assert found.status == 200, found.body
    ship = found.body["maps"]["ship_via"]
    assert found.body["drifted"] == 2 and ship["sides"]["cds"]["missing"] == 1 and ship["different"] == 1
    by_key = {r["key"]: r for r in ship["drift"]}
    assert by_key["Hidden"]["missing_on"] == "cds"
    assert by_key["Seen"]["fields"] == {"cds": ["msdyn_description"], "scm": ["ModeDescription"]}

    listed = await env.ops("GET", "/api/drift")
    assert [m["entity"] for m in listed.body["maps"]] == ["ship_via"]
    one = await env.ops("GET", "/api/drift/ship_via")
    assert one.status == 200 and one.body["drifted"] == 2
    assert (await env.ops("GET", "/api/drift/warehouse")).status == 404

    repaired = await env.ops(
        "POST", "/api/drift/check", {"maps": ["ship_via"], "repair": True, "from": "scm"}
    )
    assert repaired.status == 200, repaired.body
    assert (
        repaired.body["repaired"] == 2 and repaired.body["maps"]["ship_via"]["sides"]["cds"]["written"] == 2
    )
    seen = await env.cds_find("msdyn_shipvias", "msdyn_name", "Seen")
    assert seen is not None and seen["msdyn_description"] == "changed"
    assert await env.cds_find("msdyn_shipvias", "msdyn_name", "Hidden") is not None
    # The repair went through the live resync: the activity log names who asked for it.
    activity = await env.ops("GET", "/api/activity?entity=ship_via")
    assert any(e["kind"] == "resynced" for e in activity.body["items"]), activity.body

    clean = await env.ops("POST", "/api/drift/check", {"maps": ["ship_via"]})
    assert clean.body["drifted"] == 0


async def test_bad_checks_are_refused(env: Harness) -> None:
    no_side = await env.ops("POST", "/api/drift/check", {"repair": True})
    assert no_side.status == 400 and "from" in no_side.body["message"]
    unknown = await env.ops("POST", "/api/drift/check", {"maps": ["nothing"]})
    assert unknown.status == 404 and "nothing" in unknown.body["message"]
    # A document map is one way and written whole (its next save, a resync): no drift check of it.
    document = await env.ops("POST", "/api/drift/check", {"maps": ["work_order"]})
    assert document.status == 404 and "work_order" in document.body["message"]
    assert await drift_state(env.bridge.state).drift_checks() == []  # nothing was checked


async def test_the_openapi_document_describes_the_drift_routes(env: Harness) -> None:
    doc = await env.ops("GET", "/api/openapi.json")
    paths = doc.body["paths"]
    assert {"/api/drift", "/api/drift/{entity}", "/api/drift/check"} <= set(paths)
    check = paths["/api/drift/check"]["post"]
    assert {"400", "404", "409"} <= set(check["responses"])
    operations = OPERATIONS_DOC.read_text()
    for route in ("GET /api/drift", "GET /api/drift/{entity}", "POST /api/drift/check"):
        assert route in operations, route


async def test_sync_check_asks_the_running_bridge(
    env: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _behind_the_bridge(env)
    info = tmp_path / "sandbox.json"
    write_info(info, env.sandbox.info)
    monkeypatch.setenv("DUALWRITE_LISTEN__PORT", str(env.bridge.port))
    monkeypatch.setenv("DUALWRITE_ADMIN_TOKEN", env.keys["admin_token"])
    ran = await dualwrite("sync", "check", "--sandbox", str(info), "--map", "ship_via")
    assert ran.status == 1, ran.out + ran.err
    assert "USMF/Hidden" in ran.out and "missing on Dataverse" in ran.out
    # Checked by the bridge: its own state store keeps the result.
    last = await drift_state(env.bridge.state).drift_check("ship_via")
    assert last is not None and last.drifted == 2
    fixed = await dualwrite(
        "sync", "check", "--sandbox", str(info), "--map", "ship_via", "--repair", "--from", "scm"
    )
    assert fixed.status == 1 and "repaired from scm: 2, failed 0" in fixed.out
    again = await dualwrite("sync", "check", "--sandbox", str(info), "--map", "ship_via")
    assert again.status == 0, again.out
