"""What happens when the other system says no.

Synchronous (a Dataverse synchronous step): the originator's save fails and rolls back, so the record
exists on neither side, and the failure is recorded where admins find it. Asynchronous (F&O data
events, Dataverse async steps): the originator already committed, so the bridge compensates there."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.entities import ensure_category, site_id
from tests.e2e.harness import Harness, eventually


async def _failures(env: Harness, entity: str) -> list[dict[str, Any]]:
    resp = await env.ops("GET", f"/api/failures?entity={entity}")
    assert resp.status == 200, resp.body
    items = resp.body["items"] if isinstance(resp.body, dict) else resp.body
    return list(items)


async def test_sync_rejection_rolls_back_the_originator(env: Harness) -> None:
    site = await site_id(env, "1")
    too_long = "WAREHOUSE-NORTH"  # 15 characters: Dataverse takes 100, F&O's WarehouseId only 10
    resp = await env.cds_create(
        "msdyn_warehouses",
        {
            "msdyn_warehouseidentifier": too_long,
            "msdyn_name": too_long,
            "msdyn_operationalsite@odata.bind": f"/msdyn_operationalsites({site})",
        },
    )
    assert resp.status >= 400, resp.body
    assert "webhook" in str(resp.body).lower()  # Dataverse names the failed webhook call
    assert await env.cds_find("msdyn_warehouses", "msdyn_warehouseidentifier", too_long) is None
    assert await env.scm_find("Warehouses", "WarehouseId", too_long) is None
    failures = await _failures(env, "warehouse")
    assert len(failures) == 1
    failure = failures[0]
    assert failure["key"] == too_long and failure["direction"] == "cds->scm"
    assert "10" in failure["target_message"]  # F&O's validation text: the maximum length
    assert failure["correlation_id"]  # Dataverse's correlation id, for a support call
    assert env.writes("scm", entity_set="Warehouses") == 0


async def test_sync_unreachable_target_fails_the_save_and_applies_nothing_later(env: Harness) -> None:
    from bridge.sandbox.faults import FaultSettings

    env.sandbox.faults["fno"].configure(FaultSettings(unavailable_rate=1.0))
    resp = await env.cds_create("msdyn_shipvias", {"msdyn_name": "Rail", "msdyn_description": "Rail"})
    assert resp.status >= 400
    assert await env.cds_find("msdyn_shipvias", "msdyn_name", "Rail") is None
    env.sandbox.faults["fno"].configure(FaultSettings())
    await env.settle()
    assert await env.scm_find("DeliveryModesV2", "ModeCode", "Rail") is None
    kinds = {f["kind"] for f in await _failures(env, "ship_via")}
    assert "retry-exhausted" in kinds


async def test_async_rejected_create_is_removed_from_the_originator(env: Harness) -> None:
    await ensure_category(env, "PUMP")
    # F&O accepts model year 1800; Dataverse's msdyn_modelyear starts at 1900.
    resp = await env.scm_create(
        "AssetMaintenanceAssets",
        {
            "MaintenanceAssetId": "OLD-1",
            "Name": "Old pump",
            "MaintenanceAssetTypeId": "PUMP",
            "ModelYear": "1800",
        },
    )
    assert resp.status == 201, resp.body

    async def removed() -> bool:
        return await env.scm_find("AssetMaintenanceAssets", "MaintenanceAssetId", "OLD-1") is None

    await eventually(removed, what="the rejected asset removed from F&O")
    await env.settle()
    assert await env.cds_find("msdyn_customerassets", "msdyn_maintenanceassetid", "OLD-1") is None
    failures = await _failures(env, "customer_asset")
    assert len(failures) == 1
    assert failures[0]["compensated"] is True
    assert failures[0]["source_message"] and failures[0]["target_message"]  # both systems' words


async def test_async_rejected_update_restores_the_last_synced_values(env: Harness) -> None:
    await ensure_category(env, "PUMP")
    resp = await env.scm_create(
        "AssetMaintenanceAssets",
        {
            "MaintenanceAssetId": "P-2",
            "Name": "Pump 2",
            "MaintenanceAssetTypeId": "PUMP",
            "ModelYear": "2001",
        },
    )
    assert resp.status == 201
    await eventually(
        lambda: env.cds_find("msdyn_customerassets", "msdyn_maintenanceassetid", "P-2"), what="asset synced"
    )
    await env.settle()
    assert (
        await env.scm_update("AssetMaintenanceAssets", "MaintenanceAssetId", "P-2", {"ModelYear": "1850"})
    ).status == 204

    async def restored() -> dict[str, Any] | None:
        row = await env.scm_find("AssetMaintenanceAssets", "MaintenanceAssetId", "P-2")
        return row if row and row["ModelYear"] == "2001" else None

    await eventually(restored, what="F&O's model year restored to the synced 2001")
    row = await env.cds_find("msdyn_customerassets", "msdyn_maintenanceassetid", "P-2")
    assert row is not None and row["msdyn_modelyear"] == 2001


@pytest.mark.parametrize("webhook_mode", ["async"])
async def test_async_dataverse_step_rejection_is_compensated(env: Harness) -> None:
    site = await site_id(env, "1")
    too_long = "WAREHOUSE-SOUTH"
    resp = await env.cds_create(
        "msdyn_warehouses",
        {
            "msdyn_warehouseidentifier": too_long,
            "msdyn_name": too_long,
            "msdyn_operationalsite@odata.bind": f"/msdyn_operationalsites({site})",
        },
    )
    assert resp.status == 201, resp.body  # an asynchronous step cannot fail the save

    async def removed() -> bool:
        return await env.cds_find("msdyn_warehouses", "msdyn_warehouseidentifier", too_long) is None

    await eventually(removed, what="the rejected warehouse removed from Dataverse")
    assert await env.scm_find("Warehouses", "WarehouseId", too_long) is None
    failures = await _failures(env, "warehouse")
    assert failures and failures[0]["compensated"] is True
