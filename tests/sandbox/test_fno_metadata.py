"""F&O OData metadata and the queries a real client sends, over real HTTP.

Expected shapes: MicrosoftDocs/dynamics-365-unified-operations-public,
articles/fin-ops-core/dev-itpro/data-entities/odata.md ("Supported features", "Filter details",
"Metadata annotations", "Cross-company behavior", "Using Enums"), named at each test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from xml.etree import ElementTree as ET

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bridge.sandbox.fno.service import FnoService
from bridge.sandbox.schema import FNO_TABLES, Kind
from tests.sandbox.test_odata_harness import serve

B = "/data/"
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
Client = TestClient[web.Request, web.Application]


@pytest.fixture
def svc() -> FnoService:
    return FnoService()


@pytest.fixture
async def client(svc: FnoService) -> AsyncIterator[Client]:
    async with serve(svc) as c:
        yield c


async def test_service_document_and_metadata(client: Client) -> None:
    doc = await (await client.get(B)).json()
    assert {v["name"] for v in doc["value"]} == {t.entity_set for t in FNO_TABLES}
    r = await client.get(B + "$metadata")
    assert r.status == 200 and r.headers["Content-Type"].startswith("application/xml")
    schema = ET.fromstring(await r.read()).find(
        f"{{http://docs.oasis-open.org/odata/ns/edmx}}DataServices/{EDM}Schema"
    )
    assert schema is not None
    # odata.md: "Enums are under namespace Microsoft.Dynamics.DataEntities";
    # "EnumType is support in $metadata"
    assert schema.get("Namespace") == "Microsoft.Dynamics.DataEntities"
    enums = {
        e.get("Name"): [(m.get("Name"), m.get("Value")) for m in e.findall(f"{EDM}Member")]
        for e in schema.findall(f"{EDM}EnumType")
    }
    assert enums["NoYes"] == [("No", "0"), ("Yes", "1")]
    assert [n for n, _ in enums["InventLocationType"]] == ["Standard", "Quarantine", "Transit"]
    types = {et.get("Name"): et for et in schema.findall(f"{EDM}EntityType")}
    for table in FNO_TABLES:
        et = types[table.logical_name]
        # odata.md: "all fields in the entity key must be provided" - dataAreaId is part of every key
        assert [p.get("Name") for p in et.findall(f"{EDM}Key/{EDM}PropertyRef")] == list(table.key)
        props = {p.get("Name"): p.get("Type") for p in et.findall(f"{EDM}Property")}
        assert set(props) == {c.name for c in table.columns}
        for c in table.columns:
            if c.kind is Kind.ENUM:
                assert props[c.name].startswith("Microsoft.Dynamics.DataEntities.")
    navs = {n.get("Name"): n.get("Type") for n in types["Warehouse"].findall(f"{EDM}NavigationProperty")}
    assert navs["OperationalSite"] == "Microsoft.Dynamics.DataEntities.OperationalSite"
    sets = {es.get("Name") for es in schema.findall(f"{EDM}EntityContainer/{EDM}EntitySet")}
    assert sets == {t.entity_set for t in FNO_TABLES}


async def test_expand_first_level_only(client: Client) -> None:
    await client.post(B + "Warehouses", json={"WarehouseId": "W1", "OperationalSiteId": "2"})
    # odata.md: "$expand (only first-level expansion is supported)"
    r = await client.get(
        B + "Warehouses", params={"$select": "WarehouseId", "$expand": "OperationalSite($select=SiteName)"}
    )
    body = await r.json()
    assert r.status == 200, body
    [row] = body["value"]
    assert row["WarehouseId"] == "W1"
    assert {k: v for k, v in row["OperationalSite"].items() if k != "@odata.etag"} == {"SiteName": "Site 2"}
    assert row.get("MainRefillingWarehouse") is None
    nested = await client.get(B + "Warehouses", params={"$expand": "OperationalSite($expand=Foo)"})
    assert nested.status == 400
    assert (await client.get(B + "Warehouses", params={"$expand": "NoSuchNav"})).status == 400


async def test_in_and_has_are_refused_and_wildcards_mean_contains(svc: FnoService, client: Client) -> None:
    svc.seed(
        "DeliveryModesV2",
        [
            {"ModeCode": c, "ModeDescription": d}
            for c, d in (("AIR", "by air"), ("SEA", "by sea"), ("RAIL", "retail rail"))
        ],
    )

    async def codes(flt: str) -> list[str]:
        r = await client.get(B + "DeliveryModesV2", params={"$filter": flt})
        body = await r.json()
        assert r.status == 200, body
        return sorted(v["ModeCode"] for v in body["value"])

    # odata.md: "The operators 'has' and 'in' are not supported."
    r = await client.get(B + "DeliveryModesV2", params={"$filter": "ModeCode in ('AIR','SEA')"})
    assert r.status == 400 and "'in'" in (await r.json())["error"]["innererror"]["message"]
    r = await client.get(B + "DeliveryModesV2", params={"$filter": "ModeCode has 'AIR'"})
    assert r.status == 400 and "'has'" in (await r.json())["error"]["innererror"]["message"]
    # odata.md: "Contains ... implemented as a wildcard character ... StringField eq '*retail*'"
    assert await codes("ModeDescription eq '*retail*'") == ["RAIL"]
    assert await codes("ModeDescription eq 'by*'") == ["AIR", "SEA"]
    assert await codes("ModeDescription ne '*sea*'") == ["AIR", "RAIL"]
    assert await codes("ModeCode eq 'AIR'") == ["AIR"]
    assert await codes("ModeDescription eq '*100%*'") == []  # % is literal, not a SQL wildcard


async def test_count_segment_respects_the_default_company(svc: FnoService, client: Client) -> None:
    svc.seed("LegalEntities", [{"LegalEntityId": "usrt"}])
    svc.seed(
        "DeliveryModesV2",
        [{"dataAreaId": "usmf", "ModeCode": "AIR"}, {"dataAreaId": "usrt", "ModeCode": "SEA"}],
    )
    r = await client.get(B + "DeliveryModesV2/$count")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
    assert await r.text() == "1"
    assert (
        await (await client.get(B + "DeliveryModesV2/$count", params={"cross-company": "true"})).text() == "2"
    )


async def test_enums_support_only_eq_and_ne(client: Client) -> None:
    await client.post(
        B + "Warehouses", json={"WarehouseId": "W1", "OperationalSiteId": "1", "WarehouseType": "Transit"}
    )
    transit = "Microsoft.Dynamics.DataEntities.InventLocationType'Transit'"
    # odata.md, "Using Enums": enum literals Namespace.Enum'Label'; "The operations supported for
    # enums are eq and ne."
    r = await client.get(B + "Warehouses", params={"$filter": f"WarehouseType eq {transit}"})
    assert r.status == 200 and [w["WarehouseId"] for w in (await r.json())["value"]] == ["W1"]
    r = await client.get(B + "Warehouses", params={"$filter": f"WarehouseType ne {transit}"})
    assert r.status == 200 and (await r.json())["value"] == []
    r = await client.get(B + "Warehouses", params={"$filter": f"WarehouseType gt {transit}"})
    assert r.status == 400 and "eq and ne" in (await r.json())["error"]["innererror"]["message"]
