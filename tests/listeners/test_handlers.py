"""The webhook endpoints over real HTTP (aiohttp test server) with a fake sink."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bridge.core.errors import RetryableError
from bridge.core.events import ChangeEvent, SyncMode
from bridge.core.mapping import MappingSet, load_mappings
from bridge.engine.ports import SinkResult
from bridge.listeners.auth import SharedKeyAuth
from bridge.listeners.handlers import WebhookListener, create_app
from tests.listeners.payloads import USMF_ID, WH_ID, cds_context, data_event, oversize, warehouse_row

ROOT = Path(__file__).resolve().parents[2]
CDS_KEY, SCM_KEY = "cds-secret", "scm-secret"
MAX_BODY = 64 * 1024


class FakeSink:
    def __init__(self) -> None:
        self.events: list[ChangeEvent] = []
        self.results: list[SinkResult | Exception] = []

    async def submit(self, event: ChangeEvent) -> SinkResult:
        self.events.append(event)
        outcome = self.results.pop(0) if self.results else SinkResult(True, 202, "queued")
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class FakeCompanies:
    async def code_for_cds_company(self, company_id: str) -> str | None:
        return {USMF_ID: "usmf"}.get(company_id)


class Rows:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.error: Exception | None = None

    async def __call__(self, entity_set: str, record_id: str) -> dict[str, Any] | None:
        self.calls.append((entity_set, record_id))
        if self.error:
            raise self.error
        return self.rows.get(record_id)


@pytest.fixture(scope="module")
def mappings() -> MappingSet:
    return load_mappings(ROOT / "mappings")


@pytest.fixture
def sink() -> FakeSink:
    return FakeSink()


@pytest.fixture
def rows() -> Rows:
    return Rows()


@pytest.fixture
def listener(mappings: MappingSet, sink: FakeSink, rows: Rows) -> WebhookListener:
    return WebhookListener(
        mappings=mappings,
        sink=sink,
        cds_auth=SharedKeyAuth([CDS_KEY], header=None, query_param="code"),
        scm_auth=SharedKeyAuth([SCM_KEY], header="x-dualwrite-key", query_param="code"),
        companies=FakeCompanies(),
        fetch_cds_record=rows,
        max_body_bytes=MAX_BODY,
    )


@pytest.fixture
async def client(listener: WebhookListener) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(listener), host="127.0.0.1", port=0)) as c:
        yield c


async def post_cds(client: TestClient[Any, Any], body: Any, *, code: str | None = CDS_KEY, **kw: Any) -> Any:
    params = {"code": code} if code is not None else {}
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return await client.post("/webhooks/cds", params=params, data=data, **kw)


async def post_scm(client: TestClient[Any, Any], body: Any, **kw: Any) -> Any:
    headers = kw.pop("headers", {"x-dualwrite-key": SCM_KEY})
    return await client.post("/webhooks/scm", data=json.dumps(body), headers=headers, **kw)


async def test_cds_update_is_submitted_and_answered_with_the_sink_status(client: Any, sink: FakeSink) -> None:
    resp = await post_cds(client, cds_context(post=warehouse_row()), headers={"traceparent": "00-ab-cd-01"})
    assert resp.status == 202
    [event] = sink.events
    assert (event.entity, event.company, event.key) == ("warehouse", "USMF", "11")
    assert event.trace_context == {"traceparent": "00-ab-cd-01"}


@pytest.mark.parametrize("code", [None, "wrong", ""])
async def test_cds_without_valid_key_is_401_and_nothing_submitted(
    client: Any, sink: FakeSink, code: str | None
) -> None:
    resp = await post_cds(client, cds_context(post=warehouse_row()), code=code)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthorized"
    assert sink.events == []


async def test_scm_accepts_header_or_code_and_rejects_neither(client: Any, sink: FakeSink) -> None:
    assert (await post_scm(client, data_event())).status == 202
    ok = await client.post("/webhooks/scm", params={"code": SCM_KEY}, data=json.dumps(data_event()))
    assert ok.status == 202
    bad = await post_scm(client, data_event(), headers={"x-dualwrite-key": CDS_KEY})
    assert bad.status == 401
    assert len(sink.events) == 2


async def test_malformed_json_is_400_naming_the_problem(client: Any, sink: FakeSink) -> None:
    resp = await post_cds(client, b"{not json")
    assert resp.status == 400
    assert "not JSON" in (await resp.json())["error"]["message"]
    assert sink.events == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"MessageName": NaN}', id="NaN"),
        pytest.param(b'{"MessageName": "\\ud800"}', id="lone-surrogate-escape"),
        pytest.param(b'{"MessageName": "caf\xe9"}', id="latin-1-not-utf-8"),
        pytest.param(b'{"MessageName": "Update"} {}', id="two-documents"),
    ],
)
async def test_bodies_that_are_not_strict_json_are_400(client: Any, sink: FakeSink, body: bytes) -> None:
    # Python's json would take the first two; RFC 8259 takes none of them, and neither do the
    # listeners.
    for resp in (
        await post_cds(client, body),
        await client.post("/webhooks/scm", data=body, headers={"x-dualwrite-key": SCM_KEY}),
    ):
        assert resp.status == 400, body
        assert "<body>: not JSON" in (await resp.json())["error"]["message"]
    assert sink.events == []


async def test_wrong_types_are_400_with_the_pydantic_location(
    client: Any, sink: FakeSink, listener: Any
) -> None:
    body = cds_context(post=warehouse_row())
    body["Mode"] = "0"
    resp = await post_cds(client, body)
    assert resp.status == 400
    assert (await resp.json())["error"]["message"].startswith("Mode:")
    assert sink.events == [] and listener.stats["cds.bad_request"] == 1


async def test_oversize_body_is_413_by_length_and_when_chunked(client: Any, sink: FakeSink) -> None:
    big = cds_context(post=warehouse_row(msdyn_description="x" * MAX_BODY))
    assert (await post_cds(client, big)).status == 413

    async def chunks() -> AsyncIterator[bytes]:
        data = json.dumps(big).encode()
        for i in range(0, len(data), 8192):
            yield data[i : i + 8192]

    resp = await client.post("/webhooks/cds", params={"code": CDS_KEY}, data=chunks())
    assert resp.status == 413
    assert sink.events == []


async def test_unmapped_entity_is_acknowledged_counted_and_not_submitted(
    client: Any, sink: FakeSink, listener: WebhookListener
) -> None:
    ignored: list[str] = []
    listener.on_ignored = ignored.append  # the bridge wires Metrics.ignored here
    resp = await post_cds(client, cds_context(logical="account", target={"name": "x"}))
    assert resp.status == 200
    assert (await resp.json())["ignored"] == 1
    assert listener.stats["cds.unmapped"] == 1 and sink.events == []
    assert ignored == ["account"]


async def test_sync_rejection_is_propagated_with_the_target_message(client: Any, sink: FakeSink) -> None:
    sink.results = [SinkResult(False, 502, "scm 400: WarehouseId is longer than 10")]
    resp = await post_cds(client, cds_context(mode=0, post=warehouse_row()))
    assert resp.status == 502
    assert "longer than 10" in (await resp.json())["error"]["message"]
    assert sink.events[0].mode is SyncMode.SYNC


async def test_oversize_variant_reads_the_record_itself(client: Any, sink: FakeSink, rows: Rows) -> None:
    rows.rows[WH_ID] = {
        "msdyn_warehouseid": WH_ID,
        "msdyn_warehouseidentifier": "11",
        "_msdyn_company_value": USMF_ID,
    }
    resp = await post_cds(
        client, oversize(cds_context()), headers={"x-ms-dynamics-msg-size-exceeded": "true"}
    )
    assert resp.status == 202
    assert rows.calls == [("msdyn_warehouses", WH_ID)]
    [event] = sink.events
    assert event.needs_fetch and event.key == "11" and event.image == rows.rows[WH_ID]


async def test_record_that_cannot_be_identified_is_400(client: Any, sink: FakeSink) -> None:
    resp = await post_cds(client, cds_context("Delete"))  # no PreImage, and the row is gone
    assert resp.status == 400
    assert "cannot be read" in (await resp.json())["error"]["message"]
    assert sink.events == []


async def test_dataverse_unreachable_while_reading_is_503(client: Any, sink: FakeSink, rows: Rows) -> None:
    rows.error = RetryableError("cds: connection failed")
    resp = await post_cds(client, cds_context(target={"msdyn_warehouseid": WH_ID, "msdyn_description": "x"}))
    assert resp.status == 503 and sink.events == []


async def test_unknown_company_is_400_and_row_without_company_is_ignored(client: Any, sink: FakeSink) -> None:
    other = warehouse_row()
    other["msdyn_company"]["Id"] = "99999999-0000-4000-8000-000000000000"
    assert (await post_cds(client, cds_context(post=other))).status == 400
    no_company = warehouse_row(msdyn_company=None)
    resp = await post_cds(client, cds_context("Create", target=no_company))
    assert resp.status == 200 and (await resp.json())["ignored"] == 1
    assert sink.events == []


async def test_failing_sink_gives_503_and_the_listener_keeps_serving(client: Any, sink: FakeSink) -> None:
    sink.results = [RuntimeError("queue down")]
    assert (await post_cds(client, cds_context(post=warehouse_row()))).status == 503
    assert (await post_cds(client, cds_context(post=warehouse_row()))).status == 202


async def test_scm_array_submits_mapped_events_in_order(
    client: Any, sink: FakeSink, listener: WebhookListener
) -> None:
    ignored: list[str] = []
    listener.on_ignored = ignored.append
    body = [data_event(event_id="A"), data_event(entity_name="mserp_custtable"), data_event(event_id="B")]
    resp = await post_scm(client, body)
    assert resp.status == 202
    assert [e.event_id for e in sink.events] == ["scm:A", "scm:B"]
    assert listener.stats["scm.unmapped"] == 1
    assert ignored == ["mserp_custtable"]


async def test_scm_array_stops_at_the_first_failure(client: Any, sink: FakeSink) -> None:
    sink.results = [SinkResult(True, 202), SinkResult(False, 503, "queue full")]
    resp = await post_scm(client, [data_event(event_id=x) for x in "ABC"])
    assert resp.status == 503
    assert [e.event_id for e in sink.events] == ["scm:A", "scm:B"]


async def test_scm_bad_item_rejects_the_body_before_any_submit(client: Any, sink: FakeSink) -> None:
    resp = await post_scm(client, [data_event(), {**data_event(), "EventId": 5}])
    assert resp.status == 400
    assert "[1].EventId" in (await resp.json())["error"]["message"]
    assert sink.events == []


async def test_scm_only_unmapped_is_acknowledged(client: Any, sink: FakeSink) -> None:
    resp = await post_scm(client, data_event(entity_name="mserp_custtable"))
    assert resp.status == 200 and sink.events == []


# ---------------------------------------------------------------- with the sandbox's real notifiers
@pytest.fixture
async def live(sandbox: Any, sandbox_http: Any, mappings: MappingSet, sink: FakeSink) -> AsyncIterator[str]:
    """The listener on a real port, with the bridge's DataverseClient resolving companies and rows."""
    from bridge.systems.auth import TokenProvider
    from bridge.systems.dataverse import DataverseClient

    info = sandbox.info
    tokens = TokenProvider(
        info.authority, info.client_id, info.client_secret, info.cds_scope, ca_file=info.ca_file
    )
    async with DataverseClient(info.cds_url, tokens, ca_file=info.ca_file) as cds:
        listener = WebhookListener(
            mappings=mappings,
            sink=sink,
            cds_auth=SharedKeyAuth([CDS_KEY], header=None, query_param="code"),
            scm_auth=SharedKeyAuth([SCM_KEY]),
            companies=cds,
            fetch_cds_record=cds.get,
        )
        async with TestServer(create_app(listener), host="127.0.0.1", port=0) as server:
            yield str(server.make_url(""))


async def test_sync_webhook_from_the_sandbox_is_parsed_and_a_rejection_rolls_back(
    live: str, sandbox: Any, sandbox_http: Any, sink: FakeSink
) -> None:
    from bridge.sandbox.pytest_plugin import bearer, register_webhook

    info = sandbox.info
    token = sandbox.token("user", "dataverse")
    images = [{"entityalias": "PreImage", "imagetype": 0}, {"entityalias": "PostImage", "imagetype": 1}]
    await register_webhook(
        sandbox_http,
        info,
        token,
        url=f"{live}/webhooks/cds",
        entity="msdyn_shipvia",
        message="Update",
        mode=0,
        authvalue=CDS_KEY,
        images=images,
    )
    async with sandbox_http.get(f"{info.cds_url}/cdm_companies", headers=bearer(token)) as resp:
        usmf = (await resp.json())["value"][0]["cdm_companyid"]
    row = {
        "msdyn_name": "TRUCK",
        "msdyn_description": "Truck",
        "msdyn_company@odata.bind": f"/cdm_companies({usmf})",
    }
    async with sandbox_http.post(
        f"{info.cds_url}/msdyn_shipvias", json=row, headers=bearer(token, Prefer="return=representation")
    ) as resp:
        assert resp.status == 201
        ship_id = (await resp.json())["msdyn_shipviaid"]
    url = f"{info.cds_url}/msdyn_shipvias({ship_id})"

    async with sandbox_http.patch(url, json={"msdyn_description": "Lorry"}, headers=bearer(token)) as resp:
        assert resp.status == 204
    [event] = sink.events
    assert (event.entity, event.company, event.key, event.mode) == (
        "ship_via",
        "USMF",
        "TRUCK",
        SyncMode.SYNC,
    )
    assert event.changed == {"msdyn_description": "Lorry"}
    assert event.initiated_by == info.user_user_id

    # Dataverse re-sends once after a 502: the sink answers the repeat the same way.
    sink.results = [SinkResult(False, 502, "scm 400: ModeDescription rejected")] * 2
    async with sandbox_http.patch(url, json={"msdyn_description": "Van"}, headers=bearer(token)) as resp:
        assert resp.status >= 400  # Dataverse failed the operation: the synchronous step said no
    async with sandbox_http.get(url, headers=bearer(token)) as resp:
        assert (await resp.json())["msdyn_description"] == "Lorry"
    assert len(sink.events) == 3 and sink.events[1].event_id == sink.events[2].event_id  # a repeat dedupes


async def test_data_events_from_the_sandbox_are_submitted(
    live: str, sandbox: Any, sandbox_http: Any, sink: FakeSink
) -> None:
    from bridge.sandbox.pytest_plugin import bearer

    info = sandbox.info
    endpoint = {"name": "bridge", "url": f"{live}/webhooks/scm", "headers": {"x-dualwrite-key": SCM_KEY}}
    async with sandbox_http.post(
        f"{info.scm_admin_url}/dataevents/endpoints",
        json=endpoint,
        headers={info.admin_header: info.admin_key},
    ) as resp:
        assert resp.status == 201
    body = {"dataAreaId": "usmf", "ModeCode": "SEA", "ModeDescription": "Sea"}
    async with sandbox_http.post(
        f"{info.scm_url}/DeliveryModesV2", json=body, headers=bearer(sandbox.token("user", "fno"))
    ) as resp:
        assert resp.status == 201
    for _ in range(250):  # data events are sent after commit, in the background
        if sink.events:
            break
        await asyncio.sleep(0.02)
    [event] = sink.events
    assert (event.entity, event.company, event.key) == ("ship_via", "USMF", "SEA")
    assert (
        event.image is not None
        and event.image["ModeDescription"] == "Sea"
        and "ModifiedDateTime" in event.image
    )
    assert event.initiated_by == info.user_object_id
