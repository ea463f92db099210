from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.app import Bridge
from bridge.demo import connect, demo_settings
from bridge.sandbox.runtime import SandboxConfig
from bridge.settings import SyncSettings
from tests.reliability.helpers import CommitLog, Person, attach_commit_logs


def forms(short: Any, long: Any) -> pytest.MarkDecorator:
    """Parametrize a scenario: its short form runs by default, its long form is marked ``slow``."""
    return pytest.mark.parametrize(
        "size", [pytest.param(short, id="short"), pytest.param(long, id="long", marks=pytest.mark.slow)]
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long forms run only when asked for (``-m slow``) or with DUALWRITE_SLOW=1."""
    if "slow" in (config.getoption("-m") or "") or os.environ.get("DUALWRITE_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="long form: run with -m slow (or DUALWRITE_SLOW=1)")
    for item in items:
        if "slow" in item.keywords and "reliability" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture
def sandbox_config(tmp_path: Path) -> SandboxConfig:
    # F&O re-sends a data event for a while (20 x 0.1 s), as the real integration retries.
    return SandboxConfig(
        authority_port=0,
        cds_port=0,
        scm_port=0,
        state_dir=tmp_path / "sandbox",
        webhook_timeout=10.0,
        dataevent_retries=40,
        dataevent_retry_interval=0.1,
    )


@pytest.fixture
def webhook_mode() -> str:
    return "async"


@pytest.fixture
def sync_settings() -> SyncSettings:
    # Long enough an attempt budget to ride out the outages the scenarios inject.
    return SyncSettings(
        backoff_initial_s=0.05,
        backoff_max_s=0.3,
        max_attempts=200,
        sync_budget_s=3,
        lease_s=5,
        concurrency=32,
    )


@dataclass
class Rig:
    sandbox: Any
    bridge: Bridge
    person: Person
    cds_log: CommitLog
    scm_log: CommitLog
    http: aiohttp.ClientSession

    @property
    def bridge_client(self) -> str:
        return str(self.sandbox.info.client_id)


@pytest.fixture
async def rig(
    sandbox: Any, tmp_path: Path, webhook_mode: str, sync_settings: SyncSettings
) -> AsyncIterator[Rig]:
    """The bridge in this process, both webhooks registered, commit logs on both emulators."""
    settings = demo_settings(sandbox.info, host="127.0.0.1", port=0, data_dir=tmp_path / "bridge")
    settings.sync = sync_settings
    bridge = Bridge(settings)
    await bridge.start()
    try:
        await connect(sandbox, bridge, mode=webhook_mode)
        cds_log, scm_log = attach_commit_logs(sandbox)
        connector = aiohttp.TCPConnector(ssl=sandbox.client_ssl_context(), limit=0)
        async with aiohttp.ClientSession(connector=connector, trust_env=False) as http:
            yield Rig(sandbox, bridge, await Person.make(http, sandbox), cds_log, scm_log, http)
    finally:
        await bridge.stop()
