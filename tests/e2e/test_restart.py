"""kill -9 of the bridge with changes queued: restart, nothing lost, nothing applied twice.

The bridge runs as a real ``dualwrite serve`` process (TOML config, secrets in its environment)
against the in-process sandbox; F&O data events reach it over HTTP."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.sandbox.notify.fno import DataEventEndpoint
from tests.e2e.harness import client_context

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BridgeProcess:
    def __init__(self, sandbox: Any, tmp: Path) -> None:
        info = sandbox.info
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = tmp / "bridge.toml"
        self.config.write_text(
            f"""
mappings_dir = "{ROOT / "mappings"}"
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
[listen]
port = {self.port}
[storage]
data_dir = "{tmp / "data"}"
[sync]
backoff_initial_s = 0.05
backoff_max_s = 0.5
lease_s = 2
""",
            encoding="utf-8",
        )
        self.admin_token = secrets.token_urlsafe(24)
        self.scm_key = secrets.token_urlsafe(24)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DUALWRITE_")},
            "DUALWRITE_CLIENT_SECRET": info.client_secret,
            "DUALWRITE_CDS_WEBHOOK_KEY": secrets.token_urlsafe(24),
            "DUALWRITE_SCM_WEBHOOK_KEY": self.scm_key,
            "DUALWRITE_ADMIN_TOKEN": self.admin_token,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / "bridge.log"

    async def start(self, http: aiohttp.ClientSession) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bridge.cli",
                "--log-level",
                "WARNING",
                "serve",
                "--config",
                str(self.config),
            ],
            env=self.env,
            cwd=ROOT,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        for _ in range(200):
            try:
                async with http.get(f"{self.url}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            assert self.proc.poll() is None, self.log.read_text()
            await asyncio.sleep(0.05)
        raise AssertionError("bridge did not start: " + self.log.read_text())

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    async def ops(self, http: aiohttp.ClientSession, method: str, path: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        async with http.request(method, f"{self.url}{path}", json=body, headers=headers) as resp:
            assert resp.status < 300, await resp.text()
            return await resp.json()


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


@pytest.mark.parametrize("paused", [True, False], ids=["queued-while-paused", "killed-mid-stream"])
async def test_kill_9_loses_nothing_and_applies_nothing_twice(
    sandbox: Any, http: aiohttp.ClientSession, tmp_path: Path, paused: bool
) -> None:
    bridge = BridgeProcess(sandbox, tmp_path)
    await bridge.start(http)
    try:
        sandbox.notifier.fno.add_endpoint(
            DataEventEndpoint(
                name="bridge", url=f"{bridge.url}/webhooks/scm", headers={"x-dualwrite-key": bridge.scm_key}
            )
        )
        if paused:
            await bridge.ops(http, "POST", "/api/maps/ship_via/pause", {"reason": "test"})
        codes = [f"M{n:03d}" for n in range(60)]
        await _create_modes(http, sandbox, codes)
        await sandbox.notifier.drain()  # every notification acknowledged: durable at the bridge
        bridge.kill9()

        await bridge.start(http)
        if paused:
            await bridge.ops(http, "POST", "/api/maps/ship_via/resume", {"mode": "catch-up"})
        await _wait_for(lambda: len(_created_in_dataverse(sandbox, sandbox.info.client_id)) >= len(codes))
        await asyncio.sleep(0.5)  # anything applied twice would show up now
        created = _created_in_dataverse(sandbox, sandbox.info.client_id)
        assert len(created) == len(codes) == len(set(created))
        names = {row["msdyn_name"] for row in sandbox.dataverse.rows("msdyn_shipvias")}
        assert set(codes) <= names
    finally:
        bridge.stop()
