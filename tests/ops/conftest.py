"""Fixtures: the real ops routes over the real SQLite queue and state, with a recording Controller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.app import Bridge
from bridge.demo import connect, demo_settings
from bridge.metrics import Metrics
from bridge.ops.alerts import AlertRules
from bridge.ops.auth import AdminAuth
from bridge.ops.server import setup_ops
from bridge.ops.watcher import OpsWatcher
from bridge.queue.sqlite import SqliteQueue
from bridge.sandbox.runtime import SandboxConfig
from bridge.settings import SyncSettings
from bridge.state.sqlite import SqliteState
from tests.e2e.harness import Harness, client_context
from tests.ops.fakes import MAPS, FakeController

TOKEN = "test-admin-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Ops:
    client: TestClient[Any, Any]
    controller: FakeController
    queue: SqliteQueue
    state: SqliteState
    metrics: Metrics
    alerts: AlertRules
    auth: AdminAuth
    watcher: OpsWatcher


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SqliteQueue, SqliteState]]:
    queue, state = SqliteQueue(tmp_path / "queue.db"), SqliteState(tmp_path / "state.db")
    await queue.open()
    await state.open()
    yield queue, state
    await queue.close()
    await state.close()


@pytest.fixture
async def ops(stores: tuple[SqliteQueue, SqliteState]) -> AsyncIterator[Ops]:
    queue, state = stores
    controller = FakeController(state)
    metrics = Metrics(maps=MAPS)
    alerts = AlertRules()
    auth = AdminAuth(TOKEN, password="open-sesame-pw")
    app = web.Application()
    watcher = setup_ops(
        app,
        controller=controller,
        queue=queue,
        state=state,
        metrics=metrics,
        auth=auth,
        alerts=alerts,
        watch_interval=None,
    )
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    yield Ops(client, controller, queue, state, metrics, alerts, auth, watcher)
    await client.close()


# ---------------------------------------------------------------- the running bridge with both emulators


@pytest.fixture
def sandbox_config(tmp_path: Path) -> SandboxConfig:
    return SandboxConfig(
        authority_port=0,
        cds_port=0,
        scm_port=0,
        state_dir=tmp_path / "sandbox",
        webhook_timeout=10.0,
        dataevent_retry_interval=0.05,
    )


@pytest.fixture
async def env(sandbox: Any, tmp_path: Path) -> AsyncIterator[Harness]:
    settings = demo_settings(sandbox.info, host="127.0.0.1", port=0, data_dir=tmp_path / "bridge")
    settings.sync = SyncSettings(
        backoff_initial_s=0.05, backoff_max_s=0.2, max_attempts=3, sync_budget_s=8, lease_s=5
    )
    bridge = Bridge(settings)
    await bridge.start()
    keys = await connect(sandbox, bridge, mode="sync")
    connector = aiohttp.TCPConnector(ssl=client_context(sandbox.info.ca_file))
    async with aiohttp.ClientSession(connector=connector) as http:
        harness = Harness(sandbox=sandbox, bridge=bridge, keys=keys, http=http)
        row = await harness.request("cds", "GET", "cdm_companies?$filter=cdm_companycode eq 'USMF'")
        harness.company_id = row.body["value"][0]["cdm_companyid"]
        try:
            yield harness
        finally:
            await bridge.stop()
