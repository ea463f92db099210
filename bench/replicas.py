"""PostgreSQL queue and state with 1 and 3 ``dualwrite serve`` replicas behind one front.

Each run: the emulators in this process, a schema of the benchmark's own (``dualwrite_bench``, reset
before each run; nothing else in the database is touched), N bridge processes on it (each one
process, its own lease owner), the round-robin front (``bridge.front``) in this process, F&O's data
events registered against the front. A person (the sandbox's user client) creates ``records`` modes
of delivery in F&O and then makes ``updates`` changes to them, each record's in order, 16 records at
a time. The run ends when Dataverse holds every last value.

- throughput: changes applied end to end per second (first write to last commit in Dataverse);
- latency: per change, the person's write answered to the bridge's write committed in Dataverse
  (of the 3-replica run: the configuration the keys describe);
- failover (3 replicas): F&O keeps being edited, one replica is killed (SIGKILL) and not
  restarted; the time from the kill until both systems agree again. What the dead replica held is
  handed on when its leases run out (``lease_s``, 3 s here), so that bounds it.

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
from bench.live import Keys
from bench.procs import BridgeProcess
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
    changes: int
    seconds: float
    latency_ms: list[float] = field(default_factory=list)

    @property
    def changes_per_s(self) -> float:
        return self.changes / self.seconds if self.seconds > 0 else float("nan")


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


def agreed(sandbox: Any) -> bool:
    cds = {r[CDS_KEY]: r[CDS_FIELD] for r in sandbox.dataverse.rows(CDS_SET)}
    scm = {r[SCM_KEY]: r[SCM_FIELD] for r in sandbox.fno.rows(SCM_SET)}
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
    sections = (
        f'[queue]\nbackend = "postgres"\n[state]\nbackend = "postgres"\n[database]\nschema = "{SCHEMA}"\n'
    )
    return [
        BridgeProcess(
            info,
            workdir / f"pg-{n}-replica-{i + 1}",
            cds_key=keys.cds,
            scm_key=keys.scm,
            sync={**keys.bridge_sync, **REPLICA_SYNC},
            event_loop=keys.event_loop,
            gc_gen0_threshold=keys.gc_gen0_threshold,
            sections=sections,
            secrets_env={"DUALWRITE_DATABASE_URL": database_url},
        )
        for i in range(n)
    ]


async def _changes(editor: Editor, names: list[str], updates: int, tag: str) -> dict[str, float]:
    """Every record created, then ``updates`` changes; returns value -> when the person's write was
    answered. Each record's writes in order, ``LANES`` records at a time."""
    rng = random.Random(22)
    answered: dict[str, float] = {}
    plan: list[list[tuple[str, str, bool]]] = [[] for _ in range(LANES)]
    for i, name in enumerate(names):
        plan[i % LANES].append((name, f"{tag}-c{i}", True))
    for u in range(updates):
        i = rng.randrange(len(names))
        plan[i % LANES].append((names[i], f"{tag}-u{u}", False))

    async def lane(items: list[tuple[str, str, bool]]) -> None:
        for name, value, create in items:
            await editor.write(name, value, create=create)
            answered[value] = time.monotonic()

    await asyncio.gather(*(lane(items) for items in plan))
    return answered


async def _one_run(
    state_dir: Path, workdir: Path, keys: Keys, n: int, records: int, updates: int, database_url: str
) -> tuple[Run, float | None]:
    await _reset(database_url)
    config = sandbox_config(state_dir / f"pg-{n}", dataevent_retries=400, dataevent_retry_interval=0.05)
    async with Sandbox(config) as sandbox:
        procs = _replicas(keys, sandbox.info, workdir, n, database_url)
        front = RoundRobinFront([p.url for p in procs])
        arrivals = Arrivals(sandbox.dataverse.hooks)
        sandbox.dataverse.hooks = arrivals
        try:
            await asyncio.gather(*(p.start() for p in procs))
            await front.start()
            sandbox.notifier.fno.add_endpoint(
                DataEventEndpoint(
                    name="front", url=f"{front.url}/webhooks/scm", headers={"x-dualwrite-key": keys.scm}
                )
            )
            connector = aiohttp.TCPConnector(ssl=sandbox.client_ssl_context(), limit=0)
            async with aiohttp.ClientSession(connector=connector, trust_env=False) as http:
                editor = Editor(sandbox, http)
                names = [f"PG{n}-{i:04d}" for i in range(records)]
                started = time.monotonic()
                answered = await _changes(editor, names, updates, f"r{n}")
                await _agree(sandbox)
                last = max(arrivals.at.get(v, started) for v in answered)
                latency = [(arrivals.at[v] - t) * 1000 for v, t in answered.items() if v in arrivals.at]
                run = Run(n, len(answered), last - started, latency)
                failover = await _failover(sandbox, editor, names, procs) if n > 1 else None
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


async def run_replicas(state_dir: Path, workdir: Path, *, keys: Keys, records: int, updates: int) -> Replicas:
    out = Replicas()
    reason = await unavailable(DATABASE_URL)
    if reason is not None:
        out.skipped = reason
        return out
    for n in (1, 3):
        run, failover = await _one_run(state_dir, workdir, keys, n, records, updates, DATABASE_URL)
        out.runs[n] = run
        if failover is not None:
            out.failover_s = failover
    return out
