"""kill -9 of the bridge process at random moments during a stream of changes, repeated, restarted
each time: nothing lost, nothing applied twice, per-record order kept, and full dumps of both
systems equal on the mapped fields. The bridge is a real ``dualwrite serve`` process; F&O re-sends a
data event its receiver did not acknowledge (40 x 0.1 s here), as the real integration retries."""

from __future__ import annotations

import asyncio
import random
import secrets
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
