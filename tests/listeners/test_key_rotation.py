"""Webhook key rotation: ``DUALWRITE_<CDS|SCM>_WEBHOOK_KEY`` holds several comma-separated keys, every
one is accepted, and ``dualwrite register`` gives Dataverse the first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bridge.app import Bridge, register
from bridge.core.errors import AuthError, ConfigError
from bridge.demo import demo_settings, point_at_bridge
from bridge.listeners.auth import SharedKeyAuth
from bridge.register import register_webhooks
from bridge.settings import load_settings
from tests.listeners.payloads import data_event
from tests.reliability.helpers import Person, converge

NEW, OLD = "new-key-0123456789abcdef", "old-key-0123456789abcdef"
MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"


def test_keys_are_split_on_commas_trimmed_and_empty_ones_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUALWRITE_CDS_WEBHOOK_KEY", f" {NEW} ,{OLD},, ")
    monkeypatch.setenv("DUALWRITE_SCM_WEBHOOK_KEY", OLD)
    settings = load_settings(
        None,
        cds={"url": "https://org.example/api/data/v9.2", "scope": "s"},
        scm={"url": "https://fno.example/data", "scope": "s"},
        auth={"authority": "https://login.example/t", "client_id": "c"},
    )
    assert settings.webhook_keys("cds") == [NEW, OLD]
    assert settings.webhook_keys("scm") == [OLD]


def test_every_configured_key_is_accepted_and_no_other() -> None:
    auth = SharedKeyAuth([NEW, OLD])
    auth.check({"x-dualwrite-key": NEW}, {})
    auth.check({}, {"code": OLD})
    for wrong in (f"{NEW},{OLD}", "another-key-0123456789"):
        with pytest.raises(AuthError):
            auth.check({"x-dualwrite-key": wrong}, {})


@pytest.fixture
async def rotating_bridge(sandbox: Any, tmp_path: Path) -> AsyncIterator[Bridge]:
    settings = demo_settings(sandbox.info, host="127.0.0.1", port=0, data_dir=tmp_path / "bridge")
    settings.cds_webhook_key = SecretStr(f"{NEW},{OLD}")
    settings.scm_webhook_key = SecretStr(f"{NEW}, {OLD}")
    bridge = Bridge(settings)
    await bridge.start()
    try:
        yield bridge
    finally:
        await bridge.stop()


async def test_both_keys_work_end_to_end_while_one_is_rotated_out(
    sandbox: Any, rotating_bridge: Bridge
) -> None:
    # Dataverse already calls with the new key, F&O still with the old one: both sync.
    await point_at_bridge(
        sandbox,
        rotating_bridge.cds,
        rotating_bridge.mappings,
        rotating_bridge.url,
        cds_key=NEW,
        scm_key=OLD,
        mode="async",
    )
    connector = aiohttp.TCPConnector(ssl=sandbox.client_ssl_context())
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as http:
        person = await Person.make(http, sandbox)
        assert await person.scm_create("ROT1", "from F&O, old key") == 201
        assert await person.cds_create("ROT2", "from Dataverse, new key") in (201, 204)
        synced = await converge(sandbox)
    assert synced.get("ROT1") == "from F&O, old key" and synced.get("ROT2") == "from Dataverse, new key"
    unmapped = data_event("Update", entity_name="mserp_nothingmapped")  # accepted, then ignored: 200
    async with aiohttp.ClientSession() as plain:
        for key, status in ((NEW, 200), (OLD, 200), (f"{NEW},{OLD}", 401), ("another-key-0123456789", 401)):
            async with plain.post(
                f"{rotating_bridge.url}/webhooks/scm", json=unmapped, headers={"x-dualwrite-key": key}
            ) as resp:
                assert resp.status == status, (key, resp.status)


async def test_registering_a_list_of_keys_is_refused(rotating_bridge: Bridge) -> None:
    with pytest.raises(ConfigError, match="first"):
        await register_webhooks(
            rotating_bridge.cds,
            rotating_bridge.mappings,
            webhook_url=f"{rotating_bridge.url}/webhooks/cds",
            webhook_key=f"{NEW},{OLD}",
        )


async def test_register_gives_dataverse_the_first_key(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = sandbox.info
    config = tmp_path / "bridge.toml"
    config.write_text(
        f"""mappings_dir = "{MAPPINGS}"
[cds]
url = "{info.cds_url}"
scope = "{info.cds_scope}"
[scm]
url = "{info.scm_url}"
scope = "{info.scm_scope}"
[auth]
authority = "{info.authority}"
client_id = "{info.client_id}"
ca_file = "{info.ca_file}"
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("DUALWRITE_CLIENT_SECRET", info.client_secret)
    monkeypatch.setenv("DUALWRITE_CDS_WEBHOOK_KEY", f"{NEW},{OLD}")
    monkeypatch.setenv("DUALWRITE_SCM_WEBHOOK_KEY", NEW)
    assert await register(config, webhook_url="https://bridge.example/webhooks/cds", mode="async") == 0
    endpoints = [r for r in sandbox.dataverse.rows("serviceendpoints") if r["name"] == "dualwrite bridge"]
    assert [e["authvalue"] for e in endpoints] == [NEW]
