"""GET /api/systems: each system's health and the webhook registrations found on Dataverse.

First over the real ops routes with canned health and a canned Web API query; then against the
running bridge and both emulators, where ``dualwrite register``'s own registrations are read back
and a throttled F&O shows its 429 and the Retry-After waited."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.core.deadline import current_deadline
from bridge.core.errors import RejectedError
from bridge.metrics import Metrics
from bridge.ops.api_systems import Registrations, SystemsApi, SystemSource
from bridge.ops.auth import AdminAuth
from bridge.ops.server import setup_ops
from bridge.queue.sqlite import SqliteQueue
from bridge.register import registered_tables
from bridge.sandbox.faults import FaultSettings
from bridge.state.sqlite import SqliteState
from bridge.systems.health import SystemHealth
from tests.e2e.harness import Harness, eventually
from tests.ops.conftest import BEARER, TOKEN
from tests.ops.fakes import MAPS, FakeController

STEPS = {
    "dualwrite: msdyn_warehouse Create": ("warehouse", "Create"),
    "dualwrite: msdyn_warehouse Update": ("warehouse", "Update"),
    "dualwrite: msdyn_warehouse Delete": ("warehouse", "Delete"),
}


class CannedQuery:
    """Answers ``DataverseClient.query`` from tables of rows; counts the calls; may refuse."""

    def __init__(self, tables: dict[str, list[dict[str, Any]]]) -> None:
        self.tables = tables
        self.calls: list[tuple[str, str | None]] = []
        self.deadlines: list[float | None] = []  # the clients' retries stop there
        self.refuse: str | None = None

    async def __call__(
        self, entity_set: str, filter: str | None = None, select: list[str] | None = None
    ) -> list[dict[str, Any]]:
        self.calls.append((entity_set, filter))
        self.deadlines.append(current_deadline())
        if self.refuse:
            raise RejectedError(self.refuse, system="cds", status=403)
        return self.tables.get(entity_set, [])


# Rows in the Web API's read form of serviceendpoint and sdkmessageprocessingstep (powerapps-docs
# developer/data-platform/reference/entities/sdkmessageprocessingstep.md: mode 0 Synchronous,
# 1 Asynchronous; statecode 0 Enabled, 1 Disabled).
ROWS = {
    "serviceendpoints": [
        {"serviceendpointid": "e1", "name": "dualwrite bridge", "url": "https://bridge.example/webhooks/cds"},
        {"serviceendpointid": "e2", "name": "someone else", "url": "https://other.example/hook"},
    ],
    "sdkmessageprocessingsteps": [
        {"name": "dualwrite: msdyn_warehouse Create", "mode": 0, "statecode": 0, "filteringattributes": None},
        {
            "name": "dualwrite: msdyn_warehouse Update",
            "mode": 1,
            "statecode": 1,
            "filteringattributes": "a,b",
        },
    ],
}


@pytest.fixture
async def systems_client(
    stores: tuple[SqliteQueue, SqliteState],
) -> AsyncIterator[tuple[TestClient[Any, Any], dict[str, SystemHealth], CannedQuery]]:
    queue, state = stores
    health = {"cds": SystemHealth("cds"), "scm": SystemHealth("scm")}
    query = CannedQuery(ROWS)
    api = SystemsApi(
        [
            SystemSource("cds", "Dataverse", "https://cds.example/api/data/v9.2/", health["cds"].figures),
            SystemSource("scm", "Finance and Operations", "https://scm.example/data/", health["scm"].figures),
        ],
        Registrations(query, endpoint_name="dualwrite bridge", expected=STEPS),
    )
    app = web.Application()
    setup_ops(
        app,
        controller=FakeController(state),
        queue=queue,
        state=state,
        metrics=Metrics(maps=MAPS),
        auth=AdminAuth(TOKEN),
        systems=api,
        watch_interval=None,
    )
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    yield client, health, query
    await client.close()


async def test_systems_need_the_admin_credential(systems_client: Any) -> None:
    client, _, query = systems_client
    resp = await client.get("/api/systems")
    assert resp.status == 401
    assert query.calls == []  # nothing read for an unauthenticated caller


async def test_health_figures_per_system(systems_client: Any) -> None:
    client, health, _ = systems_client
    cds, scm = health["cds"], health["scm"]
    cds.answered(200)
    cds.answered(429)
    cds.waited_retry_after(3.0)
    cds.failed("cds 429: Number of requests exceeded the limit", answered=True)
    cds.token_acquired(time.time() + 3600)
    scm.answered(200)
    scm.failed("scm: connection failed: Cannot connect to host scm.example:443", answered=False)
    scm.token_failed("token request failed: invalid_client: AADSTS7000215")
    body = await (await client.get("/api/systems", headers=BEARER)).json()
    by = {s["system"]: s for s in body["systems"]}
    assert by["cds"]["reachable"] is True and by["cds"]["throttled"] == 1
    assert by["cds"]["retry_after_waited_s"] == 3.0 and by["cds"]["last_status"] == 429
    assert by["cds"]["last_error"] == "cds 429: Number of requests exceeded the limit"
    assert by["cds"]["token"]["state"] == "valid" and by["cds"]["url"] == "https://cds.example/api/data/v9.2/"
    assert by["scm"]["reachable"] is False and by["scm"]["network_errors"] == 1
    assert "Cannot connect to host scm.example:443" in by["scm"]["last_error"]
    assert by["scm"]["token"] == {
        "state": "failing",
        "acquired_at": None,
        "expires_at": None,
        "error": "token request failed: invalid_client: AADSTS7000215",
    }


async def test_a_token_past_its_expiry_shows_expired(systems_client: Any) -> None:
    client, health, _ = systems_client
    health["scm"].token_acquired(time.time() - 1)
    body = await (await client.get("/api/systems", headers=BEARER)).json()
    assert {s["system"]: s["token"]["state"] for s in body["systems"]} == {"cds": "none", "scm": "expired"}


async def test_registrations_found_missing_and_disabled(systems_client: Any) -> None:
    client, _, _ = systems_client
    reg = (await (await client.get("/api/systems", headers=BEARER)).json())["registrations"]
    assert reg["error"] is None
    assert [(e["name"], e["ours"]) for e in reg["endpoints"]] == [
        ("dualwrite bridge", True),
        ("someone else", False),
    ]
    steps = {s["message"]: s for s in reg["steps"]}
    assert (steps["Create"]["found"], steps["Create"]["mode"], steps["Create"]["enabled"]) == (
        True,
        "sync",
        True,
    )
    assert (steps["Update"]["mode"], steps["Update"]["enabled"]) == ("async", False)
    assert steps["Update"]["filtering_attributes"] == "a,b"
    assert (steps["Delete"]["found"], steps["Delete"]["mode"]) == (False, None)
    assert reg["missing"] == 2  # Delete not registered, Update disabled


async def test_registrations_are_read_once_a_minute_unless_asked(systems_client: Any) -> None:
    client, _, query = systems_client
    await client.get("/api/systems", headers=BEARER)
    await client.get("/api/systems", headers=BEARER)
    assert len(query.calls) == 2  # endpoints + steps, once
    assert query.calls[1] == ("sdkmessageprocessingsteps", "startswith(name,'dualwrite: ')")
    await client.get("/api/systems?refresh=true", headers=BEARER)
    assert len(query.calls) == 4


async def test_registrations_are_read_within_a_deadline(systems_client: Any) -> None:
    client, _, query = systems_client
    before = time.monotonic()
    await client.get("/api/systems", headers=BEARER)
    # A Dataverse that does not answer must not hold the page: the reads run within 5 s.
    assert all(d is not None and before < d <= time.monotonic() + 5.0 for d in query.deadlines)
    assert len(query.deadlines) == 2


async def test_a_refused_read_shows_dataverses_message(systems_client: Any) -> None:
    client, _, query = systems_client
    query.refuse = "cds 403: Principal user is missing prvReadSdkMessageProcessingStep privilege"
    resp = await client.get("/api/systems?refresh=true", headers=BEARER)
    assert resp.status == 200  # the health is still worth showing
    reg = (await resp.json())["registrations"]
    assert reg["error"] == query.refuse and reg["steps"] == []


@pytest.mark.parametrize("query", ["refresh=maybe", "nope=1"])
async def test_bad_query_is_a_clear_400(systems_client: Any, query: str) -> None:
    client, _, calls = systems_client
    resp = await client.get(f"/api/systems?{query}", headers=BEARER)
    assert resp.status == 400
    assert (await resp.json())["message"].startswith("query: ")
    assert calls.calls == []


async def test_the_openapi_document_describes_systems(systems_client: Any) -> None:
    client, _, _ = systems_client
    doc = await (await client.get("/api/openapi.json", headers=BEARER)).json()
    op = doc["paths"]["/api/systems"]["get"]
    assert op["tags"] == ["systems"] and [p["name"] for p in op["parameters"]] == ["refresh"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SystemsView"
    }
    assert "TokenView" in doc["components"]["schemas"]


# ---------------------------------------------------------------- the running bridge and both emulators


async def test_the_running_bridge_reads_back_its_registrations_and_sees_throttling(env: Harness) -> None:
    # A person's change in Dataverse reaches F&O: both systems answered, both tokens are valid.
    resp = await env.cds_create("msdyn_shipvias", {"msdyn_name": "AIR", "msdyn_description": "Air"})
    assert resp.status == 201, resp.body
    await eventually(lambda: env.scm_find("DeliveryModesV2", "ModeCode", "AIR"), what="AIR in F&O")
    body = (await env.ops("GET", "/api/systems")).body
    by = {s["system"]: s for s in body["systems"]}
    assert by["cds"]["reachable"] is True and by["scm"]["reachable"] is True
    assert by["cds"]["token"]["state"] == by["scm"]["token"]["state"] == "valid"
    assert by["scm"]["url"] == env.bridge.scm.http.base_url
    reg = body["registrations"]
    assert reg["error"] is None and reg["missing"] == 0
    ours = [e for e in reg["endpoints"] if e["ours"]]
    assert [e["url"] for e in ours] == [f"{env.bridge.url}/webhooks/cds"]
    # Every map with Dataverse tables to watch (the product map flows from F&O only: none).
    assert {(s["map"], s["message"]) for s in reg["steps"]} == {
        (name, msg)
        for name, m in env.bridge.mappings.maps.items()
        if registered_tables(m)
        for msg in ("Create", "Update", "Delete")
    }
    assert all(s["found"] and s["mode"] == "sync" and s["enabled"] for s in reg["steps"])

    # F&O throttles the next call (429, Retry-After: 1): the bridge waits, the change still arrives.
    env.sandbox.faults["fno"].configure(FaultSettings(throttle_next=1, retry_after=1))
    resp = await env.cds_create("msdyn_shipvias", {"msdyn_name": "SEA", "msdyn_description": "Sea"})
    assert resp.status == 201, resp.body
    await eventually(lambda: env.scm_find("DeliveryModesV2", "ModeCode", "SEA"), what="SEA in F&O")
    scm = {s["system"]: s for s in (await env.ops("GET", "/api/systems")).body["systems"]}["scm"]
    assert scm["throttled"] == 1 and scm["retry_after_waited_s"] >= 1.0
    assert "scm 429: The request was throttled" in scm["last_error"]
