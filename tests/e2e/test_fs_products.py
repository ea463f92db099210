"""Products, F&O -> Field Service, over real HTTP (issue 23, flow 1; field-service-product.md and
products-template-mapping-direct.md): a released product of the map's company becomes a Dataverse
product with its Field Service product type, "is externally maintained", its unit, unit group and
price list; an update follows; a delete removes it; another company's release is left out; a change
made in Dataverse is never written back."""

from __future__ import annotations

from tests.e2e.fieldservice import dv_one, fno_product, synced_product, units
from tests.e2e.harness import Harness, eventually


async def test_a_released_product_becomes_a_field_service_product(env: Harness) -> None:
    ids = await units(env)
    await fno_product(env, "FS-100", product_type="Item", stocked="Yes")
    await fno_product(env, "FS-101", product_type="Item", stocked="No")
    await fno_product(env, "FS-102", product_type="Service", stocked="No", unit="h")
    stocked = await synced_product(env, "FS-100")
    assert stocked["msdyn_fieldserviceproducttype"] == 690970000  # inventory
    assert stocked["msdynce_isexternallymaintained"] is True
    assert stocked["name"] == "Product FS-100"
    assert float(stocked["price"]) == 12.5
    assert stocked["_defaultuomid_value"] == ids["ea"]
    assert stocked["_defaultuomscheduleid_value"] == ids["group"]
    assert stocked["_pricelevelid_value"] == ids["price_list"]
    assert (await synced_product(env, "FS-101"))[
        "msdyn_fieldserviceproducttype"
    ] == 690970001  # non-inventory
    service = await synced_product(env, "FS-102")
    assert service["msdyn_fieldserviceproducttype"] == 690970002  # service
    assert service["_defaultuomid_value"] == ids["h"]


async def test_updates_and_deletes_follow_and_dataverse_edits_are_not_written_back(env: Harness) -> None:
    await units(env)
    await fno_product(env, "FS-200")
    row = await synced_product(env, "FS-200")
    resp = await env.scm_update(
        "CDSReleasedDistinctProducts", "ProductNumber", "FS-200", {"SalesPrice": 20, "IsStockedProduct": "No"}
    )
    assert resp.status == 204, resp.body

    async def updated() -> bool:
        now = await dv_one(env, "products", "productnumber eq 'FS-200'")
        return (
            now is not None
            and float(now["price"]) == 20
            and now["msdyn_fieldserviceproducttype"] == 690970001
        )

    await eventually(updated, what="the price and type update in Dataverse")
    writes = env.writes("scm")
    resp = await env.request(
        "cds", "PATCH", f"products({row['productid']})", {"name": "renamed in Dataverse"}
    )
    assert resp.status == 204, resp.body
    await env.settle()
    assert env.writes("scm") == writes  # one way: Dataverse's edit is not written to F&O
    fno = await env.scm_find("CDSReleasedDistinctProducts", "ProductNumber", "FS-200")
    assert fno is not None and fno["ProductName"] == "Product FS-200"
    resp = await env.scm_delete("CDSReleasedDistinctProducts", "ProductNumber", "FS-200")
    assert resp.status == 204, resp.body

    async def deleted() -> bool:
        return await dv_one(env, "products", "productnumber eq 'FS-200'") is None

    await eventually(deleted, what="the product deleted in Dataverse")


async def test_another_companys_release_is_left_out(env: Harness) -> None:
    await units(env)
    resp = await env.request(
        "scm", "POST", "LegalEntities", {"LegalEntityId": "DEMF", "Name": "Contoso Germany"}
    )
    assert resp.status == 201, resp.body
    resp = await env.request(
        "scm",
        "POST",
        "CDSReleasedDistinctProducts",
        {
            "dataAreaId": "demf",
            "ProductNumber": "FS-300",
            "ProductName": "Elsewhere",
            "ProductType": "Item",
            "IsStockedProduct": "Yes",
            "SalesUnitSymbol": "ea",
        },
    )
    assert resp.status == 201, resp.body
    await env.settle()
    assert await dv_one(env, "products", "productnumber eq 'FS-300'") is None
    skipped = await env.ops("GET", "/api/maps/product")
    assert skipped.status == 200, skipped.body
    assert "DEMF" in str(skipped.body)  # the reason is shown: company DEMF, the map syncs USMF only


async def test_a_duplicate_data_event_writes_once(env: Harness) -> None:
    await units(env)
    await fno_product(env, "FS-400")
    await synced_product(env, "FS-400")
    await env.settle()
    writes = env.writes("cds", entity_set="products")
    resp = await env.scm_update(
        "CDSReleasedDistinctProducts", "ProductNumber", "FS-400", {"ProductName": "Product FS-400"}
    )
    assert resp.status == 204, resp.body  # the same values again: an event, and nothing to write
    await env.settle()
    assert env.writes("cds", entity_set="products") == writes


async def test_duplicated_and_reordered_data_events_end_with_the_newest_product(env: Harness) -> None:
    from bridge.sandbox.faults import FaultSettings

    await units(env)
    await fno_product(env, "FS-500")
    await synced_product(env, "FS-500")
    await env.settle()
    writes = env.writes("cds", entity_set="products")
    env.sandbox.faults["fno"].configure(FaultSettings(duplicate_rate=1.0))
    resp = await env.scm_update("CDSReleasedDistinctProducts", "ProductNumber", "FS-500", {"SalesPrice": 30})
    assert resp.status == 204, resp.body
    await env.settle()
    assert any(e.kind == "duplicate" for e in env.sandbox.faults["fno"].log)
    assert env.writes("cds", entity_set="products") == writes + 1  # sent twice, written once
    env.sandbox.faults["fno"].configure(FaultSettings(reorder_next=1, reorder_hold_ms=300))
    for price in (31, 32):
        resp = await env.scm_update(
            "CDSReleasedDistinctProducts", "ProductNumber", "FS-500", {"SalesPrice": price}
        )
        assert resp.status == 204, resp.body
    await env.settle()
    assert any(e.kind == "reorder" for e in env.sandbox.faults["fno"].log)
    row = await dv_one(env, "products", "productnumber eq 'FS-500'")
    assert row is not None and float(row["price"]) == 32  # the late 31 did not win
