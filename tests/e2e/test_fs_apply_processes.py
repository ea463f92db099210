"""Work orders applied by an apply process (``sync.apply_processes = 1``, asynchronous steps): the
helper process builds the same document side, so a work order and its lines reach F&O as one
change set there too, and a refusal is listed with F&O's message."""

from __future__ import annotations

import pytest

from bridge.settings import SyncSettings
from tests.e2e.fieldservice import SCHEDULED, dv_post, fs_setup, product_line, sales_lines, work_order
from tests.e2e.harness import Harness, eventually


@pytest.fixture
def webhook_mode() -> str:
    return "async"


@pytest.fixture
def sync_settings() -> SyncSettings:
    return SyncSettings(
        backoff_initial_s=0.05,
        backoff_max_s=0.5,
        max_attempts=8,
        sync_budget_s=8,
        lease_s=5,
        apply_processes=1,
    )


async def test_an_apply_process_writes_work_orders_as_documents(env: Harness) -> None:
    ids = await fs_setup(env)
    wo = await work_order(env, ids["account"], msdyn_systemstatus=SCHEDULED)
    number = str(wo["msdyn_name"])
    resp = await product_line(
        env, wo["msdyn_workorderid"], ids["item"], ids["ea"], 1, msdyn_estimatequantity=3
    )
    assert resp.status == 201, resp.body

    async def written() -> bool:
        return sorted(await sales_lines(env, number)) == [1]

    await eventually(written, timeout=20, what="the sales order line written by the apply process")
    stranger = await dv_post(env, "accounts", {"name": "Unknown", "accountnumber": "UNKNOWN-9"})
    await work_order(env, str(stranger["accountid"]), msdyn_systemstatus=SCHEDULED)

    async def listed() -> bool:
        resp = await env.ops("GET", "/api/failures?entity=work_order")
        items = resp.body["items"] if isinstance(resp.body, dict) else resp.body
        return any("UNKNOWN-9" in (f["target_message"] or "") for f in items)

    await eventually(listed, timeout=20, what="the refusal listed with F&O's message")
