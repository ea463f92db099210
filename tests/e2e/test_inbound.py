"""What the running bridge accepts and refuses at its webhooks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.sandbox.notify import context as dataverse_context
from tests.e2e.harness import Harness


async def test_oversize_notification_makes_the_bridge_read_the_record(
    env: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every notification counts as "over 256 KB": Dataverse drops InputParameters and the images and
    # sets x-ms-dynamics-msg-size-exceeded; the bridge must read the record itself.
    monkeypatch.setattr(dataverse_context, "SIZE_LIMIT", 16)
    fetched: list[tuple[str, str]] = []
    real_fetch = env.bridge.listener.fetch_cds_record

    async def counting_fetch(entity_set: str, record_id: str) -> dict[str, Any] | None:
        fetched.append((entity_set, record_id))
        return await real_fetch(entity_set, record_id)

    env.bridge.listener.fetch_cds_record = counting_fetch
    created = await env.cds_create(
        "msdyn_shipvias", {"msdyn_name": "Big", "msdyn_description": "large payload"}
    )
    assert created.status == 201, created.body
    assert fetched and fetched[0][0] == "msdyn_shipvias"  # no images in the body: the bridge tried to read
    # Inside the synchronous step the new row is not committed yet, so it cannot be read: the bridge
    # lets the save commit and applies the change right after, reading the committed row.
    await env.settle()
    row = await env.scm_find("DeliveryModesV2", "ModeCode", "Big")
    assert row is not None and row["ModeDescription"] == "large payload"


async def _post(env: Harness, path: str, body: bytes, headers: dict[str, str]) -> int:
    async with env.http.post(f"{env.bridge.url}{path}", data=body, headers=headers) as resp:
        return resp.status


@pytest.mark.parametrize(
    ("path", "body", "auth", "expected"),
    [
        ("/webhooks/cds", b"{}", False, 401),
        ("/webhooks/scm", b"{}", False, 401),
        ("/webhooks/cds", b"{not json", True, 400),
        ("/webhooks/scm", b"[1, 2", True, 400),
        ("/webhooks/cds", json.dumps({"MessageName": 5}).encode(), True, 400),
        ("/webhooks/scm", json.dumps({"MessageName": "Create", "InputParameters": "x"}).encode(), True, 400),
        ("/webhooks/cds", b"x" * 2_000_000, True, 413),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_queued(
    env: Harness, path: str, body: bytes, auth: bool, expected: int
) -> None:
    await env.settle()
    headers = {"Content-Type": "application/json"}
    if auth:
        which = "cds" if path.endswith("cds") else "scm"
        if which == "cds":
            path += "?code=" + env.bridge.settings.cds_webhook_key.get_secret_value()
        else:
            headers["x-dualwrite-key"] = env.bridge.settings.scm_webhook_key.get_secret_value()
    assert await _post(env, path, body, headers) == expected
    assert await env.bridge.queue.depth() == 0
    # ... and the bridge keeps serving: a real change still flows.
    assert (
        await env.scm_create("DeliveryModesV2", {"ModeCode": "After", "ModeDescription": "ok"})
    ).status == 201
    await env.settle()
    assert await env.cds_find("msdyn_shipvias", "msdyn_name", "After") is not None


async def test_unmapped_entity_is_acknowledged_and_ignored(env: Harness) -> None:
    body = {
        "MessageName": "Create",
        "PrimaryEntityName": "contact",
        "PrimaryEntityId": "6a1c7c8e-0d5b-4a8e-9f65-0f4b3d8c2a11",
        "Mode": 1,
        "Stage": 40,
        "Depth": 1,
        "CorrelationId": "c0ffee00-0000-0000-0000-000000000001",
        "RequestId": "c0ffee00-0000-0000-0000-000000000002",
        "OperationId": "c0ffee00-0000-0000-0000-000000000003",
        "InitiatingUserId": "c0ffee00-0000-0000-0000-000000000004",
        "UserId": "c0ffee00-0000-0000-0000-000000000004",
        "OperationCreatedOn": "/Date(1700000000000)/",
        "InputParameters": [],
        "OutputParameters": [],
        "PreEntityImages": [],
        "PostEntityImages": [],
        "SharedVariables": [],
    }
    url = "/webhooks/cds?code=" + env.bridge.settings.cds_webhook_key.get_secret_value()
    status = await _post(env, url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    assert status == 200
    assert await env.bridge.queue.depth() == 0
    assert env.bridge.listener.stats["cds.unmapped"] >= 1
