"""kill -9 of the bridge with changes queued: restart, nothing lost, nothing applied twice.

The bridge runs as a real ``dualwrite serve`` process (``bench.procs.BridgeProcess``: TOML config,
secrets in its environment) against the in-process sandbox; F&O data events reach it over HTTP."""

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
from tests.pg_support import PG_URL, require_pg


@pytest.fixture
async def http(sandbox: Any) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(ssl=client_context(sandbox.info.ca_file))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


async def _create_modes(http: aiohttp.ClientSession, sandbox: Any, codes: list[str]) -> None:
    token = sandbox.token("user", "fno")
    for code in codes:
        async with http.post(
            f"{sandbox.info.scm_url}/DeliveryModesV2",
            json={"dataAreaId": "usmf", "ModeCode": code, "ModeDescription": f"mode {code}"},
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            assert resp.status == 201, await resp.text()


def _created_in_dataverse(sandbox: Any, client_id: str) -> list[str]:
    return [
        w.record_id
        for w in sandbox.dataverse.write_log
        if w.client_id == client_id and w.entity_set == "msdyn_shipvias" and w.message == "Create"
    ]


async def _wait_for(predicate: Any, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("paused", [True, False], ids=["queued-while-paused", "killed-mid-stream"])
async def test_kill_9_loses_nothing_and_applies_nothing_twice(
    sandbox: Any,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    paused: bool,
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    database = None
    if backend == "postgres":  # the queue and state in PostgreSQL (tests/pg_support.py)
        require_pg()
        database = (PG_URL, request.getfixturevalue("pg_schemas")("restart"))
    bridge = BridgeProcess(
        sandbox.info,
        tmp_path / "bridge",
        cds_key=secrets.token_urlsafe(24),
        scm_key=secrets.token_urlsafe(24),
        sync={"backoff_initial_s": 0.05, "backoff_max_s": 0.5, "lease_s": 2},
        database=database,
    )
    await bridge.start()
    try:
        sandbox.notifier.fno.add_endpoint(
            DataEventEndpoint(
                name="bridge", url=f"{bridge.url}/webhooks/scm", headers={"x-dualwrite-key": bridge.scm_key}
            )
        )
        if paused:
            await bridge.ops("POST", "/api/maps/ship_via/pause", {"reason": "test"})
        codes = [f"M{n:03d}" for n in range(60)]
        await _create_modes(http, sandbox, codes)
        await sandbox.notifier.drain()  # every notification acknowledged: durable at the bridge
        bridge.kill9()

        await bridge.start()  # the same port, configuration and data as before the kill
        if paused:
            await bridge.ops("POST", "/api/maps/ship_via/resume", {"mode": "catch-up"})
        await _wait_for(lambda: len(_created_in_dataverse(sandbox, sandbox.info.client_id)) >= len(codes))
        await asyncio.sleep(0.5)  # anything applied twice would show up now
        created = _created_in_dataverse(sandbox, sandbox.info.client_id)
        assert len(created) == len(codes) == len(set(created))
        names = {row["msdyn_name"] for row in sandbox.dataverse.rows("msdyn_shipvias")}
        assert set(codes) <= names
    finally:
        bridge.stop(signal.SIGTERM)
