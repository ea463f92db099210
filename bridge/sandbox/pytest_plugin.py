"""pytest fixtures that start the sandbox in-process, plus helpers tests need.

Load with ``pytest_plugins = ["bridge.sandbox.pytest_plugin"]``. Fixtures:
``sandbox_config`` (override it to change knobs), ``sandbox`` (started per test on ephemeral ports in
a temporary state directory), ``sandbox_info``, ``sandbox_http`` (aiohttp session trusting the CA),
``webhook_receiver`` (a local HTTP server that
records what it is sent). Helpers: ``msal_app(info, client="bridge"|"user")`` and
``requests_session(info)``, both trusting the sandbox CA file, and ``bearer(token)`` headers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
import msal
import pytest
import requests
from aiohttp import web

from bridge.sandbox.identity import new_signing_key, signing_key_pem
from bridge.sandbox.runtime import SIGNING_KEY_FILE, Sandbox, SandboxConfig, SandboxInfo

_KEY_PEM: bytes | None = None


def _shared_signing_key() -> bytes:
    # RSA key generation is the slowest part of a start; one key per test session is plenty.
    global _KEY_PEM
    if _KEY_PEM is None:
        _KEY_PEM = signing_key_pem(new_signing_key())
    return _KEY_PEM


def requests_session(info: SandboxInfo) -> requests.Session:
    """A Session that verifies against the sandbox CA (``trust_env`` off: the CA env vars would
    otherwise override ``verify``)."""
    session = requests.Session()
    session.trust_env = False
    session.verify = info.ca_file
    return session


def msal_app(
    info: SandboxInfo, client: Literal["bridge", "user"] = "bridge"
) -> msal.ConfidentialClientApplication:
    """A real msal client for the sandbox authority (blocking: call it from a thread in async code)."""
    client_id, secret = (
        (info.client_id, info.client_secret)
        if client == "bridge"
        else (info.user_client_id, info.user_client_secret)
    )
    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=secret,
        authority=info.authority,
        instance_discovery=False,
        http_client=requests_session(info),
    )


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Records every request; answers with ``statuses`` in turn (then ``status``), after ``delay``."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    status: int = 200
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(
            Received(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        self.arrived.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.statuses.pop(0) if self.statuses else self.status
        return web.Response(status=status, text="receiver text the sender must not read")

    async def wait_for(self, count: int, within: float = 5.0) -> list[Received]:
        async def until() -> None:
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(until(), within)
        return self.received


@pytest.fixture
def sandbox_config(tmp_path: Path) -> SandboxConfig:
    return SandboxConfig(
        authority_port=0,
        cds_port=0,
        scm_port=0,
        state_dir=tmp_path / "sandbox-state",
        webhook_timeout=2.0,
        dataevent_retry_interval=0.05,
        admin_key="test-admin-key",
    )


@pytest.fixture
async def sandbox(sandbox_config: SandboxConfig) -> AsyncIterator[Sandbox]:
    sandbox_config.state_dir.mkdir(parents=True, exist_ok=True)
    key_path = sandbox_config.state_dir / SIGNING_KEY_FILE
    if not key_path.exists():
        key_path.write_bytes(_shared_signing_key())
    async with Sandbox(sandbox_config) as sb:
        yield sb


@pytest.fixture
def sandbox_info(sandbox: Sandbox) -> SandboxInfo:
    return sandbox.info


@pytest.fixture
async def sandbox_http(sandbox: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp session that trusts the sandbox CA (no token attached)."""
    connector = aiohttp.TCPConnector(ssl=sandbox.client_ssl_context())
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        yield session


def bearer(token: str, **extra: str) -> dict[str, str]:
    """Headers for an OData call as Microsoft's examples write them."""
    return {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json",
        "OData-MaxVersion": "4.0",
        "OData-Version": "4.0",
        **extra,
    }


@pytest.fixture
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"http://127.0.0.1:{port}/hook"
    yield receiver
    await runner.cleanup()


async def _json_or_raise(resp: aiohttp.ClientResponse) -> Any:
    if resp.status >= 400:
        raise AssertionError(f"{resp.method} {resp.url} -> {resp.status}: {await resp.text()}")
    return await resp.json()


async def register_webhook(
    http: aiohttp.ClientSession,
    info: SandboxInfo,
    token: str,
    *,
    url: str,
    entity: str,
    message: Literal["Create", "Update", "Delete"],
    mode: int = 0,
    stage: int = 40,
    authtype: int = 4,
    authvalue: str = "sandbox-webhook-key",
    filtering: str | None = None,
    images: list[dict[str, Any]] | None = None,
    name: str | None = None,
) -> dict[str, str]:
    """Register a webhook through the Dataverse Web API, as the Plug-in Registration Tool would:
    a serviceendpoint (contract 8), a step for ``message`` on ``entity``, and its images
    (``{"entityalias", "imagetype" (0 pre, 1 post, 2 both), "attributes"?}``). Returns the ids."""
    api = info.cds_url
    headers = bearer(token, Prefer="return=representation")
    label = name or f"{entity} {message} {'sync' if mode == 0 else 'async'}"
    endpoint = {"name": label, "contract": 8, "url": url, "authtype": authtype, "authvalue": authvalue}
    async with http.post(f"{api}/serviceendpoints", json=endpoint, headers=headers) as resp:
        endpoint_id = (await _json_or_raise(resp))["serviceendpointid"]
    async with http.get(
        f"{api}/sdkmessages", params={"$filter": f"name eq '{message}'"}, headers=bearer(token)
    ) as resp:
        message_id = (await _json_or_raise(resp))["value"][0]["sdkmessageid"]
    async with http.get(
        f"{api}/sdkmessagefilters",
        params={"$filter": f"primaryobjecttypecode eq '{entity}' and _sdkmessageid_value eq {message_id}"},
        headers=bearer(token),
    ) as resp:
        filter_id = (await _json_or_raise(resp))["value"][0]["sdkmessagefilterid"]
    step: dict[str, Any] = {
        "name": label,
        "mode": mode,
        "stage": stage,
        "rank": 1,
        "sdkmessageid@odata.bind": f"/sdkmessages({message_id})",
        "sdkmessagefilterid@odata.bind": f"/sdkmessagefilters({filter_id})",
        "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({endpoint_id})",
    }
    if filtering is not None:
        step["filteringattributes"] = filtering
    async with http.post(f"{api}/sdkmessageprocessingsteps", json=step, headers=headers) as resp:
        step_id = (await _json_or_raise(resp))["sdkmessageprocessingstepid"]
    for image in images or []:
        body = {
            "name": image["entityalias"],
            "messagepropertyname": "Id" if message == "Delete" else "Target",
            "sdkmessageprocessingstepid@odata.bind": f"/sdkmessageprocessingsteps({step_id})",
            **image,
        }
        async with http.post(f"{api}/sdkmessageprocessingstepimages", json=body, headers=headers) as resp:
            await _json_or_raise(resp)
    return {"serviceendpointid": endpoint_id, "sdkmessageprocessingstepid": step_id}
