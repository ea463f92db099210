"""Recovery after kill -9: how long a restarted bridge takes to converge, with the default lease.

One ``dualwrite serve`` process with its own ``[sync]`` defaults (60 s leases: no short lease
here), fed by F&O data events as a person edits ship vias there. Each round: changes stream in, the
bridge is killed (SIGKILL) while it holds changes in hand (leases in its queue file), restarted at
once, and timed from the restart until the two systems agree and its queue is empty. A restarted
bridge takes its own leases back at start (they name it: docs/queue-and-state.md, "Lease owners"),
so what it held is applied at once instead of when the leases run out. The figure is the longest
round; each round also says whether everything it held was settled before those leases would have
ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import CDS_FIELD, CDS_KEY, CDS_SET, SCM_FIELD, SCM_KEY, SCM_SET, sandbox_config
from bench.live import Keys
from bench.procs import BridgeProcess
from bridge.sandbox.notify.fno import DataEventEndpoint
from bridge.sandbox.runtime import Sandbox
from bridge.settings import SyncSettings
from bridge.systems.odata import key_segment

TIMEOUT_S = 120.0  # one round's backstop: twice the default lease
DEFAULT_LEASE_S: float = SyncSettings.model_fields["lease_s"].default


@dataclass
class Restart:
    lease_s: float  # the lease the bridge ran with (its default)
    recovery_s: list[float] = field(default_factory=list)  # per kill: restart -> converged, queue empty
    held: list[int] = field(default_factory=list)  # per kill: changes in hand (leases) at the kill
    before_lease_end: list[bool] = field(default_factory=list)  # per kill: held ones settled in time

    @property
    def longest_s(self) -> float:
        return max(self.recovery_s, default=float("nan"))


def held_leases(queue_db: Path) -> list[tuple[int, float]]:
    """Leases in the queue file that have not run out: (event seq, lease end)."""
    if not queue_db.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{queue_db}?mode=ro", uri=True, timeout=5)) as db:
        rows = db.execute(
            "SELECT head_seq, ready_at FROM heads WHERE lease_token IS NOT NULL AND ready_at > ?",
            (time.time(),),
        ).fetchall()
    return [(int(seq), float(end)) for seq, end in rows]


def queued(queue_db: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{queue_db}?mode=ro", uri=True, timeout=5)) as db:
        return int(db.execute("SELECT count(*) FROM events WHERE dead_at IS NULL").fetchone()[0])


class Editor:
    """A person editing ship vias on F&O (the sandbox's user client)."""

    def __init__(self, sandbox: Any, http: aiohttp.ClientSession) -> None:
        self.sandbox = sandbox
        self.http = http
        self.url = f"{sandbox.info.scm_url}/{SCM_SET}"

    async def write(self, key: str, value: str, *, create: bool) -> None:
        headers = {"Authorization": f"Bearer {self.sandbox.token('user', 'fno')}"}
        if create:
            body = {"dataAreaId": "usmf", SCM_KEY: key, SCM_FIELD: value}
            request = self.http.post(self.url, json=body, headers=headers)
        else:
            url = self.url + key_segment({"dataAreaId": "usmf", SCM_KEY: key})
            request = self.http.patch(url, json={SCM_FIELD: value}, headers=headers)
        async with request as resp:
            if resp.status not in (201, 204):
                raise RuntimeError(f"F&O answered {resp.status} to {key}: {await resp.text()}")

    async def stream(self, keys: list[str], tag: str, rng: random.Random, lanes: int = 8) -> None:
        """Updates to random records, ``lanes`` at a time, until cancelled."""

        async def lane(n: int) -> None:
            for i in range(1_000_000):
                await self.write(rng.choice(keys), f"{tag}-{n}-{i}", create=False)

        await asyncio.gather(*(lane(n) for n in range(lanes)))


def agreed(sandbox: Any) -> bool:
    cds = {r[CDS_KEY]: r[CDS_FIELD] for r in sandbox.dataverse.rows(CDS_SET)}
    scm = {r[SCM_KEY]: r[SCM_FIELD] for r in sandbox.fno.rows(SCM_SET)}
    return cds == scm


async def converged(sandbox: Any, queue_db: Path, timeout: float = TIMEOUT_S) -> float:
    """Wait until every notification is delivered, both systems agree and the queue is empty; the
    ``time.time()`` at which that was seen."""
    deadline = time.time() + timeout
    while True:
        await sandbox.notifier.drain()
        if agreed(sandbox) and queued(queue_db) == 0:
            return time.time()
        if time.time() > deadline:
            raise TimeoutError(f"not converged within {timeout:.0f}s of the restart")
        await asyncio.sleep(0.02)


async def run_restart(state_dir: Path, workdir: Path, *, keys: Keys, records: int, kills: int) -> Restart:
    out = Restart(lease_s=float(keys.bridge_sync.get("lease_s", DEFAULT_LEASE_S)))
    rng = random.Random(18)
    # F&O re-sends an unacknowledged data event for 20 s, long enough to ride out every restart.
    config = sandbox_config(state_dir, dataevent_retries=400, dataevent_retry_interval=0.05)
    async with Sandbox(config) as sandbox:
        bridge: BridgeProcess = keys.bridge(sandbox.info, workdir / "restart-bridge")
        queue_db = bridge.workdir / "data" / "queue.db"
        await bridge.start()
        sandbox.notifier.fno.add_endpoint(
            DataEventEndpoint(
                name="bridge", url=f"{bridge.url}/webhooks/scm", headers={"x-dualwrite-key": keys.scm}
            )
        )
        try:
            connector = aiohttp.TCPConnector(ssl=sandbox.client_ssl_context(), limit=0)
            async with aiohttp.ClientSession(connector=connector, trust_env=False) as http:
                editor = Editor(sandbox, http)
                names = [f"RS{n:04d}" for n in range(records)]
                for name in names:
                    await editor.write(name, "created", create=True)
                await converged(sandbox, queue_db)
                for round_ in range(kills):
                    await _round(out, bridge, editor, sandbox, queue_db, names, f"r{round_}", rng)
        finally:
            bridge.stop()
    return out


async def _round(
    out: Restart,
    bridge: BridgeProcess,
    editor: Editor,
    sandbox: Any,
    queue_db: Path,
    names: list[str],
    tag: str,
    rng: random.Random,
) -> None:
    edits = asyncio.create_task(editor.stream(names, tag, rng))
    try:
        await asyncio.sleep(rng.uniform(0.2, 0.5))  # under load
        for _ in range(500):  # then kill it while it holds changes in hand
            if held_leases(queue_db) or edits.done():
                break
            await asyncio.sleep(0.01)
        bridge.kill9()
    finally:
        edits.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
            await edits
    held = held_leases(queue_db)  # what the dead process held, as it died
    restarted = time.time()
    await bridge.start(timeout=TIMEOUT_S)
    done = await converged(sandbox, queue_db)
    out.recovery_s.append(done - restarted)
    out.held.append(len(held))
    out.before_lease_end.append(all(done < end for _, end in held))
