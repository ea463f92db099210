"""``sync.apply_processes = 1``: asynchronous changes are applied by a helper process, over real HTTP
between the bridge, its apply process and both emulators; synchronous ones stay in the serve process.
A helper killed mid-stream loses nothing and is started again."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from bridge.settings import SyncSettings
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


async def _in_dataverse(env: Harness, code: str, description: str) -> None:
    async def check() -> bool | None:
        row = await env.cds_find("msdyn_shipvias", "msdyn_name", code)
        return True if row and row["msdyn_description"] == description else None

    await eventually(check, timeout=20, what=f"{code} = {description!r} in Dataverse")


async def _in_fno(env: Harness, code: str, description: str) -> None:
    async def check() -> bool | None:
        row = await env.scm_find("DeliveryModesV2", "ModeCode", code)
        return True if row and row["ModeDescription"] == description else None

    await eventually(check, timeout=20, what=f"{code} = {description!r} in F&O")


async def test_asynchronous_changes_are_applied_by_the_apply_process(env: Harness) -> None:
    pool = env.bridge.pool
    assert pool is not None and pool.running == 1
    assert (
        await env.scm_create("DeliveryModesV2", {"ModeCode": "Ap1", "ModeDescription": "from F&O"})
    ).status == 201
    await _in_dataverse(env, "Ap1", "from F&O")
    created = await env.cds_create("msdyn_shipvias", {"msdyn_name": "Ap2", "msdyn_description": "from DV"})
    assert created.status == 201
    await _in_fno(env, "Ap2", "from DV")
    await env.settle()
    assert pool.applied_locally == 0

    # The writes were the apply process's, and its request counts (sent each second) reach the
    # dashboard's figures.
    def counted() -> tuple[int, int] | None:
        cds, scm = pool.request_counts("cds")["requests"], pool.request_counts("scm")["requests"]
        return (cds, scm) if cds >= 1 and scm >= 1 else None

    helper_cds, helper_scm = await eventually(
        lambda: asyncio.sleep(0, result=counted()), what="the apply process's request counts"
    )
    shown = env.bridge.metrics.request_counts()
    assert shown["cds"].requests >= env.bridge.cds.http.requests_sent + helper_cds
    assert shown["scm"].requests >= env.bridge.scm.http.requests_sent + helper_scm
    # The outcomes are the serve process's to count, as without apply processes.
    figures = env.bridge.metrics.snapshot("ship_via")
    assert figures.directions["scm->cds"].applied == 1 and figures.directions["cds->scm"].applied == 1


@pytest.mark.parametrize("webhook_mode", ["sync"])
async def test_synchronous_changes_stay_in_the_serve_process(env: Harness) -> None:
    pool = env.bridge.pool
    assert pool is not None
    created = await env.cds_create("msdyn_shipvias", {"msdyn_name": "Ap3", "msdyn_description": "sync"})
    assert created.status == 201
    # The synchronous step answered after the F&O write: it is there at the first read.
    row = await env.scm_find("DeliveryModesV2", "ModeCode", "Ap3")
    assert row is not None and row["ModeDescription"] == "sync"
    assert pool.request_counts("scm")["requests"] == 0


async def test_a_killed_apply_process_loses_nothing_and_comes_back(env: Harness) -> None:
    pool = env.bridge.pool
    assert pool is not None
    helper = pool.helpers[0]
    assert helper is not None
    codes = [f"K{n}" for n in range(12)]
    for code in codes:
        assert (
            await env.scm_create("DeliveryModesV2", {"ModeCode": code, "ModeDescription": "v1"})
        ).status == 201
    updates = [
        env.scm_update("DeliveryModesV2", "ModeCode", code, {"ModeDescription": "v2"}) for code in codes
    ]
    first = await asyncio.gather(*updates[:6])
    os.kill(helper.proc.pid, signal.SIGKILL)  # while the first changes are in its hands
    rest = await asyncio.gather(*updates[6:])
    assert all(r.status == 204 for r in (*first, *rest))
    for code in codes:
        await _in_dataverse(env, code, "v2")
    await eventually(
        lambda: asyncio.sleep(0, result=True if pool.running == 1 and pool.restarts == 1 else None),
        timeout=20,
        what="the apply process started again",
    )
    assert pool.helpers[0] is not None and pool.helpers[0].proc.pid != helper.proc.pid
    await env.settle()
    assert await env.bridge.queue.depth() == 0
    assert await env.bridge.queue.dead_letters() == []
    assert await env.bridge.state.failures(limit=10) == []
