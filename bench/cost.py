"""Where the bridge's CPU goes per change: intake (webhook -> durable queue) apart from apply
(queue -> write on the target -> ledger).

One ``dualwrite serve`` process; the map is paused, the recorded notifications are replayed (intake
only: parse, enqueue, answer 202), then the map is resumed and its backlog applied (apply only). The
bridge process's CPU time (``/proc/<pid>/stat``) over each phase, divided by the changes, is the
figure; the live run's total (``bench/live.py``) is their sum plus the cost of doing both at once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import ENTITY, sandbox_config
from bench.driver import Driver, lanes_by_record
from bench.live import TIMEOUT, Keys, record
from bridge.sandbox.runtime import Sandbox


@dataclass
class Cost:
    changes: int
    intake_us_per_change: float
    intake_per_s: float
    apply_us_per_change: float
    apply_per_s: float


async def run_cost(
    state_dir: Path, workdir: Path, *, records: int, updates: int, lanes: int, keys: Keys
) -> Cost:
    recording = await record(state_dir, "scm", records, updates, "CO", keys)
    async with Sandbox(sandbox_config(state_dir)) as sandbox:
        bridge = keys.bridge(sandbox.info, workdir / "cost-bridge")
        await bridge.start()
        try:
            await bridge.ops("POST", f"/api/maps/{ENTITY}/pause", {"reason": "cost benchmark"})
            calls = [(n.record, n.call(bridge.url)) for n in (*recording.creates, *recording.updates)]
            cpu, started = bridge.cpu(), time.perf_counter()
            async with Driver(lanes_by_record(calls, lanes), sandbox.info.ca_file) as driver:
                driver.go()
                result = await driver.result()
            intake_cpu, intake_s = bridge.cpu() - cpu, time.perf_counter() - started
            if set(result.statuses) != {202}:
                raise RuntimeError(f"intake answered {result.statuses}: {result.errors}")

            cpu, started = bridge.cpu(), time.perf_counter()
            await bridge.ops("POST", f"/api/maps/{ENTITY}/resume", {"mode": "catch-up"})
            while (await bridge.ops("GET", f"/api/maps/{ENTITY}"))["queue_depth"] > 0:
                if time.perf_counter() - started > TIMEOUT:
                    raise TimeoutError("the backlog was not applied in time")
                await asyncio.sleep(0.02)
            apply_cpu, apply_s = bridge.cpu() - cpu, time.perf_counter() - started
        finally:
            bridge.stop()
    n = len(calls)
    return Cost(n, intake_cpu / n * 1e6, n / intake_s, apply_cpu / n * 1e6, n / apply_s)
