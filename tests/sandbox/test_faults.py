"""Every fault knob, set through the admin API and observed over real HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from bridge.sandbox.pytest_plugin import WebhookReceiver, bearer, register_webhook
from bridge.sandbox.runtime import Sandbox


class Client:
    def __init__(self, sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        self.sb, self.http = sandbox, http
        self.admin_headers = {"x-sandbox-admin-key": sandbox.info.admin_key}

    def admin_url(self, system: str) -> str:
        return self.sb.info.cds_admin_url if system == "dataverse" else self.sb.info.scm_admin_url

    async def faults(self, system: str, **knobs: Any) -> int:
        async with self.http.put(
            f"{self.admin_url(system)}/faults", json=knobs, headers=self.admin_headers
        ) as r:
            return r.status

    async def log(self, system: str) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.admin_url(system)}/faults/log", headers=self.admin_headers) as r:
            return list(await r.json())

    async def read(self, system: str) -> aiohttp.ClientResponse:
        url = (
            f"{self.sb.info.cds_url}/WhoAmI"
            if system == "dataverse"
            else f"{self.sb.info.scm_url}/LegalEntities"
        )
        async with self.http.get(url, headers=bearer(self.sb.token("bridge", system))) as resp:
            await resp.read()
            return resp

    async def fno_warehouse(self, ident: str) -> int:
        body = {"dataAreaId": "usmf", "WarehouseId": ident, "WarehouseName": ident, "OperationalSiteId": "1"}
        async with self.http.post(
            f"{self.sb.info.scm_url}/Warehouses", json=body, headers=bearer(self.sb.token("user", "fno"))
        ) as resp:
            return resp.status

    async def dataevents_to(self, receiver: WebhookReceiver) -> None:
        async with self.http.post(
            f"{self.sb.info.scm_admin_url}/dataevents/endpoints",
            json={"name": "r", "url": receiver.url},
            headers=self.admin_headers,
        ) as resp:
            assert resp.status == 201

    def received_ids(self, receiver: WebhookReceiver) -> list[str]:
        out = []
        for r in receiver.received:
            target = next(kv["value"] for kv in r.json()["InputParameters"] if kv["key"] == "Target")
            out.append(next(a["value"] for a in target["Attributes"] if a["key"] == "mserp_warehouseid"))
        return out


@pytest.fixture
def client(sandbox: Sandbox, sandbox_http: aiohttp.ClientSession) -> Client:
    return Client(sandbox, sandbox_http)


SYSTEMS = ["dataverse", "fno"]


@pytest.mark.parametrize("system", SYSTEMS)
async def test_added_latency(client: Client, system: str) -> None:
    assert await client.faults(system, latency_ms=150) == 200
    started = time.perf_counter()
    assert (await client.read(system)).status == 200
    assert time.perf_counter() - started >= 0.15
    assert [e["kind"] for e in await client.log(system)] == ["latency"]


@pytest.mark.parametrize("system", SYSTEMS)
async def test_throttle_next_n_with_retry_after(client: Client, system: str) -> None:
    await client.faults(system, throttle_next=2, retry_after=7)
    for _ in range(2):
        resp = await client.read(system)
        assert resp.status == 429 and resp.headers["Retry-After"] == "7"
    assert (await client.read(system)).status == 200
    log = await client.log(system)
    assert [e["kind"] for e in log] == ["throttle", "throttle"] and log[0]["system"] == system
    assert "GET " in log[0]["request"]


async def test_throttle_bodies_are_each_systems_shape(client: Client) -> None:
    await client.faults("dataverse", throttle_next=1)
    await client.faults("fno", throttle_next=1)
    async with client.http.get(f"{client.sb.info.cds_url}/WhoAmI") as resp:
        assert (await resp.json())["error"]["code"] == "0x80072322"
    async with client.http.get(f"{client.sb.info.scm_url}/LegalEntities") as resp:
        assert (await resp.json())["error"]["innererror"]["message"]


async def test_log_shows_a_client_honouring_retry_after(client: Client) -> None:
    # latency_ms=1 makes every request leave a log entry, so the gap after the 429 is visible.
    await client.faults("dataverse", throttle_next=1, retry_after=1, latency_ms=1)
    statuses = []
    for _ in range(2):  # a well-behaved client: wait Retry-After, then try again
        resp = await client.read("dataverse")
        statuses.append(resp.status)
        if resp.status == 429:
            await asyncio.sleep(int(resp.headers["Retry-After"]))
    assert statuses == [429, 200]
    log = await client.log("dataverse")
    assert [e["kind"] for e in log] == ["latency", "throttle", "latency"]
    assert log[2]["monotonic"] - log[1]["monotonic"] >= 1.0


async def test_a_slowed_batch_is_logged_with_its_requests_and_still_applied(client: Client) -> None:
    """The log names each request inside a $batch; reading the body for that leaves it to the handler."""
    await client.faults("fno", latency_ms=1)
    boundary = "batch_t1"
    parts = []
    for n, ident in enumerate(("LB1", "LB2"), start=1):
        body = {"dataAreaId": "usmf", "WarehouseId": ident, "WarehouseName": ident, "OperationalSiteId": "1"}
        parts.append(
            f"--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: {n}\r\n\r\nPOST {client.sb.info.scm_url}/Warehouses HTTP/1.1\r\n"
            f"Content-Type: application/json\r\n\r\n{json.dumps(body)}\r\n"
        )
    payload = "".join(parts) + f"--{boundary}--\r\n"
    headers = {
        **bearer(client.sb.token("user", "fno")),
        "Content-Type": f"multipart/mixed; boundary={boundary}",
        "Prefer": "odata.continue-on-error",
    }
    async with client.http.post(f"{client.sb.info.scm_url}/$batch", data=payload, headers=headers) as resp:
        text = await resp.text()
        assert resp.status == 200, text
    assert text.count("HTTP/1.1 201") == 2  # both writes applied: the handler saw the whole body
    entry = next(e for e in await client.log("fno") if e["request"].endswith("/$batch"))
    assert [p.split("/")[-1] for p in entry["parts"]] == ["Warehouses", "Warehouses"]
    assert all(p.startswith("POST /") for p in entry["parts"])


async def test_throttle_rate_is_repeatable_with_a_seed(client: Client) -> None:
    async def run() -> list[int]:
        await client.faults("dataverse", throttle_rate=0.5, seed=42)
        return [(await client.read("dataverse")).status for _ in range(16)]

    first, second = await run(), await run()
    assert first == second and {429, 200} == set(first)


@pytest.mark.parametrize("system", SYSTEMS)
async def test_unavailable_next_n_and_rate(client: Client, system: str) -> None:
    await client.faults(system, unavailable_next=1)
    assert (await client.read(system)).status == 503
    assert (await client.read(system)).status == 200
    await client.faults(system, unavailable_rate=1.0)
    assert (await client.read(system)).status == 503


async def test_admin_routes_are_never_faulted_and_knobs_validated(client: Client) -> None:
    await client.faults("dataverse", unavailable_rate=1.0, latency_ms=0)
    async with client.http.get(
        f"{client.admin_url('dataverse')}/faults", headers=client.admin_headers
    ) as resp:
        assert resp.status == 200 and (await resp.json())["unavailable_rate"] == 1.0
    assert await client.faults("dataverse", unavailable_rate=2) == 400
    assert await client.faults("dataverse", bogus=1) == 400
    async with client.http.delete(
        f"{client.admin_url('dataverse')}/faults", headers=client.admin_headers
    ) as resp:
        assert resp.status == 204
    assert (await client.read("dataverse")).status == 200


async def test_drop_next_notification(client: Client, webhook_receiver: WebhookReceiver) -> None:
    await client.dataevents_to(webhook_receiver)
    await client.faults("fno", drop_next=1)
    assert await client.fno_warehouse("A") == 201
    assert await client.fno_warehouse("B") == 201
    await client.sb.notifier.drain()
    assert client.received_ids(webhook_receiver) == ["B"]
    assert [j.status for j in client.sb.notifier.fno.jobs] == ["dropped", "succeeded"]
    assert [e["kind"] for e in await client.log("fno")] == ["drop"]


async def test_duplicate_next_notification(client: Client, webhook_receiver: WebhookReceiver) -> None:
    await client.dataevents_to(webhook_receiver)
    await client.faults("fno", duplicate_next=1)
    await client.fno_warehouse("A")
    await client.sb.notifier.drain()
    first, second = (r.json() for r in webhook_receiver.received)
    assert first["EventId"] == second["EventId"] and first["ControlNumber"] == second["ControlNumber"]


async def test_reorder_holds_one_back_until_after_the_next(
    client: Client, webhook_receiver: WebhookReceiver
) -> None:
    await client.dataevents_to(webhook_receiver)
    await client.faults("fno", reorder_next=1)
    await client.fno_warehouse("A")
    await client.fno_warehouse("B")
    await client.sb.notifier.drain()
    assert client.received_ids(webhook_receiver) == ["B", "A"]


async def test_held_notification_is_released_after_the_hold(
    client: Client, webhook_receiver: WebhookReceiver
) -> None:
    await client.dataevents_to(webhook_receiver)
    await client.faults("fno", reorder_next=1, reorder_hold_ms=50)
    await client.fno_warehouse("A")
    await webhook_receiver.wait_for(1, within=2.0)
    assert client.received_ids(webhook_receiver) == ["A"]


async def test_drop_applies_to_async_webhooks_too(client: Client, webhook_receiver: WebhookReceiver) -> None:
    token = client.sb.token("user")
    await register_webhook(
        client.http,
        client.sb.info,
        token,
        url=webhook_receiver.url,
        entity="msdyn_shipvia",
        message="Create",
        mode=1,
    )
    await client.faults("dataverse", drop_rate=1.0)
    company = client.sb.dataverse.rows("cdm_companies")[0]["cdm_companyid"]
    body = {"msdyn_name": "AIR", "msdyn_company@odata.bind": f"/cdm_companies({company})"}
    async with client.http.post(
        f"{client.sb.info.cds_url}/msdyn_shipvias", json=body, headers=bearer(token)
    ) as resp:
        assert resp.status == 204
    await client.sb.notifier.drain()
    assert webhook_receiver.received == []
    assert [j.status for j in client.sb.notifier.dataverse.jobs] == ["dropped"]


async def test_webhook_timeout_fails_the_sync_step_after_sending(
    client: Client, webhook_receiver: WebhookReceiver
) -> None:
    token = client.sb.token("user")
    await register_webhook(
        client.http, client.sb.info, token, url=webhook_receiver.url, entity="msdyn_shipvia", message="Create"
    )
    await client.faults("dataverse", webhook_timeout_next=1)
    company = client.sb.dataverse.rows("cdm_companies")[0]["cdm_companyid"]
    url = f"{client.sb.info.cds_url}/msdyn_shipvias"
    body = {"msdyn_name": "AIR", "msdyn_company@odata.bind": f"/cdm_companies({company})"}
    async with client.http.post(url, json=body, headers=bearer(token)) as resp:
        assert resp.status >= 400
        assert "timed out" in (await resp.json())["error"]["message"]
    assert len(webhook_receiver.received) == 1  # it was sent; the answer "never came"
    assert client.sb.dataverse.rows("msdyn_shipvias") == []
    async with client.http.post(url, json=body, headers=bearer(token)) as resp:
        assert resp.status == 204
    assert [e["kind"] for e in await client.log("dataverse")] == ["webhook_timeout"]
