"""Initial sync: ``dualwrite sync initial`` (its own process, no bridge running) over N ship vias
against the emulators, beside the plain script ``bench.initial_raw`` doing the same reads and the same
``$batch`` writes with nothing else, in the same run; and the command's peak memory at two sizes
(it streams pages, so it must not grow with N).

Each run gets fresh emulators holding the same data: N records on Dataverse, half of them also on
F&O with another description, so the run reads 1.5 N rows and writes N (N/2 creates, N/2 updates)
with Dataverse as the master. Rates are records brought together per minute, timed inside each
process (its start-up left out of both); the largest size runs twice for each, alternating, and
the better of each counts.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import MAPPINGS, ROOT, ratio, rss_mb, sandbox_config
from bench.procs import BridgeProcess
from bridge.sandbox.runtime import Sandbox

PAGE_SIZE = 5000
BATCH_SIZE = 1000


@dataclass
class InitialResult:
    records: int
    records_per_min: float
    raw_records_per_min: float
    peak_rss_mb: dict[int, float] = field(default_factory=dict)  # records -> the command's peak RSS
    written: int = 0
    raw_written: int = 0
    seconds: float = 0.0
    raw_seconds: float = 0.0

    @property
    def ratio_to_raw(self) -> float:
        return ratio(self.records_per_min, self.raw_records_per_min)


def _seed(sandbox: Any, n: int) -> None:
    company = sandbox.dataverse.rows("cdm_companies")[0]["cdm_companyid"]
    step = 10_000
    for start in range(0, n, step):
        sandbox.dataverse.seed(
            "msdyn_shipvias",
            [
                {"msdyn_name": f"I{i:07d}", "msdyn_description": f"cds {i}", "_msdyn_company_value": company}
                for i in range(start, min(n, start + step))
            ],
        )
    for start in range(0, n // 2, step):
        sandbox.fno.seed(
            "DeliveryModesV2",
            [
                {"dataAreaId": "usmf", "ModeCode": f"I{i:07d}", "ModeDescription": f"old {i}"}
                for i in range(start, min(n // 2, start + step))
            ],
        )


def _check(sandbox: Any, n: int) -> None:
    rows = sandbox.fno.rows("DeliveryModesV2")
    wrong = [r["ModeCode"] for r in rows if r["ModeDescription"] != f"cds {int(r['ModeCode'][1:])}"]
    if len(rows) != n or wrong:
        raise RuntimeError(f"initial sync left {n - len(rows)} missing and {len(wrong)} different on F&O")


async def _watch(proc: asyncio.subprocess.Process) -> float:
    """The process's peak RSS (VmHWM), read until it exits."""
    peak = 0.0
    while proc.returncode is None:
        peak = max(peak, rss_mb(proc.pid)[1])
        await asyncio.sleep(0.1)
    return peak


async def _command(args: list[str], env: dict[str, str]) -> tuple[dict[str, Any], float]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    watch = asyncio.create_task(_watch(proc))
    out, err = await proc.communicate()
    peak = await watch
    if proc.returncode not in (0, 1) or not out.strip():
        raise RuntimeError(f"{args[1]} exited {proc.returncode}: {err.decode()[-2000:]}")
    return json.loads(out.decode().strip().splitlines()[-1]), peak


async def _bridge_run(state_dir: Path, workdir: Path, n: int) -> tuple[dict[str, Any], float]:
    async with Sandbox(sandbox_config(state_dir)) as sandbox:
        _seed(sandbox, n)
        cfg = _bridge_config(sandbox.info, workdir / f"initial-{n}")
        args = ["-m", "bridge.cli", "--log-level", "WARNING", "sync", "initial", "--map", "ship_via"]
        args += ["--master", "cds", "--json", "--config", str(cfg.config)]
        report, peak = await _command(args, cfg.environment())
        _check(sandbox, n)
        return report, peak


def _raw_config(info: Any, workdir: Path) -> Path:
    config = workdir / "initial-raw.json"
    workdir.mkdir(parents=True, exist_ok=True)
    config.write_text(
        json.dumps(
            {
                "cds_url": info.cds_url,
                "cds_scope": info.cds_scope,
                "scm_url": info.scm_url,
                "scm_scope": info.scm_scope,
                "authority": info.authority,
                "client_id": info.client_id,
                "ca_file": info.ca_file,
                "mappings_dir": str(MAPPINGS),
                "page_size": PAGE_SIZE,
                "batch_size": BATCH_SIZE,
            }
        ),
        encoding="utf-8",
    )
    return config


def _bridge_config(info: Any, workdir: Path) -> BridgeProcess:
    """A bridge's configuration (TOML and environment) for the command; the bridge is not started."""
    cfg = BridgeProcess(info, workdir, cds_key=secrets.token_urlsafe(16), scm_key=secrets.token_urlsafe(16))
    text = cfg.config.read_text(encoding="utf-8")
    cfg.config.write_text(
        text + f"[initial]\npage_size = {PAGE_SIZE}\nbatch_size = {BATCH_SIZE}\n", encoding="utf-8"
    )
    return cfg


async def _raw_run(state_dir: Path, workdir: Path, n: int) -> dict[str, Any]:
    async with Sandbox(sandbox_config(state_dir)) as sandbox:
        _seed(sandbox, n)
        config = _raw_config(sandbox.info, workdir)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DUALWRITE_")}
        env["RAW_CLIENT_SECRET"] = sandbox.info.client_secret
        report, _ = await _command(["-m", "bench.initial_raw", str(config)], env)
        _check(sandbox, n)
        return report


async def run_initial(state_dir: Path, workdir: Path, sizes: list[int], *, rounds: int = 2) -> InitialResult:
    """``sizes``: the smaller one for the memory comparison, the largest timed against the plain
    script: ``rounds`` of each, alternating, the best of each kept (this machine's cores are shared,
    and a busy minute must not decide the ratio)."""
    n = max(sizes)
    result = InitialResult(records=n, records_per_min=0.0, raw_records_per_min=0.0)
    for size in sorted(sizes)[:-1]:
        print(f"  dualwrite sync initial, {size:,} records ...", flush=True)
        _, result.peak_rss_mb[size] = await _bridge_run(state_dir, workdir, size)
    for turn in range(rounds):
        print(f"  plain script, {n:,} records ({turn + 1}/{rounds}) ...", flush=True)
        raw = await _raw_run(state_dir, workdir, n)
        rate = raw["records"] * 60.0 / raw["seconds"]
        if rate > result.raw_records_per_min:
            result.raw_records_per_min, result.raw_written, result.raw_seconds = (
                rate,
                raw["writes"],
                raw["seconds"],
            )
        print(f"  dualwrite sync initial, {n:,} records ({turn + 1}/{rounds}) ...", flush=True)
        report, peak = await _bridge_run(state_dir, workdir, n)
        result.peak_rss_mb[n] = max(result.peak_rss_mb.get(n, 0.0), peak)
        rate = n * 60.0 / report["elapsed_s"]
        if rate > result.records_per_min:
            figures = report["maps"]["ship_via"]
            result.records_per_min, result.seconds = rate, report["elapsed_s"]
            result.written = figures["scm"]["written"] + figures["cds"]["written"]
    return result
