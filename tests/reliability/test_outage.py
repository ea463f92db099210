"""The target system down for a while under load: first answering 503, then refusing connections.

Asynchronous changes (F&O data events) wait in the queue and are all applied after recovery, once
each and in order. Synchronous saves (a Dataverse synchronous step) get an error answer, so Dataverse
rolls them back: the record exists on neither side."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from bridge.sandbox.faults import FaultSettings
from bridge.settings import SyncSettings
from bridge.systems.http import RetryPolicy
from tests.reliability.conftest import Rig, forms
from tests.reliability.helpers import CDS_KEY, SCM_KEY, assert_once_and_in_order, converge, stream


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nobody listens once the socket is closed


async def _outage(rig: Rig, system: str, seconds: float) -> None:
    """``seconds`` of 503 answers, then ``seconds`` of refused connections, then recovery."""
    faults = rig.sandbox.faults["dataverse" if system == "cds" else "fno"]
    http = (rig.bridge.cds if system == "cds" else rig.bridge.scm).http
    faults.configure(FaultSettings(unavailable_rate=1.0))
    await asyncio.sleep(seconds)
    faults.clear()
    real = http.base_url
    http.base_url = real.replace(real.split("/")[2], f"127.0.0.1:{_closed_port()}")
    await asyncio.sleep(seconds)
    http.base_url = real


@forms(short=(20, 200, 1.0), long=(200, 3000, 5.0))
async def test_async_changes_wait_out_an_outage_and_are_all_applied(
    rig: Rig, size: tuple[int, int, float]
) -> None:
    records, updates, seconds = size
    keys = [f"O{n:04d}" for n in range(records)]
    changes = asyncio.create_task(
        stream(keys, updates, rig.person.scm_create, rig.person.scm_update, lanes=4)
    )
    await asyncio.sleep(0.2)
    await _outage(rig, "cds", seconds)
    last = await changes
    assert await converge(rig.sandbox) == last
    assert sum(1 for e in rig.sandbox.faults["dataverse"].log if e.kind == "unavailable") > 0
    assert_once_and_in_order(rig.cds_log, rig.bridge_client, last)


@pytest.fixture
def webhook_mode() -> str:
    return "sync"


@pytest.fixture
def sync_settings() -> SyncSettings:
    # A short sync budget: each failing save costs it twice (Dataverse retries a 503 once), and the
    # emulator runs one save at a time.
    return SyncSettings(
        backoff_initial_s=0.05, backoff_max_s=0.3, max_attempts=200, sync_budget_s=1, lease_s=5
    )


@forms(short=1, long=5)
async def test_sync_saves_fail_and_roll_back_while_the_target_is_down(rig: Rig, size: int) -> None:
    faults = rig.sandbox.faults["fno"]
    # The long form fails more saves than the default alert rule allows (10 in 15 min); the rule would
    # then pause the map, and a paused map queues saves instead of refusing them (docs/operations.md).
    # That is tested in tests/ops; here the rule is raised so the synchronous failure path is what runs.
    token = rig.bridge.settings.admin_token.get_secret_value()
    auth = {"Authorization": f"Bearer {token}"}
    async with rig.http.get(f"{rig.bridge.url}/api/alerts", headers=auth) as resp:
        rules = (await resp.json())["rules"]
    for rule in rules:  # the default: every map, pause after 10 in 15 min
        async with rig.http.put(
            f"{rig.bridge.url}/api/alerts/{rule['id']}",
            json={"failures": 100_000, "minutes": 1},
            headers=auth,
        ) as resp:
            assert resp.status == 200, await resp.text()

    async def saves(tag: str) -> list[int]:
        return list(
            await asyncio.gather(*(rig.person.cds_create(f"{tag}{n}", "during") for n in range(size)))
        )

    faults.configure(FaultSettings(unavailable_rate=1.0))
    during_503 = await saves("S5")
    faults.clear()
    real = rig.bridge.scm.http.base_url
    rig.bridge.scm.http.base_url = real.replace(real.split("/")[2], f"127.0.0.1:{_closed_port()}")
    during_refused = await saves("SR")
    rig.bridge.scm.http.base_url = real
    assert all(s >= 400 for s in during_503 + during_refused), (during_503, during_refused)
    await asyncio.sleep(0.5)
    cds_keys = {r[CDS_KEY] for r in rig.sandbox.dataverse.rows("msdyn_shipvias")}
    scm_keys = {r[SCM_KEY] for r in rig.sandbox.fno.rows("DeliveryModesV2")}
    assert not {k for k in cds_keys | scm_keys if k.startswith(("S5", "SR"))}  # rolled back, never applied
    assert await rig.person.cds_create("AFTER", "recovered") == 204  # and the next save goes through
    assert (await converge(rig.sandbox)).get("AFTER") == "recovered"


def _lines(caplog: pytest.LogCaptureFixture, logger: str, *needles: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == logger and all(n in r.getMessage() for n in needles)
    ]


async def _ops(rig: Rig, path: str) -> tuple[int, Any]:
    token = rig.bridge.settings.admin_token.get_secret_value()
    async with rig.http.get(f"{rig.bridge.url}{path}", headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, await resp.json()


async def test_an_outage_is_visible_while_it_lasts(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """A change retrying through an outage logs each failed attempt with Dataverse's own text, its
    map card says "retrying" with that text and the next attempt, and readiness names the system,
    its URL and the error; all of it clears once the change is applied."""
    caplog.set_level(logging.INFO)
    cds_http = rig.bridge.cds.http
    cds_http.retry = RetryPolicy(attempts=5, initial=0.05, maximum=0.1)  # the client's own retries, quick
    faults = rig.sandbox.faults["dataverse"]
    faults.configure(FaultSettings(unavailable_rate=1.0))
    assert await rig.person.scm_create("OUT1", "during") == 201  # an F&O data event: asynchronous

    # The engine's line per failed attempt of the change: map, record, attempt n of m, the text, the wait.
    unavailable = "cds 503: The service is temporarily unavailable. Try again later."
    line = (await _eventually(lambda: _lines(caplog, "bridge.engine.outcome", "attempt 2 of 200")))[0]
    assert line.startswith(
        f"map ship_via, record USMF/OUT1 (scm->cds): attempt 2 of 200 failed: {unavailable}; "
    )
    assert re.search(r"; next attempt in \d+\.\ds$", line), line
    # The HTTP client's line per failed request inside one attempt: system, URL, attempt n of m.
    client = _lines(caplog, "bridge.systems.http", "attempt 2 of 5", unavailable)
    assert client and client[0].startswith("cds: ") and cds_http.base_url in client[0], client[:3]

    # The map card: retrying, with the current error and the next attempt; last_error is that error too.
    _, maps = await _ops(rig, "/api/maps")
    card = next(m for m in maps["maps"] if m["entity"] == "ship_via")
    assert card["retrying"]["count"] == 1 and card["retrying"]["error"] == unavailable
    assert datetime.fromisoformat(card["retrying"]["next_attempt_at"]) >= datetime.fromisoformat(
        card["retrying"]["at"]
    )
    assert (card["last_error"]["kind"], card["last_error"]["message"]) == ("retrying", unavailable)

    # Readiness: the system, its URL and its answer; never a bare "TimeoutError: ".
    async with rig.http.get(f"{rig.bridge.url}/readyz") as resp:
        ready = await resp.json()
    assert resp.status == 503 and ready["cds"] is False
    assert ready["details"]["cds"] == f"Dataverse at {cds_http.base_url}: {unavailable}"

    # Then connections refused: the network's error, in the log and in readiness.
    faults.clear()
    real = cds_http.base_url
    cds_http.base_url = real.replace(real.split("/")[2], f"127.0.0.1:{_closed_port()}")
    refused = await _eventually(lambda: _lines(caplog, "bridge.engine.outcome", "OUT1", "connection failed"))
    assert "cds: connection failed: Cannot connect to host 127.0.0.1:" in refused[0]
    async with rig.http.get(f"{rig.bridge.url}/readyz") as resp:
        details = (await resp.json())["details"]["cds"]
    assert details.startswith(f"Dataverse at {real}: cds: connection failed: Cannot connect"), details
    assert "TimeoutError" not in details

    # Recovery: applied, and the card no longer retrying.
    cds_http.base_url = real
    assert (await converge(rig.sandbox)).get("OUT1") == "during"
    card = next(m for m in (await _ops(rig, "/api/maps"))[1]["maps"] if m["entity"] == "ship_via")
    assert card["retrying"] is None


async def _eventually(lines: Callable[[], list[str]], timeout: float = 30.0) -> list[str]:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (found := lines()):
        assert asyncio.get_running_loop().time() < deadline, "no such log line"
        await asyncio.sleep(0.05)
    return found
