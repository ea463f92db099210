"""Work orders end to end: documents of a header and 10 lines per second, from a person's saves in
Dataverse to the sales order with its lines in F&O, against the same sales orders written straight
to the F&O emulator, one ``$batch`` change set per document, in the same run.

The bridge runs in its own process (``dualwrite serve``, the ``work_order`` map of mappings/, the
Dataverse steps registered through the Web API as ``dualwrite register`` does, asynchronous). Both
emulators and the person live in the benchmark's process, seeded with the Field Service reference
data (bridge/sandbox/fsseed.py). A person saves each work order as Field Service users do: the header,
then its lines one save each (5 product lines, 5 service lines), ``lanes`` work orders at a time. The
clock stops when F&O holds every header and every line. The raw run writes the same documents to F&O
directly: one change set per document (header + 10 lines), ``lanes`` at a time.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import MAPPINGS, client_ssl, ratio, sandbox_config, wait_until
from bench.live import Keys
from bridge.core.mapping import load_mappings
from bridge.demo import point_at_bridge
from bridge.sandbox.fsseed import PRICE_LIST, UNITS, account_id, product_id, seed_reference
from bridge.sandbox.runtime import Sandbox
from bridge.sandbox.schema.fs_dataverse import LINE_ESTIMATED, WO_SCHEDULED
from bridge.systems.auth import TokenProvider
from bridge.systems.dataverse import DataverseClient
from bridge.wire.batch import BatchRequest, BatchResponse, ChangeSet, parse_batch_response, write_requests

LINES_PER_DOC = 10
TIMEOUT = 300.0
HEADERS, LINES = "CDSSalesOrderHeaders", "CDSSalesOrderLinesV2"


@dataclass
class WorkOrderResult:
    docs: int
    lines_per_doc: int
    docs_per_s: float
    raw_docs_per_s: float
    seconds: float
    raw_seconds: float
    missing_lines: int

    @property
    def ratio_to_raw(self) -> float:
        return ratio(self.docs_per_s, self.raw_docs_per_s)


def _lines(n: int) -> list[tuple[str, dict[str, Any]]]:
    """Five product lines (positive line order) and five service lines of work order ``n``."""
    out: list[tuple[str, dict[str, Any]]] = []
    for i in range(1, LINES_PER_DOC // 2 + 1):
        product = "FS-PUMP" if i % 2 else "FS-FILTER"
        out.append(
            (
                "msdyn_workorderproducts",
                {
                    "msdyn_Product@odata.bind": f"/products({product_id(product)})",
                    "msdyn_Unit@odata.bind": f"/uoms({UNITS['ea'][1]})",
                    "msdyn_linestatus": LINE_ESTIMATED,
                    "msdyn_allocated": True,
                    "msdyn_estimatequantity": float(i + n % 3),
                    "msdyn_lineorder": i,
                },
            )
        )
        out.append(
            (
                "msdyn_workorderservices",
                {
                    "msdyn_Service@odata.bind": f"/products({product_id('FS-REPAIR')})",
                    "msdyn_Unit@odata.bind": f"/uoms({UNITS['hr'][1]})",
                    "msdyn_linestatus": LINE_ESTIMATED,
                    "msdyn_estimateduration": 30 * i,
                    "msdyn_lineorder": i,
                },
            )
        )
    return out


class _Person:
    def __init__(self, http: aiohttp.ClientSession, sandbox: Any) -> None:
        self.http, self.info = http, sandbox.info
        self.cds = {"Authorization": f"Bearer {sandbox.token('user', 'dataverse')}"}
        self.scm = {"Authorization": f"Bearer {sandbox.token('user', 'fno')}"}

    async def _post(self, url: str, body: dict[str, Any]) -> str:
        async with self.http.post(url, json=body, headers=self.cds) as resp:
            if resp.status != 204:
                raise RuntimeError(f"POST {url}: {resp.status} {await resp.text()}")
            return resp.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")

    async def work_order(self, n: int) -> None:
        header = {
            "msdyn_name": f"WOB-{n:05d}",
            "msdyn_systemstatus": WO_SCHEDULED,
            "msdyn_ServiceAccount@odata.bind": f"/accounts({account_id('FS-C001')})",
            "msdyn_PriceList@odata.bind": f"/pricelevels({PRICE_LIST})",
        }
        header_id = await self._post(f"{self.info.cds_url}/msdyn_workorders", header)
        for entity_set, body in _lines(n):
            bound = {**body, "msdyn_WorkOrder@odata.bind": f"/msdyn_workorders({header_id})"}
            await self._post(f"{self.info.cds_url}/{entity_set}", bound)

    async def sales_order(self, n: int) -> None:
        """The same document as one F&O change set: the header and its 10 lines."""
        number, base = f"RAW-{n:05d}", self.info.scm_url + "/"
        header = {
            "SalesOrderNumber": number,
            "OrderingCustomerAccountNumber": "FS-C001",
            "SalesOrderOriginCode": "WorkOrder",
            "ExternalWorkOrderStatus": "OpenScheduled",
        }
        parts = [
            BatchRequest(
                "POST", base + HEADERS, {"content-type": "application/json"}, json.dumps(header).encode(), "1"
            )
        ]
        for i, (entity_set, body) in enumerate(_lines(n), start=2):
            service = entity_set == "msdyn_workorderservices"
            line = {
                "SalesOrderNumber": number,
                "LineCreationSequenceNumber": -body["msdyn_lineorder"]
                if service
                else body["msdyn_lineorder"],
                "ProductNumber": "FS-REPAIR"
                if service
                else ("FS-PUMP" if body["msdyn_lineorder"] % 2 else "FS-FILTER"),
                "OrderedSalesQuantity": body["msdyn_estimateduration"] / 60
                if service
                else body["msdyn_estimatequantity"],
                "SalesUnitSymbol": "hr" if service else "ea",
            }
            parts.append(
                BatchRequest(
                    "POST",
                    base + LINES,
                    {"content-type": "application/json"},
                    json.dumps(line).encode(),
                    str(i),
                )
            )
        ctype, body_bytes = write_requests([ChangeSet(parts)])
        async with self.http.post(
            f"{self.info.scm_url}/$batch", data=body_bytes, headers={**self.scm, "Content-Type": ctype}
        ) as resp:
            raw = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"$batch {number}: {resp.status} {raw[:500]!r}")
            answers = parse_batch_response(raw, resp.headers["Content-Type"])
            statuses = [r.status for r in answers[0]] if isinstance(answers[0], list) else [answers[0].status]
            if any(s != 201 for s in statuses) or isinstance(answers[0], BatchResponse):
                raise RuntimeError(f"$batch {number}: {statuses}")


async def _lanes(docs: int, lanes: int, send: Any) -> None:
    queue = list(range(docs))

    async def lane() -> None:
        while queue:
            await send(queue.pop(0))

    await asyncio.gather(*(lane() for _ in range(min(lanes, docs))))


def _count(sandbox: Any, entity_set: str, prefix: str) -> int:
    store = sandbox.fno.store
    ts = store.table(entity_set)
    return int(store.count(ts, where_sql='"SalesOrderNumber" LIKE ?', params=[f"{prefix}%"]))


async def run_workorders(
    state_dir: Path, workdir: Path, *, keys: Keys, docs: int, lanes: int
) -> WorkOrderResult:
    async with Sandbox(sandbox_config(state_dir, webhook_timeout=60.0)) as sandbox:
        info = sandbox.info
        seed_reference(sandbox.dataverse, sandbox.fno)
        proc = keys.bridge(info, workdir / "workorder-bridge")
        await proc.start()
        try:
            tokens = TokenProvider(
                info.authority, info.client_id, info.client_secret, info.cds_scope, ca_file=info.ca_file
            )
            async with DataverseClient(info.cds_url, tokens, ca_file=info.ca_file) as cds:
                await point_at_bridge(
                    sandbox,
                    cds,
                    load_mappings(MAPPINGS),
                    proc.url,
                    cds_key=keys.cds,
                    scm_key=keys.scm,
                    mode="async",
                )
            connector = aiohttp.TCPConnector(ssl=client_ssl(info.ca_file), limit=lanes * 2)
            async with aiohttp.ClientSession(connector=connector, trust_env=False) as http:
                person = _Person(http, sandbox)
                expected = docs * LINES_PER_DOC
                started = time.perf_counter()
                await _lanes(docs, lanes, person.work_order)
                try:
                    done = await wait_until(
                        lambda: (
                            _count(sandbox, HEADERS, "WOB-") >= docs
                            and _count(sandbox, LINES, "WOB-") >= expected
                        ),
                        TIMEOUT,
                    )
                except TimeoutError:
                    done = time.perf_counter()  # what did not arrive is reported as missing lines
                seconds = done - started
                missing = expected - _count(sandbox, LINES, "WOB-")
                raw_started = time.perf_counter()
                await _lanes(docs, lanes, person.sales_order)
                raw_seconds = time.perf_counter() - raw_started
        finally:
            proc.stop()
    return WorkOrderResult(
        docs=docs,
        lines_per_doc=LINES_PER_DOC,
        docs_per_s=docs / seconds,
        raw_docs_per_s=docs / raw_seconds,
        seconds=seconds,
        raw_seconds=raw_seconds,
        missing_lines=missing,
    )
