"""Map states survive a restart: stop a map, restart the bridge (a real ``dualwrite serve`` process,
``bench.procs.BridgeProcess``), and it is still stopped: a person's change in F&O is acknowledged and
counted but not queued nor written; started, the next one is applied. The activity log survives too."""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.procs import BridgeProcess
from bridge.sandbox.notify.fno import DataEventEndpoint
from tests.e2e.harness import client_context


@pytest.fixture
async def http(sandbox: Any) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(ssl=client_context(sandbox.info.ca_file))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


async def _create_mode(http: aiohttp.ClientSession, sandbox: Any, code: str) -> None:
    token = sandbox.token("user", "fno")  # a person, never the bridge's identity
    async with http.post(
        f"{sandbox.info.scm_url}/DeliveryModesV2",
        json={"dataAreaId": "usmf", "ModeCode": code, "ModeDescription": f"mode {code}"},
        headers={"Authorization": f"Bearer {token}"},
    ) as resp:
        assert resp.status == 201, await resp.text()


def _in_dataverse(sandbox: Any, code: str) -> bool:
    return any(row.get("msdyn_name") == code for row in sandbox.dataverse.rows("msdyn_shipvias"))


async def _map(bridge: BridgeProcess) -> dict[str, Any]:
    view: dict[str, Any] = await bridge.ops("GET", "/api/maps/ship_via")
    return view


async def test_a_stopped_map_is_still_stopped_after_a_restart(
    sandbox: Any, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    bridge = BridgeProcess(
        sandbox.info,
        tmp_path / "bridge",
        cds_key=secrets.token_urlsafe(24),
        scm_key=secrets.token_urlsafe(24),
        sync={"backoff_initial_s": 0.05, "backoff_max_s": 0.5, "lease_s": 2},
    )
    await bridge.start()
    try:
        sandbox.notifier.fno.add_endpoint(
            DataEventEndpoint(
                name="bridge", url=f"{bridge.url}/webhooks/scm", headers={"x-dualwrite-key": bridge.scm_key}
            )
        )
        await bridge.ops("POST", "/api/maps/ship_via/stop", {"reason": "cut-over weekend"})
        bridge.stop(signal.SIGTERM)

        await bridge.start()  # the same port, configuration and data
        view = await _map(bridge)
        assert (view["state"], view["reason"]) == ("stopped", "cut-over weekend")
        await _create_mode(http, sandbox, "RST1")
        await sandbox.notifier.drain()  # delivered and acknowledged
        view = await _map(bridge)
        assert view["queue_depth"] == 0
        scm_cds = next(d for d in view["directions"] if d["direction"] == "scm->cds")
        assert scm_cds["received"] == 1 and scm_cds["skipped"] == {"map-stopped": 1}
        body = await bridge.ops("GET", "/api/activity?entity=ship_via&category=event")
        assert [(a["kind"], a["actor"]) for a in body["items"]] == [("stopped", "admin token")]

        await bridge.ops("POST", "/api/maps/ship_via/start", {})
        await _create_mode(http, sandbox, "RST2")
        for _ in range(300):  # polled, not timed: the change lands, or the loop ends and the assert says so
            if _in_dataverse(sandbox, "RST2"):
                break
            await asyncio.sleep(0.1)
        assert _in_dataverse(sandbox, "RST2")
        assert not _in_dataverse(sandbox, "RST1")  # acknowledged while stopped, never synced
    finally:
        bridge.stop(signal.SIGTERM)
