"""The admin API: seed, dump, reset and the write log (faults and jobs: test_faults / test_webhooks)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from bridge.sandbox.pytest_plugin import WebhookReceiver, bearer
from bridge.sandbox.runtime import Sandbox


class Admin:
    def __init__(self, sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        self.sb, self.http = sandbox, http
        self.headers = {"x-sandbox-admin-key": sandbox.info.admin_key}

    def url(self, system: str, path: str) -> str:
        base = self.sb.info.cds_admin_url if system == "dataverse" else self.sb.info.scm_admin_url
        return f"{base}/{path}"

    async def call(
        self, method: str, system: str, path: str, body: Any = None, raw: bytes | None = None
    ) -> Any:
        kwargs: dict[str, Any] = {"data": raw} if raw is not None else {"json": body}
        async with self.http.request(method, self.url(system, path), headers=self.headers, **kwargs) as resp:
            text = await resp.text()
            return resp.status, (await resp.json()) if text else None


@pytest.fixture
def admin(sandbox: Sandbox, sandbox_http: aiohttp.ClientSession) -> Admin:
    return Admin(sandbox, sandbox_http)


MODE = {"DeliveryModesV2": [{"dataAreaId": "usmf", "ModeCode": "AIR", "ModeDescription": "Air"}]}


async def test_seed_is_validated_and_silent(admin: Admin, webhook_receiver: WebhookReceiver) -> None:
    await admin.call("POST", "fno", "dataevents/endpoints", {"name": "r", "url": webhook_receiver.url})
    status, created = await admin.call("POST", "fno", "seed", MODE)
    assert status == 200 and created["DeliveryModesV2"][0]["ModeCode"] == "AIR"
    _, dump = await admin.call("GET", "fno", "dump")
    assert [r["ModeCode"] for r in dump["DeliveryModesV2"]] == ["AIR"]
    await admin.sb.notifier.drain()
    assert webhook_receiver.received == []  # seeding is not a business write: no events
    assert (await admin.call("GET", "fno", "writes"))[1] == []


@pytest.mark.parametrize(
    ("system", "body"),
    [
        ("fno", {"DeliveryModesV2": [{"dataAreaId": "usmf", "ModeCode": "FAR-TOO-LONG-CODE"}]}),
        ("fno", {"DeliveryModesV2": [{"dataAreaId": "usmf", "ModeCode": "OK"}, {"dataAreaId": "zzzz"}]}),
        ("dataverse", {"msdyn_shipvias": [{"msdyn_name": "no company"}]}),
        ("dataverse", {"no_such_set": [{}]}),
        ("dataverse", {"msdyn_shipvias": {"not": "a list"}}),
        ("dataverse", [1, 2]),
    ],
)
async def test_bad_seed_is_rejected_and_writes_nothing(admin: Admin, system: str, body: Any) -> None:
    _, before = await admin.call("GET", system, "dump")
    status, error = await admin.call("POST", system, "seed", body)
    assert status == 400 and error["error"]["message"]
    assert (await admin.call("GET", system, "dump"))[1] == before


async def test_malformed_json_is_a_400(admin: Admin) -> None:
    status, error = await admin.call("POST", "dataverse", "seed", raw=b"{not json")
    assert status == 400 and "Malformed JSON" in error["error"]["message"]


async def test_dump_is_deterministic(admin: Admin) -> None:
    first, second = (
        (await admin.call("GET", "dataverse", "dump"))[1],
        (await admin.call("GET", "dataverse", "dump"))[1],
    )
    assert first == second
    assert [r["cdm_companycode"] for r in first["cdm_companies"]] == ["USMF"]


async def test_writes_log_names_the_caller(admin: Admin) -> None:
    body = {"dataAreaId": "usmf", "ModeCode": "SEA"}
    headers = bearer(admin.sb.token("user", "fno"))
    async with admin.http.post(
        f"{admin.sb.info.scm_url}/DeliveryModesV2", json=body, headers=headers
    ) as resp:
        assert resp.status == 201
    _, writes = await admin.call("GET", "fno", "writes")
    assert [(w["entity_set"], w["message"], w["client_id"]) for w in writes] == [
        ("DeliveryModesV2", "Create", admin.sb.info.user_client_id)
    ]


def _timeless(dump: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    # Reseeded rows get a new ModifiedDateTime; everything else must be as it was.
    return {
        k: [{c: v for c, v in r.items() if c != "ModifiedDateTime"} for r in rows] for k, rows in dump.items()
    }


async def test_reset_restores_defaults_and_clears_logs(
    admin: Admin, webhook_receiver: WebhookReceiver
) -> None:
    _, pristine = await admin.call("GET", "fno", "dump")
    await admin.call("POST", "fno", "dataevents/endpoints", {"name": "r", "url": webhook_receiver.url})
    await admin.call("PUT", "fno", "faults", {"latency_ms": 1})
    headers = bearer(admin.sb.token("user", "fno"))
    async with admin.http.post(
        f"{admin.sb.info.scm_url}/DeliveryModesV2",
        json={"dataAreaId": "usmf", "ModeCode": "SEA"},
        headers=headers,
    ) as resp:
        assert resp.status == 201
    await admin.sb.notifier.drain()
    assert (await admin.call("POST", "fno", "reset"))[0] == 204
    assert _timeless((await admin.call("GET", "fno", "dump"))[1]) == _timeless(pristine)
    for path in ("writes", "jobs", "faults/log", "dataevents/endpoints"):
        assert (await admin.call("GET", "fno", path))[1] == [], path
    assert (await admin.call("GET", "fno", "faults"))[1]["latency_ms"] == 0


async def test_index_lists_the_routes(admin: Admin) -> None:
    _, fno = await admin.call("GET", "fno", "")
    _, dataverse = await admin.call("GET", "dataverse", "")
    assert "POST /_sandbox/dataevents/endpoints" in fno["routes"]
    assert not any("dataevents" in r for r in dataverse["routes"])
