"""``dualwrite sync initial`` as its own process (no bridge runs): a dry run writes nothing, a run
killed with SIGKILL midway resumes from its checkpoint, and the end state is the same with no record
written twice (the emulators' write logs count every write, change-set parts included)."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.procs import BridgeProcess
from bridge.core.mapping import load_mappings
from tests.e2e.initial_data import still_different

MAPPINGS = load_mappings(Path(__file__).resolve().parents[2] / "mappings")
ROOT = Path(__file__).resolve().parents[2]


def _seed(sandbox: Any, *, only_cds: int, both: int) -> None:
    company = sandbox.dataverse.rows("cdm_companies")[0]["cdm_companyid"]
    sandbox.dataverse.seed(
        "msdyn_shipvias",
        [
            {"msdyn_name": f"M{n:04d}", "msdyn_description": f"cds {n}", "_msdyn_company_value": company}
            for n in range(only_cds + both)
        ],
    )
    sandbox.fno.seed(
        "DeliveryModesV2",
        [
            {"dataAreaId": "usmf", "ModeCode": f"M{n:04d}", "ModeDescription": f"old {n}"}
            for n in range(only_cds, only_cds + both)
        ],
    )


def _bridge_writes(service: Any, client_id: str) -> list[str]:
    return [w.record_id for w in service.write_log if w.client_id == client_id]


class SyncCommand:
    """``python -m bridge.cli sync initial ... --json`` on a bridge's configuration (not started)."""

    def __init__(self, sandbox: Any, workdir: Path) -> None:
        self.config = BridgeProcess(
            sandbox.info, workdir, cds_key=secrets.token_urlsafe(16), scm_key=secrets.token_urlsafe(16)
        )
        text = self.config.config.read_text(encoding="utf-8")
        self.config.config.write_text(text + "[initial]\npage_size = 40\nbatch_size = 20\n", encoding="utf-8")
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, *extra: str) -> asyncio.subprocess.Process:
        args = ["-m", "bridge.cli", "--log-level", "WARNING", "sync", "initial", "--map", "ship_via"]
        args += ["--master", "cds", "--json", "--config", str(self.config.config), *extra]
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            cwd=ROOT,
            env=self.config.environment(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return self.proc

    async def finish(
        self, proc: asyncio.subprocess.Process, timeout: float = 90.0
    ) -> tuple[int, dict[str, Any]]:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        assert proc.returncode is not None
        assert out.strip(), err.decode()[-3000:]
        return proc.returncode, json.loads(out)


async def test_a_dry_run_writes_nothing_and_a_killed_run_resumes_without_writing_twice(
    sandbox: Any, tmp_path: Path
) -> None:
    only_cds, both = 300, 160
    _seed(sandbox, only_cds=only_cds, both=both)
    bridge_id = sandbox.info.client_id
    cmd = SyncCommand(sandbox, tmp_path / "bridge")

    code, dry = await cmd.finish(await cmd.start("--dry-run"))
    assert code == 0, dry
    assert dry["dry_run"] is True and dry["planned_total"] == only_cds + both
    assert dry["maps"]["ship_via"]["scm"]["written"] == only_cds + both  # what it would write
    assert dry["maps"]["ship_via"]["cds"]["unchanged"] == only_cds + both
    planned = {(p["key"], p["operation"]) for p in dry["planned"]}
    assert ("M0000", "create") in planned and (f"M{only_cds:04d}", "update") in planned
    assert _bridge_writes(sandbox.fno, bridge_id) == [] and _bridge_writes(sandbox.dataverse, bridge_id) == []

    proc = await cmd.start()
    for _ in range(600):  # kill it once it has written some but not all
        if len(_bridge_writes(sandbox.fno, bridge_id)) >= 120 or proc.returncode is not None:
            break
        await asyncio.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    written_before = len(_bridge_writes(sandbox.fno, bridge_id))
    assert 0 < written_before < only_cds + both, "killed midway"

    code, report = await cmd.finish(await cmd.start())
    assert code == 0, report
    assert report["status"] == "done" and report["run_id"] == 2  # the killed run, resumed
    writes = _bridge_writes(sandbox.fno, bridge_id)
    assert len(writes) == only_cds + both, "every record written exactly once"
    assert max(Counter(writes).values()) == 1
    assert _bridge_writes(sandbox.dataverse, bridge_id) == []
    assert still_different(sandbox, MAPPINGS, "ship_via") == []

    code, again = await cmd.finish(await cmd.start())  # a re-run writes only what still differs
    assert code == 0 and again["run_id"] == 3
    assert again["maps"]["ship_via"]["scm"]["written"] == 0
    assert len(_bridge_writes(sandbox.fno, bridge_id)) == only_cds + both


async def test_sync_errors_without_a_bridge_reads_the_state_store(sandbox: Any, tmp_path: Path) -> None:
    company = sandbox.dataverse.rows("cdm_companies")[0]["cdm_companyid"]
    sandbox.dataverse.seed(
        "msdyn_shipvias",
        [{"msdyn_name": "A-CODE-TOO-LONG", "msdyn_description": "x", "_msdyn_company_value": company}],
    )
    cmd = SyncCommand(sandbox, tmp_path / "bridge")
    code, report = await cmd.finish(await cmd.start())
    assert code == 1 and report["maps"]["ship_via"]["scm"]["failed"] == 1
    args = ["-m", "bridge.cli", "sync", "errors", "--json", "--config", str(cmd.config.config)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, cwd=ROOT, env=cmd.config.environment(), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    listed = json.loads(out)
    assert proc.returncode == 0 and listed["total"] == 1
    assert listed["items"][0]["key"] == "A-CODE-TOO-LONG" and listed["items"][0]["status"] == 400
