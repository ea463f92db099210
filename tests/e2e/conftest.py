"""Fixtures: the running bridge between both emulators (``env``). ``tests/ops`` reuses them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.app import Bridge
from bridge.demo import connect, demo_settings
from bridge.sandbox.runtime import SandboxConfig
from bridge.settings import SyncSettings
from tests.e2e.harness import Harness, client_context
from tests.pg_support import pg_schemas, pg_settings, require_pg

__all__ = ["pg_schemas"]


@pytest.fixture
def sandbox_config(sandbox_config: SandboxConfig) -> SandboxConfig:
    # The plugin's config (fast data event redelivery), with room for a synchronous webhook that
    # runs the bridge's whole write to the other system before it answers.
    return sandbox_config.model_copy(update={"webhook_timeout": 10.0})


@pytest.fixture
def webhook_mode() -> str:
    return "sync"


@pytest.fixture
def sync_settings() -> SyncSettings:
    return SyncSettings(backoff_initial_s=0.05, backoff_max_s=0.5, max_attempts=4, sync_budget_s=8, lease_s=5)


@pytest.fixture
def storage_backend() -> str:
    """The queue and state backend of the bridge: "sqlite", or "postgres" (tests/e2e/test_on_postgres.py)."""
    return "sqlite"


@pytest.fixture
async def env(
    sandbox: Any,
    tmp_path: Path,
    webhook_mode: str,
    sync_settings: SyncSettings,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Harness]:
    settings = demo_settings(sandbox.info, host="127.0.0.1", port=0, data_dir=tmp_path / "bridge")
    settings.sync = sync_settings
    try:  # looked up, not a parameter: other suites import env without this module's other fixtures
        backend = request.getfixturevalue("storage_backend")
    except pytest.FixtureLookupError:
        backend = "sqlite"
    if backend == "postgres":
        require_pg()
        on_pg = pg_settings(request.getfixturevalue("pg_schemas")("bridge"))
        settings.queue, settings.state = on_pg.queue, on_pg.state
        settings.database, settings.database_url = on_pg.database, on_pg.database_url
    bridge = Bridge(settings)
    await bridge.start()
    keys = await connect(sandbox, bridge, mode=webhook_mode)
    connector = aiohttp.TCPConnector(ssl=client_context(sandbox.info.ca_file))
    async with aiohttp.ClientSession(connector=connector) as http:
        harness = Harness(sandbox=sandbox, bridge=bridge, keys=keys, http=http)
        row = await harness.request("cds", "GET", "cdm_companies?$filter=cdm_companycode eq 'USMF'")
        harness.company_id = row.body["value"][0]["cdm_companyid"]
        try:
            yield harness
        finally:
            # Shown by pytest only when the test failed: what the bridge recorded.
            for failure in await bridge.state.failures(limit=20):
                print(
                    f"bridge failure: {failure.kind} {failure.direction} {failure.key}: "
                    f"target={failure.target_message!r} source={failure.source_message!r}"
                )
            await bridge.stop()
