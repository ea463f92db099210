"""Queries a real Dataverse client sends, over real HTTP: $expand, paging, counting, annotations,
other query languages, and the bulk actions.

Expected shapes: MicrosoftDocs/powerapps-docs, powerapps-docs/developer/data-platform/webapi/query/
``join-tables.md``, ``page-results.md``, ``count-rows.md``, ``select-columns.md``, and
powerapps-docs/developer/data-platform/bulk-operations.md (named at each test).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bridge.sandbox.dataverse.service import DataverseService, sandbox_id
from tests.sandbox.test_odata_harness import RecordingHooks, serve

B = "/api/data/v9.2/"
USMF = sandbox_id("cdm_company", "USMF")
SITE1 = sandbox_id("msdyn_operationalsite", "USMF", "1")
Client = TestClient[web.Request, web.Application]
FORMATTED = "@OData.Community.Display.V1.FormattedValue"


@pytest.fixture
def hooks() -> RecordingHooks:
    return RecordingHooks()


@pytest.fixture
def svc(hooks: RecordingHooks) -> DataverseService:
    return DataverseService(hooks=hooks)


@pytest.fixture
async def client(svc: DataverseService) -> AsyncIterator[Client]:
    async with serve(svc) as c:
        yield c


def warehouse(ident: str, **extra: Any) -> dict[str, Any]:
    return {
        "msdyn_warehouseidentifier": ident,
        "msdyn_name": f"Warehouse {ident}",
        "msdyn_company@odata.bind": f"/cdm_companies({USMF})",
        **extra,
    }


async def ok(r: Any, status: int = 200) -> Any:
    assert r.status == status, await r.text()
    return await r.json() if r.content_type == "application/json" else await r.text()


async def test_expand_single_valued_lookup_with_select(client: Client) -> None:
    await client.post(
        B + "msdyn_warehouses",
        json=warehouse("W1", **{"msdyn_operationalsite@odata.bind": f"/msdyn_operationalsites({SITE1})"}),
    )
    await client.post(B + "msdyn_warehouses", json=warehouse("W2"))
    r = await client.get(
        B + "msdyn_warehouses",
        params={
            "$select": "msdyn_warehouseidentifier",
            "$expand": "msdyn_operationalsite($select=msdyn_name)",
            "$orderby": "msdyn_warehouseidentifier",
        },
    )
    body = await ok(r)
    # join-tables.md: context "...#accounts(name,primarycontactid(fullname))"; the expanded object has
    # the selected columns and the related primary key, no @odata.etag; an empty lookup expands to null.
    assert body["@odata.context"].endswith(
        "#msdyn_warehouses(msdyn_warehouseidentifier,msdyn_operationalsite(msdyn_name))"
    )
    w1, w2 = body["value"]
    assert w1["msdyn_operationalsite"] == {"msdyn_name": "Site 1", "msdyn_operationalsiteid": SITE1}
    assert w2["msdyn_operationalsite"] is None
    nested = await client.get(
        B + "msdyn_warehouses", params={"$expand": "msdyn_operationalsite($expand=msdyn_company)"}
    )
    assert nested.status == 400
    unknown = await client.get(B + "msdyn_warehouses", params={"$expand": "nosuchnav"})
    assert unknown.status == 400 and (await unknown.json())["error"]["code"] == "0x80060888"


async def test_top_is_ignored_beside_maxpagesize(svc: DataverseService, client: Client) -> None:
    svc.seed("msdyn_shipvias", [{"msdyn_name": f"S{i:02}", "_msdyn_company_value": USMF} for i in range(5)])
    # page-results.md: "Don't use $top with the Prefer: odata.maxpagesize request header. If you
    # include both, $top is ignored."
    r = await client.get(
        B + "msdyn_shipvias", params={"$top": "1"}, headers={"Prefer": "odata.maxpagesize=2"}
    )
    body = await ok(r)
    assert r.headers["Preference-Applied"] == "odata.maxpagesize=2"
    assert len(body["value"]) == 2 and "@odata.nextLink" in body
    alone = await ok(await client.get(B + "msdyn_shipvias", params={"$top": "1"}))
    assert len(alone["value"]) == 1 and "@odata.nextLink" not in alone


async def test_count_capped_at_5000_with_the_documented_annotations(
    svc: DataverseService, client: Client
) -> None:
    svc.seed(
        "msdyn_shipvias", [{"msdyn_name": f"S{i:05}", "_msdyn_company_value": USMF} for i in range(5003)]
    )
    prefer = (
        "odata.maxpagesize=1, odata.include-annotations="
        '"Microsoft.Dynamics.CRM.totalrecordcount,Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"'
    )
    r = await client.get(
        B + "msdyn_shipvias", params={"$count": "true", "$select": "msdyn_name"}, headers={"Prefer": prefer}
    )
    body = await ok(r)
    # count-rows.md: more than 5,000 rows -> 5000, 5000, true
    assert body["@odata.count"] == 5000
    assert body["@Microsoft.Dynamics.CRM.totalrecordcount"] == 5000
    assert body["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] is True
    # "If you don't include the $count=true query option, the total ... value is -1."
    body = await ok(
        await client.get(B + "msdyn_shipvias", params={"$select": "msdyn_name"}, headers={"Prefer": prefer})
    )
    assert body["@Microsoft.Dynamics.CRM.totalrecordcount"] == -1 and "@odata.count" not in body
    few = await ok(
        await client.get(
            B + "msdyn_shipvias",
            params={"$count": "true", "$filter": "msdyn_name eq 'S00001'"},
            headers={"Prefer": prefer},
        )
    )
    assert (few["@odata.count"], few["@Microsoft.Dynamics.CRM.totalrecordcount"]) == (1, 1)
    assert few["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] is False


async def test_count_segment_is_a_plain_number(svc: DataverseService, client: Client) -> None:
    svc.seed("msdyn_shipvias", [{"msdyn_name": f"S{i}", "_msdyn_company_value": USMF} for i in range(3)])
    # count-rows.md: GET accounts/$count -> 200, Content-Type: text/plain, body "10"
    r = await client.get(B + "msdyn_shipvias/$count")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
    assert await r.text() == "3"
    assert (
        await (await client.get(B + "msdyn_shipvias/$count", params={"$filter": "msdyn_name eq 'S1'"})).text()
        == "1"
    )


@pytest.mark.parametrize("name", ["fetchXml", "sql"])
async def test_other_query_languages_are_refused_not_ignored(client: Client, name: str) -> None:
    r = await client.get(
        B + "msdyn_warehouses", params={name: "<fetch><entity name='msdyn_warehouse'/></fetch>"}
    )
    body = await ok(r, 400)
    assert "not emulated" in body["error"]["message"]


async def test_formatted_values_and_lookup_annotations(client: Client) -> None:
    created = await ok(
        await client.post(
            B + "msdyn_warehouses",
            json=warehouse(
                "W1", msdyn_warehousetype=192350001, msdyn_useadvancedwarehousemanagementprocesses=True
            ),
            headers={"Prefer": "return=representation"},
        ),
        201,
    )
    wid = created["msdyn_warehouseid"]
    # select-columns.md: Prefer odata.include-annotations="*" gives <property>@...FormattedValue (choice
    # label, Yes/No, the related row's primary name), and lookuplogicalname/associatednavigationproperty.
    r = await client.get(
        B + f"msdyn_warehouses({wid})",
        params={
            "$select": "msdyn_warehousetype,msdyn_useadvancedwarehousemanagementprocesses,"
            "_msdyn_company_value,modifiedon"
        },
        headers={"Prefer": 'odata.include-annotations="*"'},
    )
    body = await ok(r)
    assert r.headers["Preference-Applied"] == 'odata.include-annotations="*"'
    assert body[f"msdyn_warehousetype{FORMATTED}"] == "Quarantine"
    assert body[f"msdyn_useadvancedwarehousemanagementprocesses{FORMATTED}"] == "Yes"
    assert body[f"_msdyn_company_value{FORMATTED}"] == "Contoso USA"
    assert body["_msdyn_company_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "cdm_company"
    assert body["_msdyn_company_value@Microsoft.Dynamics.CRM.associatednavigationproperty"] == "msdyn_company"
    assert body[f"modifiedon{FORMATTED}"].endswith(("AM", "PM"))
    keys = list(body)
    assert keys.index(f"msdyn_warehousetype{FORMATTED}") == keys.index("msdyn_warehousetype") - 1
    only_formatted = await ok(
        await client.get(
            B + f"msdyn_warehouses({wid})",
            params={"$select": "_msdyn_company_value"},
            headers={"Prefer": 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'},
        )
    )
    assert f"_msdyn_company_value{FORMATTED}" in only_formatted
    assert "_msdyn_company_value@Microsoft.Dynamics.CRM.lookuplogicalname" not in only_formatted
    # Annotations reach expanded rows too.
    expanded = await ok(
        await client.get(
            B + f"msdyn_warehouses({wid})",
            params={"$select": "msdyn_name", "$expand": "msdyn_company($select=statecode)"},
            headers={"Prefer": 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'},
        )
    )
    assert expanded["msdyn_company"][f"statecode{FORMATTED}"] == "Active"
    plain = await ok(
        await client.get(B + f"msdyn_warehouses({wid})", params={"$select": "msdyn_warehousetype"})
    )
    assert not any("@OData.Community" in k for k in plain)


async def test_create_update_upsert_multiple(
    svc: DataverseService, client: Client, hooks: RecordingHooks
) -> None:
    t = {"@odata.type": "Microsoft.Dynamics.CRM.msdyn_warehouse"}
    # bulk-operations.md: CreateMultiple -> 200 {"@odata.context": ...CreateMultipleResponse, "Ids": [...]}
    r = await client.post(
        B + "msdyn_warehouses/Microsoft.Dynamics.CRM.CreateMultiple",
        json={"Targets": [{**t, **warehouse("A")}, {**t, **warehouse("B")}]},
    )
    body = await ok(r)
    assert body["@odata.context"].endswith("$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse")
    a, b = body["Ids"]
    # UpdateMultiple: items carry the primary key; answer 204
    r = await client.post(
        B + "msdyn_warehouses/Microsoft.Dynamics.CRM.UpdateMultiple",
        json={
            "Targets": [
                {**t, "msdyn_warehouseid": a, "msdyn_name": "A2"},
                {**t, "msdyn_warehouseid": b, "msdyn_name": "B2"},
            ]
        },
    )
    assert r.status == 204, await r.text()
    assert {row["msdyn_name"] for row in svc.rows("msdyn_warehouses")} == {"A2", "B2"}
    # UpsertMultiple (webapi/reference/upsertmultiple): @odata.id names the record by alternate key; 204
    key = f"msdyn_warehouses(_msdyn_company_value={USMF},msdyn_warehouseidentifier='{{}}')"
    r = await client.post(
        B + "msdyn_warehouses/Microsoft.Dynamics.CRM.UpsertMultiple",
        json={
            "Targets": [
                {**t, "@odata.id": key.format("A"), "msdyn_name": "A3"},
                {**t, "@odata.id": key.format("C"), "msdyn_name": "C1"},
            ]
        },
    )
    assert r.status == 204, await r.text()
    rows = {row["msdyn_warehouseidentifier"]: row["msdyn_name"] for row in svc.rows("msdyn_warehouses")}
    assert rows == {"A": "A3", "B": "B2", "C": "C1"}
    messages = [c.message for c in hooks.after]
    assert messages == ["Create", "Create", "Update", "Update", "Update", "Create"]


async def test_bulk_rolls_back_as_a_whole_and_needs_odata_type(svc: DataverseService, client: Client) -> None:
    t = {"@odata.type": "Microsoft.Dynamics.CRM.msdyn_warehouse"}
    # bulk-operations.md: standard tables - "Any error ... causes the entire operation to roll back."
    r = await client.post(
        B + "msdyn_warehouses/Microsoft.Dynamics.CRM.CreateMultiple",
        json={"Targets": [{**t, **warehouse("A")}, {**t, **warehouse("A")}]},
    )
    assert r.status == 412, await r.text()
    assert svc.rows("msdyn_warehouses") == []
    # "You must set the @odata.type property for each item in the Targets parameter."
    r = await client.post(
        B + "msdyn_warehouses/Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": [warehouse("A")]}
    )
    assert r.status == 400 and "@odata.type" in (await r.json())["error"]["message"]
    missing = await client.post(
        B + "msdyn_warehouses/Microsoft.Dynamics.CRM.UpdateMultiple",
        json={
            "Targets": [{**t, "msdyn_warehouseid": "11111111-2222-3333-4444-555555555555", "msdyn_name": "x"}]
        },
    )
    assert missing.status == 404
    assert svc.rows("msdyn_warehouses") == []
