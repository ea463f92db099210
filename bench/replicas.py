"""PostgreSQL queue and state with 1 and 3 ``dualwrite serve`` replicas.

Each run: the emulators in this process, a schema of the benchmark's own (``dualwrite_bench``, reset
before each run; nothing else in the database is touched), N bridge processes on it (each one
process, its own lease owner).

- throughput: F&O's data events for ``records`` creates and ``updates`` changes, recorded once as
  the live section does (bench/record.py), replayed by the driver process into the replicas, each
  record's to one replica in turn (the driver is the load balancer: its calls go out from its own
  process, so the front's work does not land on the emulators' core); changes applied in Dataverse
  per second, updates phase;
- latency (3 replicas): a person (the sandbox's user client) edits ``latency_changes`` records in
  F&O, 4 at a time, through the round-robin front (``bridge.front``); per change, the person's write
  answered to the bridge's write committed in Dataverse;
- failover (3 replicas): F&O keeps being edited through the front, one replica is killed (SIGKILL)
  and not restarted; the time from the kill until both systems agree again. What the dead replica
  held is handed on when its leases run out (``lease_s``, 3 s here), so that bounds it.

On 2 cores three replicas share the same two cores as one: the figure is contention, not scaling
(the target: 3 replicas keep >= 0.8 of one replica's throughput).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import CDS_FIELD, CDS_KEY, CDS_SET, SCM_FIELD, SCM_KEY, SCM_SET, percentile, sandbox_config
from bench.driver import Call
from bench.live import Keys, _phase, record
from bench.procs import BridgeProcess
from bench.record import Note, Recording
from bench.restart import Editor
from bridge.front import RoundRobinFront
from bridge.sandbox.contracts import RecordChange, WriteHooks
from bridge.sandbox.notify.fno import DataEventEndpoint
from bridge.sandbox.runtime import Sandbox

DATABASE_URL = os.environ.get("DUALWRITE_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
SCHEMA = "dualwrite_bench"
LEASE_S = 3
LANES = 16
TIMEOUT_S = 300.0
REPLICA_SYNC = {"lease_s": LEASE_S, "apply_processes": 0, "backoff_initial_s": 0.05, "backoff_max_s": 0.5}


@dataclass
class Run:
    replicas: int
    changes_per_s: float
    latency_ms: list[float] = field(default_factory=list)


@dataclass
class Replicas:
    runs: dict[int, Run] = field(default_factory=dict)
    failover_s: float | None = None
    skipped: str | None = None  # why nothing was measured (no PostgreSQL answers)
    lease_s: float = LEASE_S

    def rate(self, n: int) -> float | None:
        run = self.runs.get(n)
        return None if run is None else run.changes_per_s

    def latency(self, pct: float) -> float | None:
        run = self.runs.get(max(self.runs, default=0))
        return None if run is None or not run.latency_ms else percentile(run.latency_ms, pct)


async def unavailable(database_url: str) -> str | None:
    """Why PostgreSQL cannot be used here (no server, no driver), or None."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'dualwrite[postgres]')"
    try:
        async with await psycopg.AsyncConnection.connect(database_url, connect_timeout=3) as conn:
            await conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"no PostgreSQL answers at {database_url.split('@')[-1]}: {str(exc).strip()[:200]}"
    return None


class Arrivals:
    """Dataverse's commit hooks, noting when each value arrived (then passing the change on)."""

    def __init__(self, inner: WriteHooks) -> None:
        self.inner = inner
        self.at: dict[str, float] = {}

    async def before_commit(self, change: RecordChange) -> None:
        await self.inner.before_commit(change)

    async def after_commit(self, change: RecordChange) -> None:
        value = (change.post_image or {}).get(CDS_FIELD)
        if value is not None:
            self.at.setdefault(str(value), time.monotonic())
        await self.inner.after_commit(change)


EDITED = "LT"  # the records a person edits in F&O (the replayed ones exist in Dataverse only)


def agreed(sandbox: Any) -> bool:
    """Both systems hold the same edited records with the same values."""
    cds = {r[CDS_KEY]: r[CDS_FIELD] for r in sandbox.dataverse.rows(CDS_SET) if r[CDS_KEY].startswith(EDITED)}
    scm = {r[SCM_KEY]: r[SCM_FIELD] for r in sandbox.fno.rows(SCM_SET) if r[SCM_KEY].startswith(EDITED)}
    return cds == scm


async def _agree(sandbox: Any, timeout: float = TIMEOUT_S) -> float:
    deadline = time.monotonic() + timeout
    while True:
        await sandbox.notifier.drain()
        if agreed(sandbox):
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"the systems did not agree within {timeout:.0f}s")
        await asyncio.sleep(0.02)


async def _reset(database_url: str) -> None:
    from bridge.demoreplicas import reset_schema

    await reset_schema(database_url, SCHEMA)


def _replicas(keys: Keys, info: Any, workdir: Path, n: int, database_url: str) -> list[BridgeProcess]:
    return [
        BridgeProcess(
            info,
            workdir / f"pg-{n}-replica-{i + 1}",
            cds_key=keys.cds,
            scm_key=keys.scm,
            sync={**keys.bridge_sync, **REPLICA_SYNC},
            event_loop=keys.event_loop,
            gc_gen0_threshold=keys.gc_gen0_threshold,
            database=(database_url, SCHEMA),
        )
        for i in range(n)
    ]


async def _throughput(sandbox: Any, recording: Recording, procs: list[BridgeProcess]) -> float:
    """Replay the recording into the replicas (each record's notes to one of them); updates/s."""
    urls = [p.url for p in procs]

    def calls(notes: list[Note]) -> list[tuple[int, Call]]:
        return [(n.record, n.call(urls[n.record % len(urls)])) for n in notes]

    await _phase(sandbox, recording, calls(recording.creates), LANES)
    return len(recording.updates) / await _phase(sandbox, recording, calls(recording.updates), LANES)


async def _latency(sandbox: Any, editor: Editor, arrivals: Arrivals, names: list[str], n: int) -> list[float]:
    """``n`` person's edits in F&O, 4 at a time: ms from each write answered to its Dataverse commit."""
    answered: dict[str, float] = {}
    rng = random.Random(3)

    async def lane(k: int) -> None:
        for i in range(n // 4):
            value = f"lat-{k}-{i}"
            await editor.write(rng.choice(names), value, create=False)
            answered[value] = time.monotonic()

    await asyncio.gather(*(lane(k) for k in range(4)))
    await _agree(sandbox)
    return [(arrivals.at[v] - t) * 1000 for v, t in answered.items() if v in arrivals.at]


async def _one_run(
    state_dir: Path,
    workdir: Path,
    keys: Keys,
    n: int,
    recording: Recording,
    latency_changes: int,
    database_url: str,
) -> tuple[Run, float | None]:
    await _reset(database_url)
    config = sandbox_config(state_dir / f"pg-{n}", dataevent_retries=400, dataevent_retry_interval=0.05)
    async with Sandbox(config) as sandbox:
        procs = _replicas(keys, sandbox.info, workdir, n, database_url)
        front = RoundRobinFront([p.url for p in procs])
        arrivals = Arrivals(sandbox.dataverse.hooks)
        sandbox.dataverse.hooks = arrivals
        try:
            for proc in procs:  # one after the other: the first one migrates the schema
                await proc.start()
            rate = await _throughput(sandbox, recording, procs)
            run = Run(n, rate)
            if n == 1:
                return run, None
            await front.start()
            sandbox.notifier.fno.add_endpoint(
                DataEventEndpoint(
                    name="front", url=f"{front.url}/webhooks/scm", headers={"x-dualwrite-key": keys.scm}
                )
            )
            names = [f"{EDITED}{i:03d}" for i in range(20)]
            connector = aiohttp.TCPConnector(ssl=sandbox.client_ssl_context(), limit=0)
            async with aiohttp.ClientSession(connector=connector, trust_env=False) as http:
                editor = Editor(sandbox, http)
                for name in names:
                    await editor.write(name, "created", create=True)
                await _agree(sandbox)
                run.latency_ms = await _latency(sandbox, editor, arrivals, names, latency_changes)
                failover = await _failover(sandbox, editor, names, procs)
        finally:
            await front.stop()
            for p in procs:
                p.stop()
    return run, failover


async def _failover(sandbox: Any, editor: Editor, names: list[str], procs: list[BridgeProcess]) -> float:
    """Edits keep coming; one replica is killed mid-stream and stays dead: seconds from the kill
    until both systems agree again."""
    edits = asyncio.create_task(editor.stream(names, "failover", random.Random(7)))
    killed = time.monotonic()
    try:
        await asyncio.sleep(1.0)
        procs[1].kill9()
        killed = time.monotonic()
        await asyncio.sleep(0.5)  # still under load after the kill
    finally:
        edits.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
            await edits
    return await _agree(sandbox) - killed


async def run_replicas(
    state_dir: Path, workdir: Path, *, keys: Keys, records: int, updates: int, latency_changes: int
) -> Replicas:
    out = Replicas()
    reason = await unavailable(DATABASE_URL)
    if reason is not None:
        out.skipped = reason
        return out
    recording = await record(state_dir, "scm", records, updates, "PG", keys)
    for n in (1, 3):
        run, failover = await _one_run(state_dir, workdir, keys, n, recording, latency_changes, DATABASE_URL)
        out.runs[n] = run
        if failover is not None:
            out.failover_s = failover
    return out
