"""The demo banner's shell commands, run as printed (bash and curl) against the bridge between both
emulators: the write in F&O lands, and the read in Dataverse shows the ship via the bridge made."""

from __future__ import annotations

import asyncio
import json
import shutil
from typing import Any

import pytest

from bridge.demo import try_it_commands, work_order_command
from bridge.sandbox.fsseed import create_work_order, seed_reference
from tests.e2e.harness import Harness, eventually

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed"),
]


async def _bash(script: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", script, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out
    return out.decode()


async def test_banner_commands_write_in_fno_and_read_in_dataverse(env: Harness) -> None:
    info = {**env.sandbox.info.model_dump(mode="json"), **env.keys}
    write, read = try_it_commands(info)

    made = json.loads(await _bash(write))
    assert made["ModeCode"] == "Rail", made

    async def shown() -> list[dict[str, Any]] | None:
        rows = json.loads(await _bash(read))["value"]
        return rows or None

    rows = await eventually(shown, what="the ship via read back as the banner shows")
    assert [(r["msdyn_name"], r["msdyn_description"]) for r in rows] == [("Rail", "Rail freight")]


async def test_banner_command_reads_the_sales_order_made_of_the_demo_work_order(env: Harness) -> None:
    """The demo's work order, created as a person in Dataverse with its lines, read back as the banner
    prints it: the sales order in F&O with the work order's number, origin type Work order
    integration (field-service-work-order.md), its product lines positive and its service line
    negative."""
    seed_reference(env.sandbox.dataverse, env.sandbox.fno)
    made = await create_work_order(env.http, env.sandbox.info.cds_url, env.sandbox.token("user", "dataverse"))
    assert made == 4  # the header and its three lines
    info = {**env.sandbox.info.model_dump(mode="json"), **env.keys}

    async def shown() -> list[dict[str, Any]] | None:
        header, lines = _two(await _bash(work_order_command(info)))
        return [header, *lines["value"]] if len(lines.get("value", [])) == 3 else None

    header, *lines = await eventually(shown, what="the demo work order as a sales order with its lines")
    assert header["SalesOrderNumber"] == "WO-DEMO-1" and header["OrderingCustomerAccountNumber"] == "FS-C001"
    assert header["SalesOrderOriginType"] == "WorkOrderIntegration"
    assert header["ExternalWorkOrderStatus"] == "OpenScheduled"
    assert sorted((line["LineCreationSequenceNumber"], line["ProductNumber"]) for line in lines) == [
        (-1, "FS-REPAIR"),
        (1, "FS-PUMP"),
        (2, "FS-FILTER"),
    ]


def _two(output: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two JSON documents the snippet's two curl calls print one after the other."""
    decoder = json.JSONDecoder()
    first, end = decoder.raw_decode(output)
    second, _ = decoder.raw_decode(output[end:].lstrip())
    return first, second
