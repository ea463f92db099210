"""Sync-mode overhead: what the bridge adds to a synchronous Dataverse save beyond the F&O write.

The sandbox and the bridge run in this process so both can be timed from inside without touching
product code: an aiohttp middleware put first on the bridge's app times each ``/webhooks/cds`` call
(request handed to the app -> answer ready), and the F&O client's ``http.request`` is wrapped on the
instance to time every F&O call. A person saves ship vias in Dataverse one at a time (a synchronous
step is registered), so every F&O call falls inside exactly one webhook's window:
``added = webhook time - time of the F&O write(s) it made``. Then, with 50 ms of emulated F&O
latency, the whole webhook time is compared with a direct F&O write made by a client in the same run.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.common import (
    CDS_FIELD,
    CDS_KEY,
    CDS_SET,
    SCM_FIELD,
    SCM_KEY,
    SCM_SET,
    client_ssl,
    percentile,
    sandbox_config,
)
from bridge.app import Bridge
from bridge.demo import connect, demo_settings
from bridge.sandbox.runtime import Sandbox
from bridge.systems.odata import key_segment

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Timings:
    webhooks: list[tuple[float, float, int]] = field(default_factory=list)  # start, end, status
    scm_calls: list[tuple[float, float, str]] = field(default_factory=list)  # start, end, method

    def per_change(self) -> list[tuple[float, float, float]]:
        """(webhook ms, F&O write ms, F&O read ms) for each webhook call."""
        out = []
        for start, end, _ in self.webhooks:
            inside = [c for c in self.scm_calls if start <= c[0] <= end]
            write = sum(c[1] - c[0] for c in inside if c[2] != "GET")
            read = sum(c[1] - c[0] for c in inside if c[2] == "GET")
            out.append(((end - start) * 1000, write * 1000, read * 1000))
        return out


@dataclass
class SyncResult:
    changes: int
    added_p50: float
    added_p99: float
    webhook_p50: float
    write_p50: float
    read_p50: float
    scm_calls_per_change: float
    latency_changes: int
    latency_webhook_p50: float
    latency_direct_p50: float

    @property
    def overhead_ratio_p50(self) -> float:
        return self.latency_webhook_p50 / self.latency_direct_p50


def _instrument(bridge: Bridge, timings: Timings) -> None:
    @web.middleware
    async def timed(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path != "/webhooks/cds":
            return await handler(request)
        start = time.perf_counter()
        response = await handler(request)
        timings.webhooks.append((start, time.perf_counter(), response.status))
        return response

    bridge.app.middlewares.insert(0, timed)
    http = bridge.scm.http
    original = http.request

    async def request(method: str, path: str, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await original(method, path, **kwargs)
        finally:
            timings.scm_calls.append((start, time.perf_counter(), method))

    http.request = request  # type: ignore[method-assign]


async def run_sync(
    state_dir: Path, workdir: Path, *, creates: int, updates: int, latency_changes: int
) -> SyncResult:
    async with Sandbox(sandbox_config(state_dir, webhook_timeout=60.0)) as sandbox:
        info = sandbox.info
        settings = demo_settings(info, host="127.0.0.1", port=0, data_dir=workdir / "sync-bridge")
        bridge = Bridge(settings)
        timings = Timings()
        _instrument(bridge, timings)
        await bridge.start()
        try:
            await connect(sandbox, bridge, mode="sync")
            company = next(
                r["cdm_companyid"]
                for r in sandbox.dataverse.rows("cdm_companies")
                if r["cdm_companycode"] == "USMF"
            )
            connector = aiohttp.TCPConnector(ssl=client_ssl(info.ca_file))
            async with aiohttp.ClientSession(connector=connector, trust_env=False) as http:
                person = _Person(http, sandbox, company)
                ids = [await person.create(f"SY{n:05d}") for n in range(creates)]
                for n in range(updates):
                    await person.update(ids[n % len(ids)], f"update {n}")
                measured = timings.per_change()
                scm_calls = len(timings.scm_calls)
                statuses = {s for _, _, s in timings.webhooks}
                if statuses != {200}:
                    raise RuntimeError(f"synchronous webhooks answered {statuses}")
                # With 50 ms of emulated F&O latency: the whole webhook against a direct F&O write.
                sandbox.faults["fno"].update(latency_ms=50)
                timings.webhooks.clear()
                for n in range(latency_changes):
                    await person.update(ids[n % len(ids)], f"slow {n}")
                slow = [w for w, _, _ in timings.per_change()]
                direct = [
                    await person.direct_scm_write(f"SY{n % creates:05d}", f"direct {n}")
                    for n in range(latency_changes)
                ]
        finally:
            await bridge.stop()
    added = [w - s for w, s, _ in measured]
    return SyncResult(
        changes=len(measured),
        added_p50=percentile(added, 50),
        added_p99=percentile(added, 99),
        webhook_p50=percentile([w for w, _, _ in measured], 50),
        write_p50=percentile([s for _, s, _ in measured], 50),
        read_p50=percentile([r for _, _, r in measured], 50),
        scm_calls_per_change=scm_calls / max(len(measured), 1),
        latency_changes=len(slow),
        latency_webhook_p50=percentile(slow, 50),
        latency_direct_p50=percentile(direct, 50),
    )


class _Person:
    """The sandbox's user client saving records through the Web APIs, one at a time."""

    def __init__(self, http: aiohttp.ClientSession, sandbox: Any, company: str) -> None:
        self.http = http
        self.info = sandbox.info
        self.company = company
        self.cds_headers = {"Authorization": f"Bearer {sandbox.token('user', 'dataverse')}"}
        self.scm_headers = {"Authorization": f"Bearer {sandbox.token('user', 'fno')}"}

    async def create(self, key: str) -> str:
        body = {
            CDS_KEY: key,
            CDS_FIELD: "created",
            "msdyn_company@odata.bind": f"/cdm_companies({self.company})",
        }
        async with self.http.post(
            f"{self.info.cds_url}/{CDS_SET}", json=body, headers=self.cds_headers
        ) as resp:
            if resp.status != 204:
                raise RuntimeError(f"create {key}: {resp.status} {await resp.text()}")
            return resp.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")

    async def update(self, record_id: str, value: str) -> None:
        url = f"{self.info.cds_url}/{CDS_SET}({record_id})"
        async with self.http.patch(url, json={CDS_FIELD: value}, headers=self.cds_headers) as resp:
            if resp.status != 204:
                raise RuntimeError(f"update {record_id}: {resp.status} {await resp.text()}")

    async def direct_scm_write(self, key: str, value: str) -> float:
        """Milliseconds of one F&O PATCH made directly by a client."""
        url = f"{self.info.scm_url}/{SCM_SET}" + key_segment({"dataAreaId": "usmf", SCM_KEY: key})
        start = time.perf_counter()
        async with self.http.patch(url, json={SCM_FIELD: value}, headers=self.scm_headers) as resp:
            await resp.read()
            if resp.status != 204:
                raise RuntimeError(f"direct write {key}: {resp.status}")
        return (time.perf_counter() - start) * 1000
