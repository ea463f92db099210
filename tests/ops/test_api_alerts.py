"""/api/alerts: list, create, change, delete; bad input is a 400 naming the problem and changes
nothing; every change is in the state store (what a restart reads) and in force at once."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.ops.alerts import AlertRule
from tests.ops.conftest import BEARER, Ops


async def _list(ops: Ops) -> dict[str, Any]:
    resp = await ops.client.get("/api/alerts", headers=BEARER)
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


async def test_the_default_rule_is_seeded_and_listed(ops: Ops) -> None:
    body = await _list(ops)
    [rule] = body["rules"]
    assert {k: rule[k] for k in ("map", "failures", "minutes", "action", "url")} == {
        "map": "*",
        "failures": 10,
        "minutes": 15,
        "action": "pause",
        "url": None,
    }
    assert rule["recent_failures"] == {"asset": 0, "warehouse": 0}
    assert body["maps"] == ["asset", "warehouse"] and body["paused_by_rule"] == []
    assert [r.entity for r in await ops.state.alert_rules() or []] == ["*"]


async def test_create_change_and_delete_a_rule(ops: Ops) -> None:
    url = "https://example.webhook.office.com/webhookb2/secret-part"
    body = {"map": "warehouse", "failures": 3, "minutes": 5, "action": "webhook", "url": url}
    created = await ops.client.post("/api/alerts", json=body, headers=BEARER)
    assert created.status == 200
    rule = await created.json()
    assert (rule["map"], rule["action"], rule["url"]) == (
        "warehouse",
        "webhook",
        "https://example.webhook.office.com/…",
    )
    assert rule["recent_failures"] == {"warehouse": 0}
    rid = rule["id"]

    changed = await ops.client.put(f"/api/alerts/{rid}", json={"failures": 7}, headers=BEARER)
    assert changed.status == 200 and (await changed.json())["failures"] == 7
    in_force = ops.alerts.get(rid)
    assert in_force == AlertRule(id=rid, map="warehouse", failures=7, minutes=5, action="webhook", url=url)
    stored = [r for r in await ops.state.alert_rules() or [] if r.id == rid]
    assert [(r.failures, r.url) for r in stored] == [(7, url)]  # the url kept, in the store too

    as_log = await ops.client.put(f"/api/alerts/{rid}", json={"action": "log", "url": None}, headers=BEARER)
    assert as_log.status == 200 and (await as_log.json())["action"] == "log"

    deleted = await ops.client.delete(f"/api/alerts/{rid}", headers=BEARER)
    assert deleted.status == 200 and await deleted.json() == {"id": rid, "deleted": True}
    assert ops.alerts.get(rid) is None
    assert [r["map"] for r in (await _list(ops))["rules"]] == ["*"]
    assert (await ops.client.delete(f"/api/alerts/{rid}", headers=BEARER)).status == 404


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"map": "warehouse", "failures": 0, "minutes": 5}, "failures"),
        ({"map": "warehouse", "minutes": "soon"}, "minutes"),
        ({"map": "nope"}, "nope"),
        ({"map": "warehouse", "action": "webhook"}, "url"),
        ({"map": "warehouse", "action": "email"}, "action"),
        ({"map": "warehouse", "action": "webhook", "url": "file:///etc/passwd"}, "url"),
        ({"map": "warehouse", "colour": "red"}, "colour"),
    ],
)
async def test_bad_rules_are_refused_and_change_nothing(ops: Ops, body: dict[str, Any], named: str) -> None:
    before = await ops.state.alert_rules()

    resp = await ops.client.post("/api/alerts", json=body, headers=BEARER)

    assert resp.status == 400 and named in (await resp.json())["message"]
    assert await ops.state.alert_rules() == before
    assert [r.map for r in ops.alerts.all()] == ["*"]


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/alerts/999", {"failures": 3}, 404),
        ("/api/alerts/abc", {"failures": 3}, 400),
        ("/api/alerts/1", {"failures": -1}, 400),
        ("/api/alerts/1", {"map": "nope"}, 400),
        ("/api/alerts/1", {"action": "webhook"}, 400),  # a webhook needs a url
    ],
)
async def test_bad_changes_are_refused(ops: Ops, path: str, body: dict[str, Any], status: int) -> None:
    resp = await ops.client.put(path, json=body, headers=BEARER)

    assert resp.status == status
    assert [(r.map, r.failures, r.action.value) for r in ops.alerts.all()] == [("*", 10, "pause")]


async def test_the_openapi_document_describes_the_alert_and_conflict_routes(ops: Ops) -> None:
    doc = await (await ops.client.get("/api/openapi.json", headers=BEARER)).json()
    paths = doc["paths"]
    assert set(paths["/api/alerts"]) == {"get", "post"}
    assert set(paths["/api/alerts/{rule_id}"]) == {"put", "delete"}
    assert set(paths["/api/conflicts"]) == {"get"}
    assert set(paths["/api/conflicts/{conflict_id}/resolve"]) == {"post"}
    [param] = paths["/api/alerts/{rule_id}"]["put"]["parameters"]
    assert param["schema"] == {"type": "integer"} and "Alert rule id" in param["description"]
    body = paths["/api/alerts"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][body.rsplit("/", 1)[1]]
    assert set(schema["properties"]) == {"map", "failures", "minutes", "action", "url"}
