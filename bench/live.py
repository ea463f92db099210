"""Live throughput (async, many records in parallel, each direction) and scaling with record count.

For each direction, three runs against a fresh sandbox each, all with the same lanes (concurrency):
- raw: a client writes the same creates and updates straight to the target emulator;
- bridge: the recorded notifications replayed into ``dualwrite serve`` (its own process);
- relay: the same notifications replayed into the naive relay (its own process).
A phase ends when the target emulator has committed every write (its write log), so a rate is
changes applied end to end per second, not notifications acknowledged.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.common import CDS_FIELD, CDS_KEY, CDS_SET, SCM_FIELD, SCM_KEY, SCM_SET, sandbox_config, wait_until
from bench.driver import Call, Driver, lanes_by_record
from bench.procs import (
    DEFAULT_EVENT_LOOP,
    DEFAULT_GC_GEN0_THRESHOLD,
    BridgeProcess,
    RelayProcess,
    ServedProcess,
)
from bench.record import Recording, record_changes, value_text
from bridge.sandbox.runtime import Sandbox
from bridge.systems.odata import key_segment

TIMEOUT = 900.0


@dataclass
class Rates:
    creates_per_s: float
    updates_per_s: float
    mismatched: int = 0  # records whose final value on the target is not the source's
    cpu_us_per_change: float = float("nan")  # CPU of the bridge or relay process per change (both phases)


@dataclass
class Keys:
    """What every bridge and relay run of one benchmark shares: the webhook keys, the bridge's
    ``[sync]`` settings (``--sync KEY=VALUE``), and the event loop and young-collection threshold of
    both (``--event-loop``, ``--gc-gen0-threshold``)."""

    cds: str
    scm: str
    bridge_sync: dict[str, Any] = field(default_factory=dict)
    event_loop: str = DEFAULT_EVENT_LOOP
    gc_gen0_threshold: int = DEFAULT_GC_GEN0_THRESHOLD

    def bridge(
        self,
        info: Any,
        workdir: Path,
        *,
        profile_to: Path | None = None,
        process: type[BridgeProcess] = BridgeProcess,
    ) -> BridgeProcess:
        return process(
            info,
            workdir,
            cds_key=self.cds,
            scm_key=self.scm,
            sync=self.bridge_sync,
            profile_to=profile_to,
            event_loop=self.event_loop,
            gc_gen0_threshold=self.gc_gen0_threshold,
        )

    def one_process(self) -> Keys:
        """The same, with the bridge in one process (``sync.apply_processes = 0``, its default)."""
        return replace(self, bridge_sync={**self.bridge_sync, "apply_processes": 0})

    def relay(self, info: Any, workdir: Path) -> RelayProcess:
        return RelayProcess(
            info,
            workdir,
            cds_key=self.cds,
            scm_key=self.scm,
            event_loop=self.event_loop,
            gc_gen0_threshold=self.gc_gen0_threshold,
        )


def _target(sandbox: Any, recording: Recording) -> Any:
    return sandbox.dataverse if recording.source == "scm" else sandbox.fno


async def record(
    state_dir: Path, source: str, records: int, updates: int, prefix: str, keys: Keys
) -> Recording:
    async with Sandbox(sandbox_config(state_dir)) as sandbox:
        return await record_changes(
            sandbox,
            "scm" if source == "scm" else "cds",
            records=records,
            updates=updates,
            prefix=prefix,
            cds_key=keys.cds,
            scm_key=keys.scm,
        )


async def _phase(sandbox: Any, recording: Recording, calls: list[tuple[int, Call]], lanes: int) -> float:
    """Send ``calls``; seconds until the target committed that many writes."""
    log = _target(sandbox, recording).write_log
    base = len(log)
    ca = sandbox.info.ca_file
    async with Driver(lanes_by_record(calls, lanes), ca) as driver:
        started = driver.go()
        done = await wait_until(lambda: len(log) - base >= len(calls), TIMEOUT)
        result = await driver.result()
    failed = {s: n for s, n in result.statuses.items() if not 200 <= s < 300}
    if failed:
        raise RuntimeError(f"requests failed: {failed}: {result.errors}")
    return done - started


def _mismatches(sandbox: Any, recording: Recording) -> int:
    expected = recording.final_values()
    if recording.source == "scm":
        rows = {r[CDS_KEY]: r[CDS_FIELD] for r in sandbox.dataverse.rows(CDS_SET)}
    else:
        rows = {r[SCM_KEY]: r[SCM_FIELD] for r in sandbox.fno.rows(SCM_SET)}
    return sum(1 for key, value in expected.items() if rows.get(key) != value)


async def run_process(
    state_dir: Path,
    workdir: Path,
    recording: Recording,
    kind: str,
    keys: Keys,
    *,
    lanes: int,
    profile_to: Path | None = None,
) -> Rates:
    """Replay ``recording`` into the bridge or the relay; creates first, then updates."""
    async with Sandbox(sandbox_config(state_dir)) as sandbox:
        info = sandbox.info
        proc: ServedProcess = (
            keys.bridge(info, workdir, profile_to=profile_to)
            if kind == "bridge"
            else keys.relay(info, workdir)
        )
        await proc.start()
        try:
            cpu_before = proc.cpu()
            creates = await _phase(
                sandbox, recording, [(n.record, n.call(proc.url)) for n in recording.creates], lanes
            )
            updates = await _phase(
                sandbox, recording, [(n.record, n.call(proc.url)) for n in recording.updates], lanes
            )
            cpu = proc.cpu() - cpu_before
        finally:
            proc.stop()
        changes = len(recording.creates) + len(recording.updates)
        return Rates(
            len(recording.creates) / creates,
            len(recording.updates) / updates,
            _mismatches(sandbox, recording),
            cpu / changes * 1e6,
        )


async def run_raw(state_dir: Path, recording: Recording, *, lanes: int) -> Rates:
    """The target emulator's own write rate: the same changes written by a client directly."""
    async with Sandbox(sandbox_config(state_dir)) as sandbox:
        info = sandbox.info
        to_cds = recording.source == "scm"
        token = sandbox.token("user", "dataverse" if to_cds else "fno")
        headers = (("Authorization", f"Bearer {token}"), ("Content-Type", "application/json"))
        company = next(
            r["cdm_companyid"]
            for r in sandbox.dataverse.rows("cdm_companies")
            if r["cdm_companycode"] == "USMF"
        )

        def create(record: int, seq: int) -> Call:
            key = recording.key(record)
            if to_cds:
                body: dict[str, Any] = {
                    CDS_KEY: key,
                    CDS_FIELD: value_text(seq, False),
                    "msdyn_company@odata.bind": f"/cdm_companies({company})",
                }
                return Call("POST", f"{info.cds_url}/{CDS_SET}", headers, json.dumps(body).encode())
            body = {"dataAreaId": "usmf", SCM_KEY: key, SCM_FIELD: value_text(seq, False)}
            return Call("POST", f"{info.scm_url}/{SCM_SET}", headers, json.dumps(body).encode())

        def update(record: int, seq: int) -> Call:
            key = recording.key(record)
            if to_cds:
                segment = key_segment({"_msdyn_company_value": company, CDS_KEY: key})
                body = {CDS_FIELD: value_text(seq, True)}
                return Call(
                    "PATCH",
                    f"{info.cds_url}/{CDS_SET}{segment}",
                    (*headers, ("If-Match", "*")),
                    json.dumps(body).encode(),
                )
            segment = key_segment({"dataAreaId": "usmf", SCM_KEY: key})
            body = {SCM_FIELD: value_text(seq, True)}
            return Call("PATCH", f"{info.scm_url}/{SCM_SET}{segment}", headers, json.dumps(body).encode())

        creates = await _phase(
            sandbox, recording, [(n.record, create(n.record, n.seq)) for n in recording.creates], lanes
        )
        updates = await _phase(
            sandbox, recording, [(n.record, update(n.record, n.seq)) for n in recording.updates], lanes
        )
        return Rates(
            len(recording.creates) / creates,
            len(recording.updates) / updates,
            _mismatches(sandbox, recording),
        )


@dataclass
class Direction:
    name: str
    raw: Rates
    bridge: Rates
    relay: Rates


async def run_direction(
    state_dir: Path, workdir: Path, source: str, *, records: int, updates: int, lanes: int, keys: Keys
) -> Direction:
    recording = await record(state_dir, source, records, updates, f"L{source[0].upper()}", keys)
    raw = await run_raw(state_dir, recording, lanes=lanes)
    bridge = await run_process(
        state_dir, workdir / f"live-{source}-bridge", recording, "bridge", keys, lanes=lanes
    )
    relay = await run_process(
        state_dir, workdir / f"live-{source}-relay", recording, "relay", keys, lanes=lanes
    )
    name = "F&O -> Dataverse" if source == "scm" else "Dataverse -> F&O"
    return Direction(name, raw, bridge, relay)


async def run_scaling(
    state_dir: Path, workdir: Path, sizes: list[int], changes: dict[int, int], *, lanes: int, keys: Keys
) -> dict[int, float]:
    """Bridge update throughput (F&O -> Dataverse) with ``size`` distinct records."""
    out: dict[int, float] = {}
    for size in sizes:
        recording = await record(state_dir, "scm", size, changes[size], f"S{len(str(size))}", keys)
        started = time.perf_counter()
        rates = await run_process(
            state_dir, workdir / f"scale-{size}", recording, "bridge", keys, lanes=lanes
        )
        if rates.mismatched:
            raise RuntimeError(
                f"scaling {size}: {rates.mismatched} records did not end with the newest value"
            )
        out[size] = rates.updates_per_s
        took = time.perf_counter() - started
        print(f"  scaling {size:>6} records: {rates.updates_per_s:,.0f} changes/s ({took:.0f}s)")
    return out
