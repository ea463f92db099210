"""Resync of one record over the running bridge and both emulators, as an admin calls it."""

from __future__ import annotations

import pytest

from tests.e2e.harness import Harness, eventually

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("from_side", ["cds", "scm"])
async def test_resync_of_a_key_on_neither_side_is_unchanged(env: Harness, from_side: str) -> None:
    body = {"entity": "ship_via", "company": "usmf", "key": "NOWHERE", "from": from_side}
    resp = await env.ops("POST", "/api/resync", body)
    assert resp.status == 200, resp.body
    assert resp.body["outcome"] == "unchanged", resp.body
    assert "neither side" in resp.body["message"], resp.body
    assert await env.scm_find("DeliveryModesV2", "ModeCode", "NOWHERE") is None
    assert await env.cds_find("msdyn_shipvias", "msdyn_name", "NOWHERE") is None


@pytest.mark.parametrize("from_side", ["cds", "scm"])
async def test_resync_of_a_record_deleted_on_both_sides_is_unchanged(env: Harness, from_side: str) -> None:
    # Synced once, then deleted (the delete synced too): the ledger remembers the key, neither side
    # has it. Nothing to copy, nothing to delete.
    resp = await env.cds_create("msdyn_shipvias", {"msdyn_name": "GONE", "msdyn_description": "gone"})
    assert resp.status == 201, resp.body
    await eventually(lambda: env.scm_find("DeliveryModesV2", "ModeCode", "GONE"), what="GONE in F&O")
    assert (await env.cds_delete("msdyn_shipvias", resp.body["msdyn_shipviaid"])).status == 204

    async def gone_from_fno() -> bool:
        return await env.scm_find("DeliveryModesV2", "ModeCode", "GONE") is None

    await eventually(gone_from_fno, what="the delete in F&O")
    body = {"entity": "ship_via", "company": "USMF", "key": "GONE", "from": from_side}
    resp = await env.ops("POST", "/api/resync", body)
    assert (resp.status, resp.body["outcome"]) == (200, "unchanged"), resp.body
    assert "neither side" in resp.body["message"], resp.body
