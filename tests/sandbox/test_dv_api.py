"""The emulated Dataverse Web API over real HTTP: CRUD, upsert, ETags, lookups, errors, queries, hooks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bridge.sandbox.contracts import HookFailed, RecordChange
from bridge.sandbox.dataverse.service import DataverseService, sandbox_id
from bridge.sandbox.schema import DATAVERSE_TABLES
from tests.sandbox.test_odata_harness import ANONYMOUS, AS_BRIDGE, BRIDGE, USER, RecordingHooks, serve

B = "/api/data/v9.2/"
USMF = sandbox_id("cdm_company", "USMF")
MISSING = "11111111-2222-3333-4444-555555555555"
Client = TestClient[web.Request, web.Application]


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


def warehouse(ident: str = "W1", **extra: Any) -> dict[str, Any]:
    return {
        "msdyn_warehouseidentifier": ident,
        "msdyn_name": ident,
        "msdyn_company@odata.bind": f"/cdm_companies({USMF})",
        **extra,
    }


async def create(
    client: Client, body: dict[str, Any], entity_set: str = "msdyn_warehouses"
) -> dict[str, Any]:
    r = await client.post(B + entity_set, json=body, headers={"Prefer": "return=representation"})
    assert r.status == 201, await r.text()
    return dict(await r.json())


async def error(r: Any, status: int, code: str) -> str:
    assert r.status == status, await r.text()
    body = await r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    return str(body["error"]["message"])


def count(svc: DataverseService, entity_set: str = "msdyn_warehouses") -> int:
    return len(svc.rows(entity_set))


# ---------------------------------------------------------------- create / read
async def test_post_answers_204_with_odata_entityid(client: Client, svc: DataverseService) -> None:
    r = await client.post(B + "msdyn_warehouses", json=warehouse())
    assert r.status == 204
    rid = svc.rows("msdyn_warehouses")[0]["msdyn_warehouseid"]
    assert r.headers["OData-EntityId"].endswith(f"{B}msdyn_warehouses({rid})")


async def test_post_with_representation_honours_select(client: Client) -> None:
    r = await client.post(
        B + "msdyn_warehouses?$select=msdyn_name",
        json=warehouse(),
        headers={"Prefer": "return=representation"},
    )
    assert r.status == 201 and r.headers["Preference-Applied"] == "return=representation"
    body = await r.json()
    assert set(body) == {"@odata.context", "@odata.etag", "msdyn_name", "msdyn_warehouseid"}


async def test_row_carries_etag_and_system_columns(client: Client) -> None:
    row = await create(client, warehouse())
    assert row["@odata.etag"] == f'W/"{row["versionnumber"]}"'
    assert row["_msdyn_company_value"] == USMF and row["_modifiedby_value"] == USER.user_id
    assert row["createdon"] == row["modifiedon"] and row["createdon"].endswith("Z")


async def test_client_may_supply_the_guid(client: Client) -> None:
    rid = "11111111-2222-3333-4444-555555555555"
    row = await create(client, warehouse(msdyn_warehouseid=rid))
    assert row["msdyn_warehouseid"] == rid
    r = await client.get(B + f"msdyn_warehouses({rid})")
    assert (await r.json())["msdyn_name"] == "W1"


async def test_duplicate_alternate_key_is_0x80040237(client: Client, svc: DataverseService) -> None:
    await create(client, warehouse())
    r = await client.post(B + "msdyn_warehouses", json=warehouse("w1"))
    assert "matching key values" in await error(r, 412, "0x80040237")
    assert count(svc) == 1


async def test_get_by_both_alternate_key_spellings(client: Client) -> None:
    row = await create(client, warehouse("O'Hare"))
    for seg in (
        f"_msdyn_company_value={USMF},msdyn_warehouseidentifier='O''Hare'",
        f"msdyn_company={USMF},msdyn_warehouseidentifier='O%27%27Hare'",
    ):
        r = await client.get(B + f"msdyn_warehouses({seg})")
        assert r.status == 200 and (await r.json())["msdyn_warehouseid"] == row["msdyn_warehouseid"]


async def test_missing_record_is_0x80040217(client: Client) -> None:
    r = await client.get(B + "msdyn_warehouses(11111111-2222-3333-4444-555555555555)")
    assert "Does Not Exist" in await error(r, 404, "0x80040217")


async def test_whoami_returns_the_callers_user_id(client: Client, svc: DataverseService) -> None:
    body = await (await client.get(B + "WhoAmI", headers=AS_BRIDGE)).json()
    assert body["UserId"] == BRIDGE.user_id and body["OrganizationId"] == svc.organization_id
    assert body["@odata.context"].endswith("$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse")


async def test_if_none_match_current_etag_is_304(client: Client) -> None:
    row = await create(client, warehouse())
    r = await client.get(
        B + f"msdyn_warehouses({row['msdyn_warehouseid']})", headers={"If-None-Match": row["@odata.etag"]}
    )
    assert r.status == 304


# ---------------------------------------------------------------- update / upsert / delete
async def test_patch_updates_and_stamps_the_caller(client: Client, svc: DataverseService) -> None:
    row = await create(client, warehouse())
    url = B + f"msdyn_warehouses({row['msdyn_warehouseid']})"
    r = await client.patch(
        url, json={"msdyn_description": "new"}, headers={**AS_BRIDGE, "Prefer": "return=representation"}
    )
    assert r.status == 200
    after = await r.json()
    assert after["msdyn_description"] == "new" and after["_modifiedby_value"] == BRIDGE.user_id
    assert after["versionnumber"] > row["versionnumber"]
    assert [(w.message, w.client_id) for w in svc.write_log[-2:]] == [
        ("Create", "sandbox-user"),
        ("Update", "dualwrite-bridge"),
    ]


async def test_upsert_by_alternate_key_creates_then_updates(client: Client, svc: DataverseService) -> None:
    url = B + f"msdyn_warehouses(msdyn_company={USMF},msdyn_warehouseidentifier='UP1')"
    r1 = await client.patch(url, json={"msdyn_name": "one"}, headers={"Prefer": "return=representation"})
    r2 = await client.patch(url, json={"msdyn_name": "two"}, headers={"Prefer": "return=representation"})
    assert (r1.status, r2.status) == (201, 200)
    assert [r["msdyn_name"] for r in svc.rows("msdyn_warehouses")] == ["two"]


async def test_if_match_star_forbids_create(client: Client, svc: DataverseService) -> None:
    url = B + f"msdyn_warehouses(msdyn_company={USMF},msdyn_warehouseidentifier='UP1')"
    r = await client.patch(url, json={"msdyn_name": "x"}, headers={"If-Match": "*"})
    await error(r, 404, "0x80040217")
    assert count(svc) == 0


async def test_if_none_match_star_forbids_update(client: Client, svc: DataverseService) -> None:
    row = await create(client, warehouse())
    r = await client.patch(
        B + f"msdyn_warehouses({row['msdyn_warehouseid']})",
        json={"msdyn_name": "x"},
        headers={"If-None-Match": "*"},
    )
    await error(r, 412, "0x80040237")
    assert svc.rows("msdyn_warehouses")[0]["msdyn_name"] == "W1"


async def test_stale_etag_is_412(client: Client, svc: DataverseService) -> None:
    row = await create(client, warehouse())
    url = B + f"msdyn_warehouses({row['msdyn_warehouseid']})"
    assert (
        await client.patch(url, json={"msdyn_name": "a"}, headers={"If-Match": row["@odata.etag"]})
    ).status == 204
    r = await client.patch(url, json={"msdyn_name": "b"}, headers={"If-Match": row["@odata.etag"]})
    await error(r, 412, "0x80060882")
    r = await client.delete(url, headers={"If-Match": row["@odata.etag"]})
    assert r.status == 412 and svc.rows("msdyn_warehouses")[0]["msdyn_name"] == "a"


async def test_delete_then_404(client: Client, svc: DataverseService) -> None:
    row = await create(client, warehouse())
    url = B + f"msdyn_warehouses({row['msdyn_warehouseid']})"
    assert (await client.delete(url)).status == 204
    await error(await client.delete(url), 404, "0x80040217")
    assert count(svc) == 0


async def test_company_cannot_change(client: Client, svc: DataverseService) -> None:
    other = svc.seed("cdm_companies", [{"cdm_companycode": "USRT"}])[0]["cdm_companyid"]
    row = await create(client, warehouse())
    r = await client.patch(
        B + f"msdyn_warehouses({row['msdyn_warehouseid']})",
        json={"msdyn_company@odata.bind": f"/cdm_companies({other})"},
    )
    assert "cannot be changed" in await error(r, 400, "0x80044331")


# ---------------------------------------------------------------- lookups
async def test_lookup_bind_forms_and_null_clears(client: Client, svc: DataverseService) -> None:
    site = sandbox_id("msdyn_operationalsite", "USMF", "2")
    base = str(client.make_url(B))
    row = await create(
        client, warehouse(**{"msdyn_operationalsite@odata.bind": f"{base}msdyn_operationalsites({site})"})
    )
    assert row["_msdyn_operationalsite_value"] == site
    url = B + f"msdyn_warehouses({row['msdyn_warehouseid']})"
    await client.patch(url, json={"msdyn_operationalsite@odata.bind": None})
    assert svc.get("msdyn_warehouses", row["msdyn_warehouseid"])["_msdyn_operationalsite_value"] is None  # type: ignore[index]


async def test_bind_by_alternate_key(client: Client) -> None:
    row = await create(
        client,
        {"msdyn_name": "N30", "msdyn_company@odata.bind": "cdm_companies(cdm_companycode='USMF')"},
        "msdyn_paymentterms",
    )
    assert row["_msdyn_company_value"] == USMF


async def test_bind_to_missing_row_is_404_and_nothing_written(client: Client, svc: DataverseService) -> None:
    body = warehouse(**{"msdyn_operationalsite@odata.bind": f"/msdyn_operationalsites({MISSING})"})
    await error(await client.post(B + "msdyn_warehouses", json=body), 404, "0x80040217")
    assert count(svc) == 0


async def test_bind_to_wrong_entity_set_is_400(client: Client) -> None:
    body = warehouse(**{"msdyn_operationalsite@odata.bind": f"/cdm_companies({USMF})"})
    await error(await client.post(B + "msdyn_warehouses", json=body), 400, "0x80048d19")


# ---------------------------------------------------------------- bad input: real shape, 4xx, nothing written
@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "0x80048d19"),
        (b"[1,2]", 400, "0x80048d19"),
        (b'{"msdyn_bogus": 1}', 400, "0x80048d19"),
        (b'{"_msdyn_company_value": "x"}', 400, "0x80048d19"),
        (b'{"msdyn_warehousetype": "Standard"}', 400, "0x80048d19"),
        (b'{"msdyn_warehousetype": 1}', 400, "0x8004431a"),
        (b'{"versionnumber": 3}', 400, "0x80044331"),
    ],
)
async def test_bad_bodies(client: Client, svc: DataverseService, body: bytes, status: int, code: str) -> None:
    import json as _json

    payload = body
    if body.startswith(b"{") and body.endswith(b"}") and b"not json" not in body:
        payload = _json.dumps({**warehouse(), **_json.loads(body)}).encode()
    r = await client.post(B + "msdyn_warehouses", data=payload, headers={"Content-Type": "application/json"})
    await error(r, status, code)
    assert count(svc) == 0


async def test_too_long_value_uses_the_documented_message(client: Client, svc: DataverseService) -> None:
    r = await client.post(B + "msdyn_warehouses", json=warehouse(msdyn_description="x" * 2001))
    msg = await error(r, 400, "0x80044331")
    assert (
        "'msdyn_description' attribute of the 'msdyn_warehouse' entity exceeded the maximum allowed "
        "length of '2000'" in msg
    )


async def test_out_of_range_int(client: Client, svc: DataverseService) -> None:
    body = {
        "msdyn_maintenanceassetid": "A",
        "msdyn_name": "A",
        "msdyn_modelyear": 1800,
        "msdyn_company@odata.bind": f"/cdm_companies({USMF})",
    }
    await error(await client.post(B + "msdyn_customerassets", json=body), 400, "0x8004432f")
    assert count(svc, "msdyn_customerassets") == 0


async def test_oversize_body_is_413(client: Client, svc: DataverseService) -> None:
    svc.http.max_body_bytes = 1000
    r = await client.post(B + "msdyn_warehouses", json=warehouse(msdyn_description="x" * 2000))
    assert r.status == 413 and "error" in await r.json()
    assert count(svc) == 0


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("msdyn_warehouses(not-a-guid)", 400),
        ("msdyn_warehouses(msdyn_warehouseidentifier='x'", 400),
        ("msdyn_warehouses(msdyn_name='x')", 400),
        ("nosuchset", 404),
    ],
)
async def test_bad_paths(client: Client, path: str, status: int) -> None:
    await error(await client.get(B + path), status, "0x80060888")


async def test_no_principal_is_401(client: Client, svc: DataverseService) -> None:
    r = await client.post(B + "msdyn_warehouses", json=warehouse(), headers=ANONYMOUS)
    assert r.status == 401 and "error" in await r.json()
    assert count(svc) == 0


async def test_missing_privilege_is_403(client: Client, svc: DataverseService) -> None:
    svc.denied.add(("sandbox-user", "msdyn_warehouses"))
    msg = await error(await client.post(B + "msdyn_warehouses", json=warehouse()), 403, "0x80040220")
    assert "prvCreatemsdyn_warehouse" in msg and count(svc) == 0
    assert (await client.post(B + "msdyn_warehouses", json=warehouse(), headers=AS_BRIDGE)).status == 204


async def test_authvalue_is_write_only(client: Client, svc: DataverseService) -> None:
    body = {"name": "hook", "contract": 8, "authtype": 4, "url": "https://x", "authvalue": "secret"}
    row = await create(client, body, "serviceendpoints")
    assert row["authvalue"] is None
    listed = await (await client.get(B + "serviceendpoints?$filter=contract eq 8")).json()
    assert listed["value"][0]["authvalue"] is None
    assert svc.rows("serviceendpoints")[0]["authvalue"] == "secret"  # the notifier can still read it


# ---------------------------------------------------------------- queries and paging
async def test_paging_with_maxpagesize_and_nextlink(client: Client, svc: DataverseService) -> None:
    svc.seed("msdyn_shipvias", [{"msdyn_name": f"S{i:02}", "_msdyn_company_value": USMF} for i in range(7)])
    url: str | None = B + "msdyn_shipvias?$select=msdyn_name&$orderby=msdyn_name desc"
    names: list[str] = []
    pages = 0
    while url:
        r = await client.get(url, headers={"Prefer": "odata.maxpagesize=3"})
        assert r.headers["Preference-Applied"] == "odata.maxpagesize=3"
        body = await r.json()
        names += [v["msdyn_name"] for v in body["value"]]
        link = body.get("@odata.nextLink")
        url = link[link.index(B) :] if link else None
        pages += 1
    assert pages == 3 and names == [f"S{i:02}" for i in reversed(range(7))]


async def test_filter_top_count(client: Client, svc: DataverseService) -> None:
    svc.seed(
        "msdyn_paymentterms",
        [{"msdyn_name": f"N{d}", "msdyn_days": d, "_msdyn_company_value": USMF} for d in (10, 30, 45, 60)],
    )
    r = await client.get(
        B + "msdyn_paymentterms?$filter=msdyn_days ge 30 and msdyn_name ne 'N60'&$count=true"
        "&$orderby=msdyn_days&$top=1"
    )
    body = await r.json()
    assert body["@odata.count"] == 2 and [v["msdyn_name"] for v in body["value"]] == ["N30"]
    assert "@odata.nextLink" not in body


async def test_filter_on_lookup_value_and_dates(client: Client) -> None:
    await create(client, warehouse())
    r = await client.get(
        B + f"msdyn_warehouses?$filter=_msdyn_company_value eq {USMF} and modifiedon gt 2000-01-01T00:00:00Z"
    )
    assert len((await r.json())["value"]) == 1


@pytest.mark.parametrize(
    "query",
    [
        "$select=nosuch",
        "$filter=nosuch eq 1",
        "$orderby=nosuch",
        "$skip=1",
        "$filter=msdyn_name eq",
        "$top=-1",
        "$skiptoken=bogus",
    ],
)
async def test_bad_queries_are_400(client: Client, query: str) -> None:
    await error(await client.get(B + "msdyn_warehouses?" + query), 400, "0x80060888")


# ---------------------------------------------------------------- hooks (the seam with the notifier)
async def test_hooks_get_full_images_and_changed_columns(client: Client, hooks: RecordingHooks) -> None:
    row = await create(client, warehouse())
    await client.patch(B + f"msdyn_warehouses({row['msdyn_warehouseid']})", json={"msdyn_description": "d"})
    create_change, update_change = hooks.before
    assert create_change.message == "Create" and create_change.pre_image is None
    assert update_change.pre_image is not None and update_change.post_image is not None
    assert update_change.changed == {"msdyn_description": "d"}
    assert (
        update_change.post_image["msdyn_description"] == "d"
        and update_change.pre_image["msdyn_description"] is None
    )
    assert [c.request_id for c in hooks.after] == [c.request_id for c in hooks.before]
    assert create_change.principal == USER and create_change.system == "dataverse"


async def test_update_without_change_still_notifies_and_bumps(client: Client, hooks: RecordingHooks) -> None:
    row = await create(client, warehouse())
    r = await client.patch(
        B + f"msdyn_warehouses({row['msdyn_warehouseid']})",
        json={"msdyn_name": "W1"},
        headers={"Prefer": "return=representation"},
    )
    assert (await r.json())["versionnumber"] > row["versionnumber"]
    assert [c.message for c in hooks.after] == ["Create", "Update"]


async def test_non_notifying_tables_call_no_hooks(client: Client, hooks: RecordingHooks) -> None:
    await create(client, {"cdm_companycode": "USRT"}, "cdm_companies")
    assert hooks.before == [] and hooks.after == []


async def test_hook_failure_rolls_back_and_answers_with_its_status(
    client: Client, svc: DataverseService, hooks: RecordingHooks
) -> None:
    hooks.fail = HookFailed(
        "Webhook call to https://x/hook failed: 503 Service Unavailable", status=500, code="0x80040265"
    )
    msg = await error(await client.post(B + "msdyn_warehouses", json=warehouse()), 500, "0x80040265")
    assert "503" in msg and count(svc) == 0 and hooks.after == []
    assert svc.write_log == []


async def test_reads_do_not_wait_for_the_write_lock(client: Client, hooks: RecordingHooks) -> None:
    seen: list[int] = []

    async def read_during_hook(change: RecordChange) -> None:
        r = await asyncio.wait_for(client.get(B + "msdyn_warehouses"), timeout=5)
        seen.append(len((await r.json())["value"]))

    hooks.during = read_during_hook
    assert (await client.post(B + "msdyn_warehouses", json=warehouse())).status == 204
    assert seen == [0]  # the open transaction is invisible to a reader, and the reader was not blocked


# ---------------------------------------------------------------- seed / dump / reset
async def test_seed_validates_and_reset_restores_defaults(svc: DataverseService) -> None:
    from bridge.sandbox.dataverse.service import SeedError

    with pytest.raises(SeedError):
        svc.seed("msdyn_shipvias", [{"msdyn_name": "x" * 101, "_msdyn_company_value": USMF}])
    svc.seed("msdyn_shipvias", [{"msdyn_name": "AIR", "_msdyn_company_value": USMF}])
    defaults = DataverseService()
    assert len(svc.dump()["msdyn_shipvias"]) == 1
    svc.reset()
    assert _timeless(svc.dump()) == _timeless(defaults.dump())  # same deterministic seed, same dump
    assert [r["msdyn_siteid"] for r in svc.dump()["msdyn_operationalsites"]] == ["1", "2", "3", "4", "5", "6"]
    assert len(svc.rows("sdkmessagefilters")) == 3 * sum(t.notifies for t in DATAVERSE_TABLES)
    defaults.close()
    svc.close()


def _timeless(dump: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    return {
        t: [{k: v for k, v in r.items() if k not in ("createdon", "modifiedon")} for r in rows]
        for t, rows in dump.items()
    }
