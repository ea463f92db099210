"""The emulated F&O OData service over real HTTP: composite keys, companies, defaults, errors, hooks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bridge.sandbox.contracts import HookFailed
from bridge.sandbox.fno.service import FnoService, SeedError
from tests.sandbox.test_odata_harness import ANONYMOUS, AS_BRIDGE, RecordingHooks, serve

B = "/data/"
W1 = B + "Warehouses(dataAreaId='usmf',WarehouseId='W1')"
WRITE_EXC = "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException"
Client = TestClient[web.Request, web.Application]


@pytest.fixture
def hooks() -> RecordingHooks:
    return RecordingHooks()


@pytest.fixture
def svc(hooks: RecordingHooks) -> FnoService:
    return FnoService(hooks=hooks)


@pytest.fixture
async def client(svc: FnoService) -> AsyncIterator[Client]:
    async with serve(svc) as c:
        yield c


async def post_warehouse(client: Client, **extra: Any) -> Any:
    return await client.post(B + "Warehouses", json={"WarehouseId": "W1", "OperationalSiteId": "1", **extra})


async def fno_error(r: Any, status: int) -> str:
    assert r.status == status, await r.text()
    body = await r.json()
    assert body["error"]["code"] == "" and body["error"]["message"] == "An error has occurred."
    assert set(body["error"]["innererror"]) == {"message", "type", "stacktrace"}
    return str(body["error"]["innererror"]["message"])


async def test_post_answers_201_with_the_entity_and_defaults(client: Client) -> None:
    r = await post_warehouse(client, WarehouseName="Main")
    assert r.status == 201 and r.headers["Location"].endswith(
        "Warehouses(dataAreaId='usmf',WarehouseId='W1')"
    )
    body = await r.json()
    assert body["dataAreaId"] == "usmf" and body["WarehouseType"] == "Standard"
    assert body["AreAdvancedWarehouseManagementProcessesEnabled"] == "No" and body["PrimaryAddressCity"] == ""
    assert body["@odata.etag"].startswith('W/"')


async def test_dates_and_enums_travel_in_fno_form(client: Client, svc: FnoService) -> None:
    svc.seed("AssetMaintenanceAssetTypes", [{"MaintenanceAssetTypeId": "PUMP", "Name": "Pump"}])
    body = {
        "MaintenanceAssetId": "A1",
        "Name": "a",
        "MaintenanceAssetTypeId": "PUMP",
        "AcquisitionDate": "2024-05-01",
    }
    r = await client.post(B + "AssetMaintenanceAssets", json=body)
    row = await r.json()
    assert (
        row["AcquisitionDate"] == "2024-05-01T00:00:00Z" and row["ReplacementDate"] == "1900-01-01T00:00:00Z"
    )
    cat = await (
        await client.get(B + "AssetMaintenanceAssetTypes(dataAreaId='usmf',MaintenanceAssetTypeId='PUMP')")
    ).json()
    assert cat["CalculateKPITotal"] == "No"


async def test_warehouse_id_longer_than_10_is_rejected_clearly(client: Client, svc: FnoService) -> None:
    r = await client.post(
        B + "Warehouses", json={"WarehouseId": "WAREHOUSE-LONG-ID", "OperationalSiteId": "1"}
    )
    msg = await fno_error(r, 400)
    assert "'WAREHOUSE-LONG-ID'" in msg and "maximum length 10" in msg
    assert (await r.json())["error"]["innererror"]["type"] == WRITE_EXC
    assert svc.rows("Warehouses") == []


async def test_duplicate_key_answers_500_as_reported(client: Client, svc: FnoService) -> None:
    assert (await post_warehouse(client)).status == 201
    msg = await fno_error(await post_warehouse(client, WarehouseId="w1"), 500)
    assert "already exists" in msg and len(svc.rows("Warehouses")) == 1


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"OperationalSiteId": "99"}, "OperationalSiteId"),
        ({"dataAreaId": "xxxx"}, "dataAreaId"),
        ({"WarehouseType": "Bogus"}, "Bogus"),
        ({"WarehouseName": 5}, "WarehouseName"),
        ({"Bogus": 1}, "Bogus"),
        ({"ModifiedDateTime": "2024-01-01T00:00:00Z"}, "ModifiedDateTime"),
        ({"OperationalSiteId": ""}, "OperationalSiteId"),
    ],
)
async def test_rule_violations_are_400_and_write_nothing(
    client: Client, svc: FnoService, body: dict[str, Any], needle: str
) -> None:
    assert needle in await fno_error(await post_warehouse(client, **body), 400)
    assert svc.rows("Warehouses") == []


async def test_site_must_be_in_the_same_company(client: Client, svc: FnoService) -> None:
    svc.seed("LegalEntities", [{"LegalEntityId": "USRT"}])
    msg = await fno_error(await post_warehouse(client, dataAreaId="usrt"), 400)
    assert "OperationalSiteId" in msg


@pytest.mark.parametrize(
    ("data", "path"),
    [(b"{oops", "Warehouses"), (b"[]", "Warehouses"), (b"{}", "Nonexistent")],
)
async def test_bad_requests_have_the_fno_shape(
    client: Client, svc: FnoService, data: bytes, path: str
) -> None:
    r = await client.post(B + path, data=data, headers={"Content-Type": "application/json"})
    assert r.status in (400, 404)
    await fno_error(r, r.status)
    assert svc.rows("Warehouses") == []


@pytest.mark.parametrize(
    "seg", ["Warehouses(dataAreaId='usmf'", "Warehouses(WarehouseId='W1')", "Warehouses(1)"]
)
async def test_bad_keys_are_400(client: Client, seg: str) -> None:
    await fno_error(await client.get(B + seg), 400)


async def test_no_principal_is_401(client: Client, svc: FnoService) -> None:
    r = await client.post(B + "Warehouses", json={"WarehouseId": "W1"}, headers=ANONYMOUS)
    await fno_error(r, 401)
    assert svc.rows("Warehouses") == []


async def test_oversize_body_is_413(client: Client, svc: FnoService) -> None:
    svc.http.max_body_bytes = 100
    await fno_error(await post_warehouse(client, WarehouseName="x" * 200), 413)


async def test_patch_updates_204_and_no_upsert(client: Client, svc: FnoService) -> None:
    await post_warehouse(client)
    assert (await client.patch(W1, json={"WarehouseName": "Renamed"})).status == 204
    assert svc.rows("Warehouses")[0]["WarehouseName"] == "Renamed"
    missing = B + "Warehouses(dataAreaId='usmf',WarehouseId='NOPE')"
    await fno_error(await client.patch(missing, json={"WarehouseName": "x"}), 404)
    assert len(svc.rows("Warehouses")) == 1


@pytest.mark.parametrize("body", [{"dataAreaId": "usrt"}, {"WarehouseId": "W2"}])
async def test_key_and_company_cannot_change(client: Client, svc: FnoService, body: dict[str, Any]) -> None:
    svc.seed("LegalEntities", [{"LegalEntityId": "usrt"}])
    await post_warehouse(client)
    assert "cannot be changed" in await fno_error(await client.patch(W1, json=body), 400)


async def test_etag_concurrency_and_delete(client: Client, svc: FnoService) -> None:
    etag = (await (await post_warehouse(client)).json())["@odata.etag"]
    assert (await client.patch(W1, json={"WarehouseName": "a"}, headers={"If-Match": etag})).status == 204
    await fno_error(await client.patch(W1, json={"WarehouseName": "b"}, headers={"If-Match": etag}), 412)
    assert (await client.delete(W1)).status == 204
    await fno_error(await client.get(W1), 404)


async def test_only_the_default_company_unless_cross_company(client: Client, svc: FnoService) -> None:
    svc.seed("LegalEntities", [{"LegalEntityId": "usrt"}])
    svc.seed(
        "DeliveryModesV2",
        [{"dataAreaId": "usmf", "ModeCode": "AIR"}, {"dataAreaId": "usrt", "ModeCode": "SEA"}],
    )

    async def codes(query: str) -> list[str]:
        body = await (await client.get(B + "DeliveryModesV2" + query)).json()
        return sorted(v["ModeCode"] for v in body["value"])

    assert await codes("") == ["AIR"]
    assert await codes("?cross-company=true") == ["AIR", "SEA"]
    # MicrosoftDocs/dynamics-365-unified-operations-public, articles/fin-ops-core/dev-itpro/
    # data-entities/odata.md, "Cross-company behavior": another company's rows need
    # "$filter=dataAreaId eq 'usrt'&cross-company=true"; the filter alone stays in the default company.
    assert await codes("?$filter=dataAreaId eq 'usrt'") == []
    assert await codes("?$filter=dataAreaId eq 'usrt'&cross-company=true") == ["SEA"]
    other = B + "DeliveryModesV2(dataAreaId='usrt',ModeCode='SEA')"
    assert (await client.get(other)).status == 404
    assert (await client.get(other + "?cross-company=true")).status == 200


async def test_query_options_and_paging(client: Client, svc: FnoService) -> None:
    svc.seed("PaymentTerms", [{"Name": f"N{d:02}", "NumberOfDays": d} for d in range(0, 50, 5)])
    r = await client.get(
        B + "PaymentTerms?$filter=NumberOfDays ge 10&$orderby=NumberOfDays desc&$skip=1&$top=3"
        "&$select=Name&$count=true"
    )
    body = await r.json()
    assert [v["Name"] for v in body["value"]] == ["N40", "N35", "N30"] and body["@odata.count"] == 8
    names: list[str] = []
    url: str | None = B + "PaymentTerms?$orderby=Name"
    while url:
        page = await (await client.get(url, headers={"Prefer": "odata.maxpagesize=4"})).json()
        names += [v["Name"] for v in page["value"]]
        link = page.get("@odata.nextLink")
        url = link[link.index(B) :] if link else None
    assert names == sorted(names) and len(names) == 10


async def test_enum_literal_filter(client: Client, svc: FnoService) -> None:
    svc.seed("PaymentTerms", [{"Name": "COD", "PaymentMethodType": "COD"}, {"Name": "N30"}])
    r = await client.get(
        B + "PaymentTerms?$filter=PaymentMethodType eq Microsoft.Dynamics.DataEntities.NetDue'COD'"
    )
    assert [v["Name"] for v in (await r.json())["value"]] == ["COD"]


async def test_hooks_carry_the_composite_key_and_principal(client: Client, hooks: RecordingHooks) -> None:
    await post_warehouse(client)
    await client.patch(W1, json={"WarehouseName": "x"}, headers=AS_BRIDGE)
    await client.delete(W1)
    assert [c.message for c in hooks.after] == ["Create", "Update", "Delete"]
    change = hooks.after[1]
    assert change.system == "fno" and change.record_id == "dataAreaId='usmf',WarehouseId='W1'"
    assert change.keys == {"dataAreaId": "usmf", "WarehouseId": "W1"} and change.changed == {
        "WarehouseName": "x"
    }
    assert change.principal.client_id == "dualwrite-bridge" and change.pre_image is not None
    assert hooks.after[2].post_image is None


async def test_hook_failure_rolls_back(client: Client, svc: FnoService, hooks: RecordingHooks) -> None:
    hooks.fail = HookFailed("boom", status=500)
    await fno_error(await post_warehouse(client), 500)
    assert svc.rows("Warehouses") == []


def test_seed_rejects_invalid_rows_atomically(svc: FnoService) -> None:
    with pytest.raises(SeedError):
        svc.seed("DeliveryModesV2", [{"ModeCode": "OK"}, {"ModeCode": "TOO-LONG-CODE"}])
    assert svc.rows("DeliveryModesV2") == []
    svc.seed("DeliveryModesV2", [{"ModeCode": "OK"}])
    svc.reset()
    assert svc.rows("DeliveryModesV2") == [] and len(svc.rows("OperationalSites")) == 6
    assert svc.get("OperationalSites", "dataAreaId='usmf',SiteId='3'") is not None
    svc.close()
