"""kill -9 of the bridge process at random moments during a stream of changes, repeated, restarted
each time: nothing lost, nothing applied twice, per-record order kept, and full dumps of both
systems equal on the mapped fields; and a restart takes back the killed run's leases at once. The
bridge is a real ``dualwrite serve`` process; F&O re-sends a data event its receiver did not
acknowledge (40 x 0.1 s here), as the real integration retries."""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.procs import BridgeProcess
from bridge.sandbox.notify.fno import DataEventEndpoint
from tests.reliability.conftest import forms
from tests.reliability.helpers import Person, assert_once_and_in_order, attach_commit_logs, converge, stream


@forms(short=(40, 3000, 3), long=(300, 8000, 12))
async def test_kill_9_at_random_moments_loses_nothing_and_applies_nothing_twice(
    sandbox: Any, tmp_path: Path, size: tuple[int, int, int]
) -> None:
    records, updates, kills = size
    scm_key = secrets.token_urlsafe(18)
    bridge = BridgeProcess(
        sandbox.info,
        tmp_path / "bridge",
        cds_key=secrets.token_urlsafe(18),
        scm_key=scm_key,
        sync={"backoff_initial_s": 0.05, "backoff_max_s": 0.5, "lease_s": 2},
    )
    await bridge.start()
    cds_log, scm_log = attach_commit_logs(sandbox)
    sandbox.notifier.fno.add_endpoint(
        DataEventEndpoint(
            name="bridge", url=f"{bridge.url}/webhooks/scm", headers={"x-dualwrite-key": scm_key}
        )
    )
    rng = random.Random(5)
    try:
        connector = aiohttp.TCPConnector(ssl=sandbox.client_ssl_context(), limit=0)
        async with aiohttp.ClientSession(connector=connector, trust_env=False) as http:
            person = await Person.make(http, sandbox)
            keys = [f"K{n:04d}" for n in range(records)]
            changes = asyncio.create_task(
                stream(keys, updates, person.scm_create, person.scm_update, lanes=8)
            )
            killed = 0
            while killed < kills and not changes.done():  # every kill lands mid-stream
                await asyncio.sleep(rng.uniform(0.1, 0.6))
                bridge.kill9()
                killed += 1
                await bridge.start()
            last = await changes
            bridge_on_scm = [c for c in scm_log.commits if c.client_id == sandbox.info.client_id]
            assert not bridge_on_scm, f"the bridge wrote to the source: {bridge_on_scm[:5]}"
            assert await converge(sandbox, timeout=20) == last  # full dumps equal on the mapped field
    finally:
        bridge.stop()
    assert killed == kills
    assert_once_and_in_order(cds_log, sandbox.info.client_id, last)


def _held_leases(queue_db: Path) -> list[tuple[str, int, float, str | None]]:
    """The leases in the queue file that have not run out: (record, event seq, lease end, owner)."""
    with contextlib.closing(sqlite3.connect(f"file:{queue_db}?mode=ro", uri=True, timeout=5)) as db:
        return db.execute(
            "SELECT record_key, head_seq, ready_at, lease_owner FROM heads "
            "WHERE lease_token IS NOT NULL AND ready_at > ?",
            (time.time(),),
        ).fetchall()


def _queued(queue_db: Path) -> set[int]:
    with contextlib.closing(sqlite3.connect(f"file:{queue_db}?mode=ro", uri=True, timeout=5)) as db:
        return {seq for (seq,) in db.execute("SELECT seq FROM events WHERE dead_at IS NULL")}


async def test_a_restart_after_kill_9_takes_back_its_own_leases_instead_of_waiting_them_out(
    sandbox: Any, tmp_path: Path
) -> None:
    """Default settings (60 s leases): the changes the killed bridge held are applied by the restarted
    one before their leases would have run out, because their leases name it (issue 18, defect 5)."""
    scm_key = secrets.token_urlsafe(18)
    bridge = BridgeProcess(
        sandbox.info, tmp_path / "bridge", cds_key=secrets.token_urlsafe(18), scm_key=scm_key
    )
    queue_db = tmp_path / "bridge" / "data" / "queue.db"
    await bridge.start()
    cds_log, _ = attach_commit_logs(sandbox)
    sandbox.notifier.fno.add_endpoint(
        DataEventEndpoint(
            name="bridge", url=f"{bridge.url}/webhooks/scm", headers={"x-dualwrite-key": scm_key}
        )
    )
    try:
        connector = aiohttp.TCPConnector(ssl=sandbox.client_ssl_context(), limit=0)
        async with aiohttp.ClientSession(connector=connector, trust_env=False) as http:
            person = await Person.make(http, sandbox)
            keys = [f"L{n:04d}" for n in range(40)]
            changes = asyncio.create_task(stream(keys, 2000, person.scm_create, person.scm_update, lanes=8))
            while not _held_leases(queue_db):  # kill it while it holds changes in hand
                assert not changes.done(), "the stream ended before the bridge held a lease"
                await asyncio.sleep(0.01)
            bridge.kill9()
            held = _held_leases(queue_db)  # what the dead process held, as it died
            assert held
            owner = (tmp_path / "bridge" / "data" / "owner-id").read_text().strip()
            assert {lease_owner for *_, lease_owner in held} == {owner}
            await bridge.start()
            last = await changes
            assert await converge(sandbox, timeout=15) == last  # a backstop, far below the 60 s lease
            for _ in range(300):  # the queue empties (a backstop of 15 s)
                if not _queued(queue_db):
                    break
                await asyncio.sleep(0.05)
            settled_at = time.time()
            assert not _queued(queue_db)
    finally:
        bridge.stop()
    # The order of events: every change held at the kill was settled before its lease would have ended.
    assert settled_at < min(lease_end for _, _, lease_end, _ in held)
    assert "took back" in bridge.log.read_text()
    assert_once_and_in_order(cds_log, sandbox.info.client_id, last)
