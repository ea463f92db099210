"""The document side over the clients (``bridge.systems.docsides``): a document's writes go as one
OData ``$batch`` change set, header first, and a refused change set raises the refusing
operation's own message.

Wire shape: powerapps-docs, ``powerapps-docs/developer/data-platform/webapi/
execute-batch-operations-using-web-api.md`` ("Change sets": the operations of a change set succeed
or fail as a group; a batch stops at the first error and answers with it), which follows OData
v4.0 Part 1, 11.7 Batch Requests; F&O's OData service takes the same format.
"""

from __future__ import annotations

import json

import pytest

from bridge.core.errors import RejectedError
from bridge.core.events import System
from bridge.engine.sideports import DocWrite
from bridge.systems.dataverse import DataverseClient
from bridge.systems.docsides import ClientDocumentSide
from bridge.systems.fno import FnoClient
from bridge.systems.transport import MockTransport, Request, Response
from bridge.wire.batch import BatchResponse, ChangeSet, parse_batch, write_batch

CDS, SCM = "https://org.example/api/data/v9.2/", "https://fo.example/data/"
GUID = "00000000-0000-0000-0000-0000000000a1"


class _Tokens:
    async def token(self) -> str:
        return "t"

    async def refresh(self) -> str:
        return "t"


def _writes() -> list[DocWrite]:
    head = {"dataAreaId": "usmf", "SalesOrderNumber": "WO-1"}
    line = {**head, "LineCreationSequenceNumber": -2}
    return [
        DocWrite("PATCH", "CDSSalesOrderHeaders", head, {"ExternalWorkOrderStatus": "OpenScheduled"}),
        DocWrite("DELETE", "CDSSalesOrderLinesV2", {**head, "LineCreationSequenceNumber": 1}),
        DocWrite("POST", "CDSSalesOrderLinesV2", {}, {**line, "ProductNumber": "P-1"}),
    ]


def _side(scm: MockTransport, cds: MockTransport | None = None) -> ClientDocumentSide:
    dataverse = DataverseClient(
        CDS, _Tokens(), transport=cds or MockTransport(lambda r: Response.json(200, {}))
    )
    return ClientDocumentSide(dataverse, FnoClient(SCM, _Tokens(), transport=scm))


def _answer(responses: list[BatchResponse] | BatchResponse, status: int = 200) -> Response:
    content_type, body = write_batch([responses])
    return Response.of(status, {"Content-Type": content_type}, body.decode())


async def test_a_document_is_one_change_set_header_first() -> None:
    sent: list[Request] = []

    def answer(request: Request) -> Response:
        sent.append(request)
        return _answer([BatchResponse(204, {}), BatchResponse(204, {}), BatchResponse(201, {}, b"{}")])

    await _side(MockTransport(answer)).changeset(System.SCM, _writes())
    [request] = sent
    assert request.method == "POST" and request.url.endswith("/data/$batch")
    content_type = {k.lower(): v for k, v in request.headers.items()}["content-type"]
    [changeset] = parse_batch(request.body or b"", content_type)
    assert isinstance(changeset, ChangeSet)  # all or nothing
    methods = [(r.method, r.url.split("/data/")[1]) for r in changeset.requests]
    assert methods == [
        ("PATCH", "CDSSalesOrderHeaders(dataAreaId='usmf',SalesOrderNumber='WO-1')?cross-company=true"),
        (
            "DELETE",
            "CDSSalesOrderLinesV2(dataAreaId='usmf',SalesOrderNumber='WO-1',LineCreationSequenceNumber=1)"
            "?cross-company=true",
        ),
        ("POST", "CDSSalesOrderLinesV2"),
    ]
    assert json.loads(changeset.requests[2].body)["ProductNumber"] == "P-1"


async def test_a_refused_change_set_raises_the_refusing_operations_message() -> None:
    refusal = BatchResponse(
        400,
        {"Content-Type": "application/json"},
        json.dumps({"error": {"message": "The value 'P-1' in field 'ProductNumber' is not found"}}).encode(),
        "3",
    )
    side = _side(MockTransport(lambda r: _answer(refusal, status=400)))
    with pytest.raises(RejectedError) as caught:
        await side.changeset(System.SCM, _writes())
    assert "The value 'P-1' in field 'ProductNumber' is not found" in caught.value.message
    assert "batchresponse" not in caught.value.message  # the operation's message, not the envelope


async def test_dataverse_rows_are_addressed_by_id_and_found_by_bare_guid_lookups() -> None:
    sent: list[Request] = []

    def answer(request: Request) -> Response:
        sent.append(request)
        return Response.json(200, {"value": []} if "$filter" in (request.params or {}) else {"x": 1})

    side = _side(MockTransport(lambda r: Response.json(200, {})), MockTransport(answer))
    assert await side.get(System.CDS, "msdyn_workorders", {"msdyn_workorderid": GUID}) == {"x": 1}
    assert await side.find(System.CDS, "msdyn_workorderproducts", {"_msdyn_workorder_value": GUID}) == []
    assert sent[0].url.endswith(f"msdyn_workorders({GUID})")
    assert (sent[1].params or {})["$filter"] == f"_msdyn_workorder_value eq {GUID}"
