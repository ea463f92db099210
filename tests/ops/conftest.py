"""Fixtures: the real ops routes over the real SQLite queue and state, with a recording Controller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.metrics import Metrics
from bridge.ops.alerts import AlertRules
from bridge.ops.auth import AdminAuth
from bridge.ops.server import setup_ops
from bridge.ops.watcher import OpsWatcher
from bridge.queue.sqlite import SqliteQueue
from bridge.settings import SyncSettings
from bridge.state.sqlite import SqliteState
from tests.e2e.conftest import env, sandbox_config, webhook_mode  # noqa: F401  (fixtures, used by name)
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
    controller = FakeController(state, queue=queue)
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


# ``env`` and ``sandbox_config`` are the end-to-end suite's; only the retry timing is the ops tests' own.
@pytest.fixture
def sync_settings() -> SyncSettings:
    return SyncSettings(backoff_initial_s=0.05, backoff_max_s=0.2, max_attempts=3, sync_budget_s=8, lease_s=5)
