"""Sync-mode overhead: what the bridge adds to a synchronous Dataverse save beyond the F&O write.

The bridge runs in its own process as ``dualwrite serve`` runs it (its event loop, its settled heap,
the benchmark's ``[sync]`` settings), like every other bridge run of the benchmark; both emulators
and the person saving records live in the benchmark's process. ``bench.syncserve`` times each
``/webhooks/cds`` call and each F&O call from inside the bridge. A person saves ship vias in
Dataverse one at a time (a synchronous step is registered), so every F&O call falls inside exactly
one webhook's window: ``added = webhook time - time of the F&O write(s) it made``. Then, with 50 ms
of emulated F&O latency, the whole webhook time is compared with a direct F&O write made by a client
in the same run.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import (
    CDS_FIELD,
    CDS_KEY,
    CDS_SET,
    MAPPINGS,
    SCM_FIELD,
    SCM_KEY,
    SCM_SET,
    client_ssl,
    percentile,
    sandbox_config,
    wait_until,
)
from bench.live import Keys
from bench.procs import BridgeProcess
from bench.syncserve import per_change
from bridge.core.mapping import load_mappings
from bridge.demo import point_at_bridge
from bridge.sandbox.runtime import Sandbox
from bridge.systems.auth import TokenProvider
from bridge.systems.dataverse import DataverseClient
from bridge.systems.odata import key_segment


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


class TimedBridgeProcess(BridgeProcess):
    """The bridge under ``bench.syncserve``: ``take()`` returns what it timed since the last call."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "bench.syncserve", str(self.config), str(self.timings)]

    @property
    def timings(self) -> Path:
        return self.workdir / "timings.json"

    async def take(self, timeout: float = 30.0) -> dict[str, Any]:
        self.timings.unlink(missing_ok=True)
        assert self.proc is not None
        self.proc.send_signal(signal.SIGUSR1)
        try:
            await wait_until(self.timings.exists, timeout)
        except TimeoutError:
            raise RuntimeError(f"the bridge wrote no timings: {self.log.read_text()[-2000:]}") from None
        taken: dict[str, Any] = json.loads(self.timings.read_text(encoding="utf-8"))
        return taken


async def run_sync(
    state_dir: Path, workdir: Path, *, keys: Keys, creates: int, updates: int, latency_changes: int
) -> SyncResult:
    async with Sandbox(sandbox_config(state_dir, webhook_timeout=60.0)) as sandbox:
        info = sandbox.info
        proc = keys.bridge(info, workdir / "sync-bridge", process=TimedBridgeProcess)
        assert isinstance(proc, TimedBridgeProcess)
        await proc.start()
        try:
            await _register(sandbox, proc.url, keys)
            company = next(
                r["cdm_companyid"]
                for r in sandbox.dataverse.rows("cdm_companies")
                if r["cdm_companycode"] == "USMF"
            )
            connector = aiohttp.TCPConnector(ssl=client_ssl(info.ca_file))
            async with aiohttp.ClientSession(connector=connector, trust_env=False) as http:
                person = _Person(http, sandbox, company)
                await proc.take()  # from here on
                ids = [await person.create(f"SY{n:05d}") for n in range(creates)]
                for n in range(updates):
                    await person.update(ids[n % len(ids)], f"update {n}")
                timed = await proc.take()
                measured = per_change(timed)
                statuses = {s for _, _, s in timed["webhooks"]}
                if statuses != {200}:
                    raise RuntimeError(f"synchronous webhooks answered {statuses}")
                # With 50 ms of emulated F&O latency: the whole webhook against a direct F&O write.
                sandbox.faults["fno"].update(latency_ms=50)
                for n in range(latency_changes):
                    await person.update(ids[n % len(ids)], f"slow {n}")
                slow = [w for w, _, _ in per_change(await proc.take())]
                direct = [
                    await person.direct_scm_write(f"SY{n % creates:05d}", f"direct {n}")
                    for n in range(latency_changes)
                ]
        finally:
            proc.stop()
    added = [w - s for w, s, _ in measured]
    return SyncResult(
        changes=len(measured),
        added_p50=percentile(added, 50),
        added_p99=percentile(added, 99),
        webhook_p50=percentile([w for w, _, _ in measured], 50),
        write_p50=percentile([s for _, s, _ in measured], 50),
        read_p50=percentile([r for _, _, r in measured], 50),
        scm_calls_per_change=len(timed["scm_calls"]) / max(len(measured), 1),
        latency_changes=len(slow),
        latency_webhook_p50=percentile(slow, 50),
        latency_direct_p50=percentile(direct, 50),
    )


async def _register(sandbox: Any, bridge_url: str, keys: Keys) -> None:
    """Point both emulators at the bridge process, registering the Dataverse steps as ``dualwrite
    register`` does: through the Web API, with the bridge's own app registration."""
    info = sandbox.info
    tokens = TokenProvider(
        info.authority, info.client_id, info.client_secret, info.cds_scope, ca_file=info.ca_file
    )
    async with DataverseClient(info.cds_url, tokens, ca_file=info.ca_file) as cds:
        await point_at_bridge(
            sandbox, cds, load_mappings(MAPPINGS), bridge_url, cds_key=keys.cds, scm_key=keys.scm, mode="sync"
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
