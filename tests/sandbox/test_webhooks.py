"""Dataverse webhooks registered through the Web API, over real HTTP(S)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import aiohttp
import pytest

from bridge.sandbox.notify.registrations import parse_settings
from bridge.sandbox.pytest_plugin import WebhookReceiver, bearer, register_webhook
from bridge.sandbox.runtime import Sandbox, SandboxConfig

CONTEXT_KEYS = {
    *("BusinessUnitId", "CorrelationId", "Depth", "InitiatingUserId", "InputParameters"),
    *("IsExecutingOffline",),
    *("IsInTransaction", "IsOfflinePlayback", "IsolationMode", "MessageName", "Mode", "OperationCreatedOn"),
    *("OperationId", "OrganizationId", "OrganizationName", "OutputParameters", "OwningExtension"),
    *("ParentContext", "PostEntityImages", "PreEntityImages", "PrimaryEntityId", "PrimaryEntityName"),
    *("RequestId", "SecondaryEntityName", "SharedVariables", "Stage", "UserId"),
}
XRM = "http://schemas.microsoft.com/xrm/2011/Contracts"


@pytest.fixture
def sandbox_config(sandbox_config: SandboxConfig) -> SandboxConfig:
    return sandbox_config.model_copy(update={"webhook_timeout": 0.5})


class Api:
    """Dataverse Web API calls as the sandbox user (a person, not the bridge)."""

    def __init__(self, sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        self.sb, self.http, self.base = sandbox, http, sandbox.info.cds_url
        self.token = sandbox.token("user")

    async def call(self, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
        async with self.http.request(
            method, f"{self.base}/{path}", json=body, headers=bearer(self.token, **headers)
        ) as resp:
            text = await resp.text()
            return resp.status, (await resp.json()) if text else None

    async def company(self) -> str:
        _, body = await self.call("GET", "cdm_companies?$filter=cdm_companycode eq 'USMF'")
        return str(body["value"][0]["cdm_companyid"])

    async def create_warehouse(self, ident: str, **extra: Any) -> tuple[int, Any]:
        body = {
            "msdyn_warehouseidentifier": ident,
            "msdyn_name": ident,
            "msdyn_company@odata.bind": f"/cdm_companies({await self.company()})",
            **extra,
        }
        return await self.call("POST", "msdyn_warehouses", body, Prefer="return=representation")

    async def warehouses(self) -> list[dict[str, Any]]:
        _, body = await self.call("GET", "msdyn_warehouses")
        return list(body["value"])

    async def hook(self, receiver: WebhookReceiver, message: Any, **kw: Any) -> dict[str, str]:
        kw.setdefault("entity", "msdyn_warehouse")
        return await register_webhook(
            self.http, self.sb.info, self.token, url=receiver.url, message=message, **kw
        )


@pytest.fixture
def api(sandbox: Sandbox, sandbox_http: aiohttp.ClientSession) -> Api:
    return Api(sandbox, sandbox_http)


def _attrs(entity: dict[str, Any]) -> dict[str, Any]:
    return {kv["key"]: kv["value"] for kv in entity["Attributes"]}


def _header(call: Any, name: str) -> str:
    """A received header, by name in any case (aiohttp's client sends X-Request-ID capitalised)."""
    return next(v for k, v in call.headers.items() if k.lower() == name)


def _param(collection: list[dict[str, Any]], key: str) -> Any:
    return next(kv["value"] for kv in collection if kv["key"] == key)


async def test_sync_create_step_gets_the_remote_execution_context(
    api: Api, webhook_receiver: WebhookReceiver
) -> None:
    await api.hook(webhook_receiver, "Create", mode=0, authvalue="k3y")
    status, row = await api.create_warehouse("W1", msdyn_warehousetype=192350001)
    assert status == 201
    [call] = webhook_receiver.received
    assert call.query == {"code": "k3y"}
    assert call.headers["x-ms-dynamics-entity-name"] == "msdyn_warehouse"
    assert call.headers["x-ms-dynamics-request-name"] == "Create"
    assert call.headers["x-ms-dynamics-organization"] == api.sb.info.cds_origin.split("://")[1]
    assert call.headers["x-ms-correlation-request-id"]
    assert "x-ms-dynamics-msg-size-exceeded" not in call.headers
    ctx = call.json()
    assert set(ctx) == CONTEXT_KEYS
    assert (ctx["MessageName"], ctx["Mode"], ctx["Stage"], ctx["Depth"]) == ("Create", 0, 40, 1)
    assert ctx["IsInTransaction"] is True and ctx["SecondaryEntityName"] == "none"
    assert ctx["InitiatingUserId"] == ctx["UserId"] == api.sb.info.user_user_id
    assert (
        ctx["PrimaryEntityId"] == row["msdyn_warehouseid"] and ctx["PrimaryEntityName"] == "msdyn_warehouse"
    )
    # Written with the server's offset, as the published sample's "\/Date(1506409448000-0700)\/".
    assert re.fullmatch(r"/Date\(\d+\+0000\)/", ctx["OperationCreatedOn"])
    assert ctx["ParentContext"] is None  # a synchronous step runs inside the core operation
    assert uuid.UUID(_header(call, "x-request-id"))
    target = _param(ctx["InputParameters"], "Target")
    assert target["__type"] == f"Entity:{XRM}" and target["LogicalName"] == "msdyn_warehouse"
    attrs = _attrs(target)
    assert attrs["msdyn_warehouseidentifier"] == "W1"
    assert attrs["msdyn_warehousetype"] == {"__type": f"OptionSetValue:{XRM}", "Value": 192350001}
    assert attrs["msdyn_company"]["__type"] == f"EntityReference:{XRM}"
    assert attrs["msdyn_company"]["LogicalName"] == "cdm_company"
    assert _param(ctx["OutputParameters"], "id") == row["msdyn_warehouseid"]
    [job] = api.sb.notifier.dataverse.jobs
    assert (job.mode, job.status, job.initiating_user_id) == ("sync", "succeeded", api.sb.info.user_user_id)


@pytest.mark.parametrize("answer", [400, 500])
async def test_failing_sync_step_rolls_the_write_back(
    api: Api, webhook_receiver: WebhookReceiver, answer: int
) -> None:
    await api.hook(webhook_receiver, "Create", mode=0)
    webhook_receiver.status = answer
    status, body = await api.create_warehouse("W1")
    assert status >= 400
    message = body["error"]["message"]
    assert f"Webhook call to {webhook_receiver.url} failed: {answer}" in message
    assert "receiver text" not in message  # the answer's body is never read
    assert body["error"]["code"].startswith("0x")
    assert await api.warehouses() == []
    assert len(webhook_receiver.received) == 1


async def test_sync_step_timeout_rolls_back(api: Api, webhook_receiver: WebhookReceiver) -> None:
    await api.hook(webhook_receiver, "Create", mode=0)
    webhook_receiver.delay = 0.7  # webhook_timeout is 0.5 s in this module
    status, body = await api.create_warehouse("W1")
    assert status >= 400 and "timed out" in body["error"]["message"]
    assert await api.warehouses() == []


async def test_sync_step_failure_on_update_keeps_the_old_row(
    api: Api, webhook_receiver: WebhookReceiver
) -> None:
    _, row = await api.create_warehouse("W1")
    await api.hook(webhook_receiver, "Update", mode=0)
    webhook_receiver.status = 403
    status, _ = await api.call(
        "PATCH", f"msdyn_warehouses({row['msdyn_warehouseid']})", {"msdyn_name": "New"}
    )
    assert status >= 400
    assert [w["msdyn_name"] for w in await api.warehouses()] == ["W1"]


@pytest.mark.parametrize(("answers", "outcome"), [([503, 200], 201), ([502, 504], 400)])
async def test_sync_step_retried_exactly_once_after_5xx_gateway(
    api: Api, webhook_receiver: WebhookReceiver, answers: list[int], outcome: int
) -> None:
    await api.hook(webhook_receiver, "Create", mode=0)
    webhook_receiver.statuses = list(answers)
    webhook_receiver.status = 200
    status, _ = await api.create_warehouse("W1")
    assert status == outcome
    assert len(webhook_receiver.received) == 2


async def test_async_step_runs_after_commit_and_is_retried_once_on_503(
    api: Api, webhook_receiver: WebhookReceiver
) -> None:
    await api.hook(webhook_receiver, "Create", mode=1)
    webhook_receiver.statuses = [503]
    status, _ = await api.create_warehouse("W1")
    assert status == 201
    await api.sb.notifier.drain()
    first, second = webhook_receiver.received
    assert first.json()["Mode"] == 1 and first.json()["IsInTransaction"] is False
    assert first.body == second.body
    async with api.http.get(
        f"{api.sb.info.cds_admin_url}/jobs", headers={"x-sandbox-admin-key": api.sb.info.admin_key}
    ) as resp:
        [job] = await resp.json()
    assert job["status"] == "succeeded" and job["mode"] == "async"
    assert [a["status"] for a in job["attempts"]] == [503, 200]


# The shape of the sample in MicrosoftDocs/powerapps-docs,
# powerapps-docs/developer/data-platform/use-webhooks.md: an asynchronous PostOperation (40) step's
# context carries the core operation's (stage 30) as ParentContext: the same ids and times, Target
# with what the caller sent and the primary key, SuppressDuplicateDetection, ChangedEntityTypes.
async def test_async_step_context_nests_the_core_operation_as_parent_context(
    api: Api, webhook_receiver: WebhookReceiver
) -> None:
    _, row = await api.create_warehouse("W1", msdyn_description="before")
    await api.hook(webhook_receiver, "Update", mode=1)
    path = f"msdyn_warehouses({row['msdyn_warehouseid']})"
    assert (await api.call("PATCH", path, {"msdyn_description": "after"}))[0] == 204
    assert (await api.call("PATCH", path, {"msdyn_description": "again"}))[0] == 204
    await api.sb.notifier.drain()
    first, second = webhook_receiver.received
    ctx = first.json()
    parent = ctx["ParentContext"]
    assert set(parent) == CONTEXT_KEYS
    assert (parent["Stage"], parent["Mode"], parent["ParentContext"]) == (30, 1, None)
    same = ("CorrelationId", "OperationId", "OperationCreatedOn", "PrimaryEntityId", "MessageName")
    assert all(parent[k] == ctx[k] for k in (*same, "BusinessUnitId", "UserId", "OwningExtension"))
    assert parent["PreEntityImages"] == [] and parent["PostEntityImages"] == []
    assert _attrs(_param(parent["InputParameters"], "Target")) == {
        "msdyn_description": "after",
        "msdyn_warehouseid": row["msdyn_warehouseid"],
    }
    assert _param(parent["InputParameters"], "SuppressDuplicateDetection") is False
    [changed_types] = _param(parent["SharedVariables"], "ChangedEntityTypes")
    assert (changed_types["key"], changed_types["value"]) == ("msdyn_warehouse", "Update")
    assert (ctx["Stage"], ctx["Mode"]) == (40, 1)
    # A header per delivery: two calls, two ids.
    assert _header(first, "x-request-id") != _header(second, "x-request-id")


async def test_async_step_failure_is_recorded_not_retried(
    api: Api, webhook_receiver: WebhookReceiver
) -> None:
    await api.hook(webhook_receiver, "Create", mode=1)
    webhook_receiver.status = 500
    status, _ = await api.create_warehouse("W1")
    assert status == 201
    await api.sb.notifier.drain()
    assert len(webhook_receiver.received) == 1
    [job] = api.sb.notifier.dataverse.jobs
    assert job.status == "failed" and job.attempts[0].error == "500 Internal Server Error"
    assert len(await api.warehouses()) == 1


@pytest.mark.parametrize(
    ("authtype", "authvalue", "where", "expected"),
    [
        (4, "the-key", "query", {"code": "the-key"}),
        (5, '<settings><setting name="x-dualwrite-key" value="h1" /></settings>', "headers",
         {"x-dualwrite-key": "h1"}),
        (6, '<settings><setting name="sig" value="q1" /><setting name="v" value="2" /></settings>', "query",
         {"sig": "q1", "v": "2"}),
    ],
)  # fmt: skip
async def test_auth_types(
    api: Api,
    webhook_receiver: WebhookReceiver,
    authtype: int,
    authvalue: str,
    where: str,
    expected: dict[str, str],
) -> None:
    await api.hook(webhook_receiver, "Create", authtype=authtype, authvalue=authvalue)
    await api.create_warehouse("W1")
    [call] = webhook_receiver.received
    got = call.query if where == "query" else {k.lower(): v for k, v in call.headers.items()}
    assert expected.items() <= got.items()


async def test_filtering_attributes_and_update_target(api: Api, webhook_receiver: WebhookReceiver) -> None:
    _, row = await api.create_warehouse("W1")
    await api.hook(webhook_receiver, "Update", filtering="msdyn_description,msdyn_warehousetype")
    path = f"msdyn_warehouses({row['msdyn_warehouseid']})"
    assert (await api.call("PATCH", path, {"msdyn_name": "Renamed"}))[0] == 204
    assert webhook_receiver.received == []
    assert (await api.call("PATCH", path, {"msdyn_description": "Cold store"}))[0] == 204
    [call] = webhook_receiver.received
    attrs = _attrs(_param(call.json()["InputParameters"], "Target"))
    assert attrs["msdyn_description"] == "Cold store"
    assert attrs["msdyn_warehouseid"] == row["msdyn_warehouseid"]
    assert "msdyn_name" not in attrs and "modifiedon" in attrs
    assert attrs["modifiedby"]["LogicalName"] == "systemuser"


async def test_pre_and_post_images_per_registration(api: Api, webhook_receiver: WebhookReceiver) -> None:
    _, row = await api.create_warehouse("W1", msdyn_description="before")
    images = [
        {"entityalias": "PreImage", "imagetype": 0, "attributes": "msdyn_description"},
        {"entityalias": "PostImage", "imagetype": 1},
    ]
    await api.hook(webhook_receiver, "Update", images=images)
    await api.call("PATCH", f"msdyn_warehouses({row['msdyn_warehouseid']})", {"msdyn_description": "after"})
    ctx = webhook_receiver.received[0].json()
    pre = _attrs(_param(ctx["PreEntityImages"], "PreImage"))
    post = _attrs(_param(ctx["PostEntityImages"], "PostImage"))
    assert pre == {"msdyn_description": "before"}
    assert post["msdyn_description"] == "after" and post["msdyn_warehouseidentifier"] == "W1"


async def test_delete_target_is_an_entity_reference(api: Api, webhook_receiver: WebhookReceiver) -> None:
    _, row = await api.create_warehouse("W1")
    await api.hook(webhook_receiver, "Delete", images=[{"entityalias": "Pre", "imagetype": 0}])
    assert (await api.call("DELETE", f"msdyn_warehouses({row['msdyn_warehouseid']})"))[0] == 204
    ctx = webhook_receiver.received[0].json()
    target = _param(ctx["InputParameters"], "Target")
    assert target["__type"] == f"EntityReference:{XRM}" and target["Id"] == row["msdyn_warehouseid"]
    assert _attrs(_param(ctx["PreEntityImages"], "Pre"))["msdyn_warehouseidentifier"] == "W1"


async def test_other_tables_and_messages_do_not_fire(api: Api, webhook_receiver: WebhookReceiver) -> None:
    await api.hook(webhook_receiver, "Delete")
    await api.hook(webhook_receiver, "Create", entity="msdyn_shipvia")
    await api.create_warehouse("W1")
    assert webhook_receiver.received == []


async def test_oversize_context_drops_the_bulky_parts(api: Api, webhook_receiver: WebhookReceiver) -> None:
    _, row = await api.create_warehouse("W1", msdyn_description="d" * 2000)
    images = [{"entityalias": f"img{n}", "imagetype": 2} for n in range(60)]
    await api.hook(webhook_receiver, "Update", images=images)
    await api.call(
        "PATCH", f"msdyn_warehouses({row['msdyn_warehouseid']})", {"msdyn_description": "e" * 2000}
    )
    [call] = webhook_receiver.received
    assert call.headers["x-ms-dynamics-msg-size-exceeded"] == "true"
    ctx = call.json()
    for dropped in ("ParentContext", "InputParameters", "PreEntityImages", "PostEntityImages"):
        assert dropped not in ctx
    assert ctx["PrimaryEntityId"] == row["msdyn_warehouseid"] and ctx["MessageName"] == "Update"
    assert len(call.body) < 256 * 1024


def test_settings_xml_parsing() -> None:
    assert parse_settings(
        '<settings><setting name="a" value="1" /><setting name="b" value="" /></settings>'
    ) == {
        "a": "1",
        "b": "",
    }
    assert parse_settings("<settings><unclosed></settings>") == {}
    assert parse_settings("") == {}


async def test_disabling_a_step_through_the_api_stops_its_calls(
    api: Api, webhook_receiver: WebhookReceiver
) -> None:
    ids = await api.hook(webhook_receiver, "Create")
    await api.create_warehouse("W1")
    status, _ = await api.call(
        "PATCH", f"sdkmessageprocessingsteps({ids['sdkmessageprocessingstepid']})", {"statecode": 1}
    )
    assert status == 204
    await api.create_warehouse("W2")
    assert len(webhook_receiver.received) == 1
