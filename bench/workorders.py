"""Work orders with 10 lines each, end to end: documents per second through the bridge, against the
same sales orders written straight to the F&O emulator (one ``$batch`` change set per document, the
bridge's own unit) in the same run (issue 23: ``workorder_docs_per_s``, ``workorder_ratio_to_raw``).

The bridge runs in its own process (``dualwrite serve``, asynchronous Dataverse steps, as the other
throughput runs); both emulators and the person live in the benchmark's process. Set-up, not timed:
a customer, a unit and an externally maintained product on both sides, then the work orders, each
with its 10 product lines, created Open-Unscheduled (so the template's filter keeps them out while
their lines are saved). Timed: the person schedules every work order (``lanes`` at a time); each
schedule save makes the bridge read the work order and its lines and write header and lines to F&O
as one change set. The clock stops when F&O holds every line. The raw run then sends the same
documents (other numbers) as the same change sets, ``lanes`` at a time, with the user's client.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import MAPPINGS, client_ssl, sandbox_config, wait_until
from bench.live import Keys
from bench.procs import BridgeProcess
from bridge.core.mapping import load_mappings
from bridge.demo import point_at_bridge
from bridge.sandbox.runtime import Sandbox
from bridge.systems.auth import TokenProvider
from bridge.systems.batch import BatchOperation, build_changeset
from bridge.systems.dataverse import DataverseClient

LINES = 10
SCHEDULED = 690970001
HEADERS, LINES_SET = "CDSSalesOrderHeaders", "CDSSalesOrderLinesV2"


@dataclass
class WorkOrderResult:
    documents: int
    lines_per_document: int
    bridge_docs_per_s: float
    raw_docs_per_s: float

    @property
    def ratio_to_raw(self) -> float:
        return self.bridge_docs_per_s / self.raw_docs_per_s if self.raw_docs_per_s else float("nan")


class _Person:
    def __init__(self, http: aiohttp.ClientSession, sandbox: Any) -> None:
        self.http = http
        self.info = sandbox.info
        self.cds = {
            "Authorization": f"Bearer {sandbox.token('user', 'dataverse')}",
            "Prefer": "return=representation",
        }
        self.scm = {"Authorization": f"Bearer {sandbox.token('user', 'fno')}"}

    async def dv(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        async with self.http.request(
            method, f"{self.info.cds_url}/{path}", json=body, headers=self.cds
        ) as resp:
            text = await resp.text()
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path}: {resp.status} {text[:300]}")
            return dict(json.loads(text)) if text else {}

    async def fo(self, path: str, body: dict[str, Any]) -> None:
        async with self.http.post(f"{self.info.scm_url}/{path}", json=body, headers=self.scm) as resp:
            if resp.status >= 300:
                raise RuntimeError(f"POST {path}: {resp.status} {(await resp.text())[:300]}")

    async def changeset(self, operations: list[BatchOperation]) -> None:
        content_type, body = build_changeset(self.info.scm_url, operations)
        headers = {**self.scm, "Content-Type": content_type}
        async with self.http.post(f"{self.info.scm_url}/$batch", data=body, headers=headers) as resp:
            text = await resp.text()
            if resp.status >= 300 or " 20" not in text:
                raise RuntimeError(f"$batch: {resp.status} {text[:300]}")


async def _setup(person: _Person) -> dict[str, str]:
    await person.fo(
        "CustomersV3", {"dataAreaId": "usmf", "CustomerAccount": "BENCH-1", "CustomerGroupId": "10"}
    )
    await person.fo(
        "CDSReleasedDistinctProducts",
        {
            "dataAreaId": "usmf",
            "ProductNumber": "BENCH-ITEM",
            "ProductType": "Item",
            "IsStockedProduct": "Yes",
        },
    )
    group = await person.dv("POST", "uomschedules", {"name": "Bench units", "baseuomname": "ea"})
    unit = await person.dv(
        "POST",
        "uoms",
        {
            "name": "each",
            "msdyn_symbol": "ea",
            "uomscheduleid@odata.bind": f"/uomschedules({group['uomscheduleid']})",
        },
    )
    account = await person.dv("POST", "accounts", {"name": "Bench customer", "accountnumber": "BENCH-1"})
    product = await person.dv(
        "POST",
        "products",
        {
            "productnumber": "BENCH-ITEM",
            "name": "Bench item",
            "msdynce_isexternallymaintained": True,
            "defaultuomscheduleid@odata.bind": f"/uomschedules({group['uomscheduleid']})",
            "defaultuomid@odata.bind": f"/uoms({unit['uomid']})",
        },
    )
    return {"account": account["accountid"], "unit": unit["uomid"], "product": product["productid"]}


async def _work_order(person: _Person, ids: dict[str, str], number: str) -> str:
    wo = await person.dv(
        "POST",
        "msdyn_workorders",
        {"msdyn_name": number, "msdyn_ServiceAccount@odata.bind": f"/accounts({ids['account']})"},
    )
    for line in range(1, LINES + 1):
        await person.dv(
            "POST",
            "msdyn_workorderproducts",
            {
                "msdyn_WorkOrder@odata.bind": f"/msdyn_workorders({wo['msdyn_workorderid']})",
                "msdyn_Product@odata.bind": f"/products({ids['product']})",
                "msdyn_Unit@odata.bind": f"/uoms({ids['unit']})",
                "msdyn_lineorder": line,
                "msdyn_estimatequantity": line,
                "msdyn_allocated": True,
            },
        )
    return str(wo["msdyn_workorderid"])


def _document(number: str) -> list[BatchOperation]:
    """The change set the bridge writes for one scheduled work order (header, then its lines)."""
    head = {
        "dataAreaId": "usmf",
        "SalesOrderNumber": number,
        "OrderingCustomerAccountNumber": "BENCH-1",
        "SalesOrderOriginCode": "WorkOrder",
        "ExternalWorkOrderStatus": "OpenScheduled",
        "CustomersOrderReference": number,
    }
    ops = [BatchOperation("POST", HEADERS, head)]
    for line in range(1, LINES + 1):
        body = {
            "dataAreaId": "usmf",
            "SalesOrderNumber": number,
            "LineCreationSequenceNumber": line,
            "ProductNumber": "BENCH-ITEM",
            "OrderedSalesQuantity": line,
            "SalesUnitSymbol": "ea",
        }
        ops.append(BatchOperation("POST", LINES_SET, body))
    return ops


async def _in_lanes(lanes: int, jobs: list[Any]) -> float:
    """Run the coroutine factories ``jobs``, ``lanes`` at a time; the seconds it took."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def lane() -> None:
        while not queue.empty():
            await queue.get_nowait()()

    start = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(lanes)))
    return time.perf_counter() - start


async def run_workorders(
    state_dir: Path, workdir: Path, *, keys: Keys, documents: int, lanes: int
) -> WorkOrderResult:
    async with Sandbox(sandbox_config(state_dir, webhook_timeout=60.0)) as sandbox:
        proc = keys.one_process().bridge(sandbox.info, workdir / "workorder-bridge")
        await proc.start()
        try:
            await _register(sandbox, proc.url, keys)
            connector = aiohttp.TCPConnector(ssl=client_ssl(sandbox.info.ca_file), limit=0)
            async with aiohttp.ClientSession(connector=connector, trust_env=False) as http:
                person = _Person(http, sandbox)
                ids = await _setup(person)
                numbers = [f"WO-B{n:05d}" for n in range(documents)]
                wo_ids = [await _work_order(person, ids, number) for number in numbers]
                await sandbox.notifier.drain()
                await _idle(proc)  # the line saves, filtered out (Open-Unscheduled) and skipped

                def lines_written() -> bool:
                    return len(sandbox.fno.rows(LINES_SET)) >= documents * LINES

                def schedule(wo_id: str) -> Any:
                    return lambda: person.dv(
                        "PATCH", f"msdyn_workorders({wo_id})", {"msdyn_systemstatus": SCHEDULED}
                    )

                start = time.perf_counter()
                await _in_lanes(lanes, [schedule(w) for w in wo_ids])
                await wait_until(lines_written, 300)
                bridge_s = time.perf_counter() - start
                raw = [f"RAW-{n:05d}" for n in range(documents)]
                raw_s = await _in_lanes(lanes, [lambda n=n: person.changeset(_document(n)) for n in raw])
        finally:
            proc.stop()
    return WorkOrderResult(documents, LINES, documents / bridge_s, documents / raw_s)


async def _idle(proc: BridgeProcess, timeout: float = 120.0) -> None:
    """Until the bridge has nothing queued (its maps' queue depths, through the operations API)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        maps = (await proc.ops("GET", "/api/maps"))["maps"]
        if sum(m["queue_depth"] for m in maps) == 0:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the bridge did not empty its queue")


async def _register(sandbox: Any, bridge_url: str, keys: Keys) -> None:
    """Asynchronous Dataverse steps, registered through the Web API as ``dualwrite register`` does."""
    info = sandbox.info
    tokens = TokenProvider(
        info.authority, info.client_id, info.client_secret, info.cds_scope, ca_file=info.ca_file
    )
    async with DataverseClient(info.cds_url, tokens, ca_file=info.ca_file) as cds:
        await point_at_bridge(
            sandbox,
            cds,
            load_mappings(MAPPINGS),
            bridge_url,
            cds_key=keys.cds,
            scm_key=keys.scm,
            mode="async",
        )
