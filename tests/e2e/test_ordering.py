"""Duplicated and reordered notifications apply once and in order; conflicts resolve per policy."""

from __future__ import annotations

from typing import Any

from bridge.core.mapping import ConflictPolicy
from bridge.sandbox.faults import FaultSettings
from tests.e2e.harness import Harness, eventually


async def _ship_via_synced(env: Harness, code: str, description: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        row = await env.cds_find("msdyn_shipvias", "msdyn_name", code)
        return row if row and row["msdyn_description"] == description else None

    return await eventually(check, what=f"{code} = {description!r} in Dataverse")


async def test_duplicated_notifications_apply_once(env: Harness) -> None:
    env.sandbox.faults["fno"].configure(FaultSettings(duplicate_rate=1.0))
    assert (
        await env.scm_create("DeliveryModesV2", {"ModeCode": "Dup", "ModeDescription": "v1"})
    ).status == 201
    for n in (2, 3):
        assert (
            await env.scm_update("DeliveryModesV2", "ModeCode", "Dup", {"ModeDescription": f"v{n}"})
        ).status == 204
    await _ship_via_synced(env, "Dup", "v3")
    await env.settle()
    duplicates = [e for e in env.sandbox.faults["fno"].log if e.kind == "duplicate"]
    assert len(duplicates) >= 3  # every notification went out twice
    assert env.writes("cds", entity_set="msdyn_shipvias") == 3  # one write per change, never two


async def test_reordered_notifications_end_with_the_newest_state(env: Harness) -> None:
    assert (
        await env.scm_create("DeliveryModesV2", {"ModeCode": "Ord", "ModeDescription": "v1"})
    ).status == 201
    await _ship_via_synced(env, "Ord", "v1")
    # Hold the next notification back and send it after the one that follows it.
    env.sandbox.faults["fno"].configure(FaultSettings(reorder_next=1, reorder_hold_ms=300))
    assert (
        await env.scm_update("DeliveryModesV2", "ModeCode", "Ord", {"ModeDescription": "v2"})
    ).status == 204
    assert (
        await env.scm_update("DeliveryModesV2", "ModeCode", "Ord", {"ModeDescription": "v3"})
    ).status == 204
    await env.settle()
    assert any(e.kind == "reorder" for e in env.sandbox.faults["fno"].log)
    row = await env.cds_find("msdyn_shipvias", "msdyn_name", "Ord")
    assert row is not None and row["msdyn_description"] == "v3"  # the late v2 did not win


async def _conflict(env: Harness, code: str) -> str:
    """Both sides change one ship via since the last sync: F&O first (its notification lost), then
    Dataverse. Returns the Dataverse id."""
    assert (
        await env.scm_create("DeliveryModesV2", {"ModeCode": code, "ModeDescription": "base"})
    ).status == 201
    row = await _ship_via_synced(env, code, "base")
    await env.settle()
    env.sandbox.faults["fno"].configure(FaultSettings(drop_next=1))
    assert (
        await env.scm_update("DeliveryModesV2", "ModeCode", code, {"ModeDescription": "from F&O"})
    ).status == 204
    await env.settle()
    return str(row["msdyn_shipviaid"])


async def test_conflict_newer_wins_by_default(env: Harness) -> None:
    record_id = await _conflict(env, "CfA")
    resp = await env.cds_update("msdyn_shipvias", record_id, {"msdyn_description": "from Dataverse"})
    assert resp.status == 204, resp.body  # Dataverse's change is the newer one
    row = await env.scm_find("DeliveryModesV2", "ModeCode", "CfA")
    assert row is not None and row["ModeDescription"] == "from Dataverse"
    await env.settle()
    cds_row = await env.cds_find("msdyn_shipvias", "msdyn_name", "CfA")
    assert cds_row is not None and cds_row["msdyn_description"] == "from Dataverse"


async def test_conflict_scm_wins_policy_refuses_the_change_and_converges(env: Harness) -> None:
    maps = env.bridge.mappings.maps
    maps["ship_via"] = maps["ship_via"].model_copy(update={"conflict_policy": ConflictPolicy.SCM_WINS})
    record_id = await _conflict(env, "CfB")
    resp = await env.cds_update("msdyn_shipvias", record_id, {"msdyn_description": "from Dataverse"})
    assert resp.status >= 400  # refused: F&O's unsynced change wins
    await _ship_via_synced(env, "CfB", "from F&O")  # the follow-up brought Dataverse in line
    await env.settle()
    row = await env.scm_find("DeliveryModesV2", "ModeCode", "CfB")
    assert row is not None and row["ModeDescription"] == "from F&O"


async def test_conflict_cds_wins_policy_overwrites_fno(env: Harness) -> None:
    maps = env.bridge.mappings.maps
    maps["ship_via"] = maps["ship_via"].model_copy(update={"conflict_policy": ConflictPolicy.CDS_WINS})
    record_id = await _conflict(env, "CfC")
    resp = await env.cds_update("msdyn_shipvias", record_id, {"msdyn_description": "from Dataverse"})
    assert resp.status == 204
    row = await env.scm_find("DeliveryModesV2", "ModeCode", "CfC")
    assert row is not None and row["ModeDescription"] == "from Dataverse"
