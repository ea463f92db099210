"""``$batch``: multipart parsing/writing, and over HTTP on both engines: atomic change sets,
``Content-ID``/``$n`` references, stop-at-first-failure and ``odata.continue-on-error``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bridge.sandbox.contracts import HookFailed
from bridge.sandbox.dataverse.service import DataverseService, sandbox_id
from bridge.sandbox.fno.service import FnoService
from bridge.wire.batch import (
    BatchRequest,
    BatchResponse,
    BatchSyntaxError,
    ChangeSet,
    parse_batch,
    parse_batch_response,
    write_batch,
)
from tests.sandbox.test_odata_harness import RecordingHooks, serve

DV = "/api/data/v9.2/"
USMF = sandbox_id("cdm_company", "USMF")
Client = TestClient[web.Request, web.Application]

# The documentation's own example (LF line ends, quoted boundary, a change set then a GET).
DOC_EXAMPLE = """--batch_22975cad
Content-Type: multipart/mixed; boundary="changeset_246e6bfe"

--changeset_246e6bfe
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 1

POST /api/data/v9.2/tasks HTTP/1.1
Content-Type: application/json; type=entry

{
  "subject": "Task 1 in batch"
}
--changeset_246e6bfe--

--batch_22975cad
Content-Type: application/http
Content-Transfer-Encoding: binary

GET /api/data/v9.2/accounts?$select=name HTTP/1.1


--batch_22975cad--
"""


def test_parses_the_documentation_example() -> None:
    parts = parse_batch(DOC_EXAMPLE.encode(), 'multipart/mixed; boundary="batch_22975cad"')
    assert isinstance(parts[0], ChangeSet) and isinstance(parts[1], BatchRequest)
    post = parts[0].requests[0]
    assert (post.method, post.url, post.content_id) == ("POST", "/api/data/v9.2/tasks", "1")
    assert json.loads(post.body) == {"subject": "Task 1 in batch"}
    assert parts[1].method == "GET" and parts[1].body == b""


def test_crlf_bodies_parse_the_same() -> None:
    crlf = DOC_EXAMPLE.replace("\n", "\r\n").encode()
    parts = parse_batch(crlf, "multipart/mixed; boundary=batch_22975cad")
    assert (
        isinstance(parts[0], ChangeSet)
        and json.loads(parts[0].requests[0].body)["subject"] == "Task 1 in batch"
    )


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (DOC_EXAMPLE.replace("--batch_22975cad--", ""), "multipart/mixed; boundary=batch_22975cad"),
        (DOC_EXAMPLE, "application/json"),
        (DOC_EXAMPLE, "multipart/mixed"),
        (DOC_EXAMPLE.replace("POST /api", "GET /api"), "multipart/mixed; boundary=batch_22975cad"),
        (
            DOC_EXAMPLE.replace(
                "Content-Type: application/http\nContent-Transfer-Encoding: binary\nContent-ID: 1",
                "Content-Type: text/plain",
            ),
            "multipart/mixed; boundary=batch_22975cad",
        ),
    ],
)
def test_malformed_batches_are_rejected(body: str, ctype: str) -> None:
    with pytest.raises(BatchSyntaxError):
        parse_batch(body.encode(), ctype)


def test_response_round_trip() -> None:
    ok = BatchResponse(204, {"OData-EntityId": "x"}, b"", "1")
    err = BatchResponse(400, {"Content-Type": "application/json"}, b'{"error":{}}')
    ctype, body = write_batch([[ok], err])
    back = parse_batch_response(body, ctype)
    assert isinstance(back[0], list) and back[0][0].status == 204 and back[0][0].content_id == "1"
    assert isinstance(back[1], BatchResponse) and back[1].status == 400 and back[1].body == b'{"error":{}}'


# ---------------------------------------------------------------- over HTTP
def _op(method: str, url: str, body: dict[str, Any] | None = None, content_id: str | None = None) -> str:
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if content_id:
        head += f"Content-ID: {content_id}\r\n"
    req = f"{method} {url} HTTP/1.1\r\n"
    if body is not None:
        req += "Content-Type: application/json; type=entry\r\n\r\n" + json.dumps(body)
    else:
        req += "\r\n"
    return head + "\r\n" + req


def _batch(*parts: str | list[str]) -> tuple[str, bytes]:
    out = []
    for i, part in enumerate(parts):
        if isinstance(part, list):
            cs = f"changeset_{i}"
            inner = "".join(f"--{cs}\r\n{p}\r\n" for p in part) + f"--{cs}--"
            out.append(f"--batch_x\r\nContent-Type: multipart/mixed; boundary={cs}\r\n\r\n{inner}\r\n")
        else:
            out.append(f"--batch_x\r\n{part}\r\n")
    return "multipart/mixed; boundary=batch_x", ("".join(out) + "--batch_x--\r\n").encode()


async def _send(
    client: Client, root: str, *parts: str | list[str], prefer: str | None = None
) -> tuple[int, Any]:
    ctype, body = _batch(*parts)
    headers = {"Content-Type": ctype, **({"Prefer": prefer} if prefer else {})}
    r = await client.post(root + "$batch", data=body, headers=headers)
    return r.status, parse_batch_response(await r.read(), r.headers["Content-Type"])


def _ship(name: str) -> dict[str, Any]:
    return {"msdyn_name": name, "msdyn_company@odata.bind": f"/cdm_companies({USMF})"}


@pytest.fixture
def hooks() -> RecordingHooks:
    return RecordingHooks()


@pytest.fixture
async def dv(hooks: RecordingHooks) -> AsyncIterator[tuple[Client, DataverseService]]:
    svc = DataverseService(hooks=hooks)
    async with serve(svc) as client:
        yield client, svc


async def test_change_set_commits_as_a_whole_with_content_id_reference(
    dv: tuple[Client, DataverseService], hooks: RecordingHooks
) -> None:
    client, svc = dv
    cat = {
        "msdyn_maintenanceassettypeid": "PUMP",
        "msdyn_name": "Pump",
        "msdyn_company@odata.bind": f"/cdm_companies({USMF})",
    }
    asset = {
        "msdyn_maintenanceassetid": "A1",
        "msdyn_name": "a",
        "msdyn_CustomerAssetCategory@odata.bind": "$1",
        "msdyn_company@odata.bind": f"/cdm_companies({USMF})",
    }
    status, parts = await _send(
        client,
        DV,
        [
            _op("POST", DV + "msdyn_customerassetcategories", cat, "1"),
            _op("POST", "msdyn_customerassets", asset, "2"),
        ],
    )
    assert status == 200 and [r.status for r in parts[0]] == [204, 204]
    cat_id = svc.rows("msdyn_customerassetcategories")[0]["msdyn_customerassetcategoryid"]
    assert svc.rows("msdyn_customerassets")[0]["_msdyn_customerassetcategory_value"] == cat_id
    assert len({c.correlation_id for c in hooks.after}) == 1 and len({c.request_id for c in hooks.after}) == 2


async def test_failing_change_set_rolls_back_everything(
    dv: tuple[Client, DataverseService], hooks: RecordingHooks
) -> None:
    client, svc = dv
    status, parts = await _send(
        client,
        DV,
        [
            _op("POST", "msdyn_shipvias", _ship("OK"), "1"),
            _op("POST", "msdyn_shipvias", _ship("x" * 101), "2"),
        ],
    )
    assert status == 400 and isinstance(parts[0], BatchResponse) and parts[0].content_id == "2"
    assert json.loads(parts[0].body)["error"]["code"] == "0x80044331"
    assert svc.rows("msdyn_shipvias") == [] and hooks.after == []


async def test_sync_hook_failure_in_a_change_set_rolls_back_earlier_operations(
    dv: tuple[Client, DataverseService], hooks: RecordingHooks
) -> None:
    client, svc = dv
    hooks.fail, hooks.fail_on = HookFailed("Webhook call failed: 500", status=500), "Update"
    status, _ = await _send(
        client,
        DV,
        [_op("POST", "msdyn_shipvias", _ship("A"), "1"), _op("PATCH", "$1", {"msdyn_description": "d"}, "2")],
    )
    assert status == 500 and svc.rows("msdyn_shipvias") == [] and hooks.after == []


async def test_stops_at_first_failure_without_continue_on_error(dv: tuple[Client, DataverseService]) -> None:
    client, svc = dv
    bad = _op("POST", "msdyn_shipvias", _ship("x" * 101))
    status, parts = await _send(client, DV, bad, _op("POST", "msdyn_shipvias", _ship("B")))
    assert status == 400 and len(parts) == 1 and svc.rows("msdyn_shipvias") == []


async def test_continue_on_error_runs_the_rest(dv: tuple[Client, DataverseService]) -> None:
    client, svc = dv
    bad = _op("POST", "msdyn_shipvias", _ship("x" * 101))
    status, parts = await _send(
        client,
        DV,
        bad,
        _op("POST", "msdyn_shipvias", _ship("B")),
        _op("GET", "msdyn_shipvias?$select=msdyn_name"),
        prefer="odata.continue-on-error",
    )
    assert status == 200 and [p.status for p in parts] == [400, 204, 200]
    assert [v["msdyn_name"] for v in json.loads(parts[2].body)["value"]] == ["B"]
    assert len(svc.rows("msdyn_shipvias")) == 1


async def test_unknown_content_id_reference_is_400(dv: tuple[Client, DataverseService]) -> None:
    client, svc = dv
    status, _ = await _send(client, DV, [_op("PATCH", "$9", {"msdyn_description": "d"}, "1")])
    assert status == 400 and svc.rows("msdyn_shipvias") == []


async def test_malformed_batch_is_400_in_the_error_shape(dv: tuple[Client, DataverseService]) -> None:
    client, _ = dv
    r = await client.post(
        DV + "$batch", data=b"junk", headers={"Content-Type": "multipart/mixed; boundary=b"}
    )
    assert r.status == 400 and "error" in await r.json()


async def test_fno_change_set_is_atomic() -> None:
    svc = FnoService()
    async with serve(svc) as client:
        ok, dup = {"ModeCode": "AIR"}, {"ModeCode": "air"}
        status, parts = await _send(
            client,
            "/data/",
            [_op("POST", "/data/DeliveryModesV2", ok, "1"), _op("POST", "DeliveryModesV2", dup, "2")],
        )
        assert status == 500 and svc.rows("DeliveryModesV2") == []
        status, parts = await _send(
            client,
            "/data/",
            [_op("POST", "DeliveryModesV2", ok, "1"), _op("PATCH", "$1", {"ModeDescription": "Air"}, "2")],
        )
        assert status == 200 and [p.status for p in parts[0]] == [201, 204]
        assert svc.rows("DeliveryModesV2")[0]["ModeDescription"] == "Air"
