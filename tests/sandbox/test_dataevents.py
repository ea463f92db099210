"""F&O data events: endpoints through the admin API, payloads, at-least-once delivery."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from bridge.sandbox.pytest_plugin import WebhookReceiver, bearer
from bridge.sandbox.runtime import Sandbox

ZERO = "00000000-0000-0000-0000-000000000000"


class Fno:
    def __init__(self, sandbox: Sandbox, http: aiohttp.ClientSession, client: Any = "user") -> None:
        self.sb, self.http = sandbox, http
        self.token = sandbox.token(client, "fno")
        self.admin = {"x-sandbox-admin-key": sandbox.info.admin_key}

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(
            method, f"{self.sb.info.scm_url}/{path}", json=body, headers=bearer(self.token)
        ) as resp:
            text = await resp.text()
            return resp.status, (await resp.json()) if text else None

    async def endpoint(self, receiver: WebhookReceiver, **extra: Any) -> tuple[int, Any]:
        body = {"name": "bridge", "url": receiver.url, "headers": {"x-dualwrite-key": "k"}, **extra}
        async with self.http.post(
            f"{self.sb.info.scm_admin_url}/dataevents/endpoints", json=body, headers=self.admin
        ) as resp:
            return resp.status, await resp.json()

    async def warehouse(self, ident: str = "W1", company: str = "usmf", **extra: Any) -> tuple[int, Any]:
        body = {
            "dataAreaId": company,
            "WarehouseId": ident,
            "WarehouseName": "Main",
            "OperationalSiteId": "1",
        }
        return await self.call("POST", "Warehouses", {**body, **extra})


@pytest.fixture
def fno(sandbox: Sandbox, sandbox_http: aiohttp.ClientSession) -> Fno:
    return Fno(sandbox, sandbox_http)


def _attrs(entity: dict[str, Any]) -> dict[str, Any]:
    return {kv["key"]: kv["value"] for kv in entity["Attributes"]}


def _target(event: dict[str, Any]) -> dict[str, Any]:
    return next(kv["value"] for kv in event["InputParameters"] if kv["key"] == "Target")


async def test_create_update_delete_events(fno: Fno, webhook_receiver: WebhookReceiver) -> None:
    assert (await fno.endpoint(webhook_receiver))[0] == 201
    assert (await fno.warehouse())[0] == 201
    key = "Warehouses(dataAreaId='usmf',WarehouseId='W1')"
    assert (await fno.call("PATCH", key, {"WarehouseName": "Renamed"}))[0] == 204
    assert (await fno.call("DELETE", key))[0] == 204
    await fno.sb.notifier.drain()
    created, updated, deleted = (r.json() for r in webhook_receiver.received)
    call = webhook_receiver.received[0]
    assert call.headers["x-dualwrite-key"] == "k" and call.headers["Content-Type"] == "application/json"
    assert created["BusinessEventId"] == "Warehouse_Created"
    # The virtual tables' messages (powerapps-docs, virtual-entities/enable-virtual-table-event-support.md).
    names = [created["MessageName"], updated["MessageName"], deleted["MessageName"]]
    assert names == ["OnExternalCreated", "OnExternalUpdated", "OnExternalDeleted"]
    assert call.headers["x-ms-dynamics-request-name"] == "OnExternalCreated"
    assert re.fullmatch(r"/Date\(\d+\+0000\)/", created["OperationCreatedOn"])
    assert created["PrimaryEntityName"] == "mserp_warehouse" and created["PrimaryEntityId"] == ZERO
    assert (created["Mode"], created["Stage"], created["MajorVersion"]) == (1, 40, 0)
    assert created["BusinessEventLegalEntity"] == "usmf"
    assert created["InitiatingUserAADObjectId"] == fno.sb.info.user_object_id
    assert created["EventTime"].startswith("/Date(") and created["EventTimeIso8601"].endswith("Z")
    attrs = _attrs(_target(created))
    assert attrs["mserp_warehouseid"] == "W1" and attrs["mserp_dataareaid"] == "usmf"
    assert attrs["mserp_warehousename"] == "Main"
    assert not any(k.startswith("mserp_@") or "@" in k for k in attrs)
    assert _attrs(_target(updated))["mserp_warehousename"] == "Renamed"
    # "The entity fields will be included in the schema in the Target and PreImage properties of the
    # InputParameters" (dynamics-365-unified-operations-public,
    # articles/fin-ops-core/dev-itpro/business-events/data-events.md).
    pre = next(kv["value"] for kv in updated["InputParameters"] if kv["key"] == "PreImage")
    assert _attrs(pre)["mserp_warehousename"] == "Main" and _attrs(pre)["mserp_warehouseid"] == "W1"
    assert updated["PreEntityImages"] == [] and created["PreEntityImages"] == []
    assert [kv["key"] for kv in created["InputParameters"]] == ["Target"]
    assert deleted["BusinessEventId"] == "Warehouse_Deleted"
    assert _attrs(_target(deleted)) == {"mserp_dataareaid": "usmf", "mserp_warehouseid": "W1"}
    numbers = [created["ControlNumber"], updated["ControlNumber"], deleted["ControlNumber"]]
    assert numbers == sorted(set(numbers))
    assert len({created["EventId"], updated["EventId"], deleted["EventId"]}) == 3


async def test_bridge_writes_carry_the_bridge_object_id(
    sandbox: Sandbox, sandbox_http: Any, webhook_receiver: Any
) -> None:
    fno = Fno(sandbox, sandbox_http, client="bridge")
    await fno.endpoint(webhook_receiver)
    await fno.warehouse()
    await sandbox.notifier.drain()
    event = webhook_receiver.received[0].json()
    assert event["InitiatingUserAADObjectId"] == sandbox.info.bridge_object_id
    [job] = sandbox.notifier.fno.jobs
    assert job.initiating_client_id == sandbox.info.client_id and job.event_id == event["EventId"]


async def test_endpoint_filters_entity_sets_and_companies(
    fno: Fno, webhook_receiver: WebhookReceiver
) -> None:
    await fno.endpoint(webhook_receiver, entity_sets=["DeliveryModesV2"])
    await fno.warehouse()
    await fno.call(
        "POST", "DeliveryModesV2", {"dataAreaId": "usmf", "ModeCode": "AIR", "ModeDescription": "Air"}
    )
    await fno.sb.notifier.drain()
    assert [r.json()["BusinessEventId"] for r in webhook_receiver.received] == ["DeliveryModeV2_Created"]


async def test_other_legal_entity_is_not_sent(fno: Fno, webhook_receiver: WebhookReceiver) -> None:
    await fno.endpoint(webhook_receiver, legal_entities=["DEMF"])
    await fno.warehouse()
    await fno.sb.notifier.drain()
    assert webhook_receiver.received == []


async def test_failed_delivery_is_retried_three_times_with_the_same_event(
    fno: Fno, webhook_receiver: WebhookReceiver
) -> None:
    await fno.endpoint(webhook_receiver)
    webhook_receiver.statuses = [500, 503]
    await fno.warehouse()
    await fno.sb.notifier.drain()
    assert len(webhook_receiver.received) == 3
    assert len({r.json()["EventId"] for r in webhook_receiver.received}) == 1
    [job] = fno.sb.notifier.fno.jobs
    assert job.status == "succeeded" and [a.status for a in job.attempts] == [500, 503, 200]


async def test_exhausted_delivery_lands_in_the_error_log(fno: Fno, webhook_receiver: WebhookReceiver) -> None:
    await fno.endpoint(webhook_receiver)
    webhook_receiver.status = 500
    await fno.warehouse()
    await fno.sb.notifier.drain()
    assert len(webhook_receiver.received) == 4  # first try + 3 retries
    async with fno.http.get(f"{fno.sb.info.scm_admin_url}/jobs?status=failed", headers=fno.admin) as resp:
        [job] = await resp.json()
    assert job["kind"] == "dataevent" and len(job["attempts"]) == 4
    assert job["attempts"][-1]["error"] == "500 Internal Server Error"


async def test_failed_write_sends_nothing(fno: Fno, webhook_receiver: WebhookReceiver) -> None:
    await fno.endpoint(webhook_receiver)
    status, _ = await fno.warehouse(ident="WAREHOUSE-LONG-ID")  # F&O takes at most 10 characters
    assert status == 400
    await fno.sb.notifier.drain()
    assert webhook_receiver.received == []


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x"},
        {"name": "x", "url": "ftp://nowhere"},
        {"name": "x", "url": "https://h/e", "entity_sets": ["Customers"]},
        {"name": "x", "url": "https://h/e", "unknown": 1},
    ],
)
async def test_bad_endpoint_definitions_are_rejected(fno: Fno, body: dict[str, Any]) -> None:
    async with fno.http.post(
        f"{fno.sb.info.scm_admin_url}/dataevents/endpoints", json=body, headers=fno.admin
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["message"]
    assert fno.sb.notifier.fno.endpoints == {}


async def test_endpoints_listed_and_deleted(fno: Fno, webhook_receiver: WebhookReceiver) -> None:
    _, created = await fno.endpoint(webhook_receiver)
    url = f"{fno.sb.info.scm_admin_url}/dataevents/endpoints"
    async with fno.http.get(url, headers=fno.admin) as resp:
        assert [e["id"] for e in await resp.json()] == [created["id"]]
    async with fno.http.delete(f"{url}/{created['id']}", headers=fno.admin) as resp:
        assert resp.status == 204
    async with fno.http.delete(f"{url}/{created['id']}", headers=fno.admin) as resp:
        assert resp.status == 404
    await fno.warehouse()
    await fno.sb.notifier.drain()
    assert webhook_receiver.received == []
