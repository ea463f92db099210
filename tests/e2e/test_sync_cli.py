"""``dualwrite sync initial`` and ``dualwrite sync errors`` asking a running bridge: the command posts
to /api/sync/initial, follows the run, and prints its figures (one JSON object with --json)."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from typing import Any

import pytest

from bridge import synccli
from tests.e2e.harness import Harness


@pytest.fixture
def webhook_mode() -> str:
    return "async"


def _args(h: Harness, **over: Any) -> argparse.Namespace:
    values: dict[str, Any] = {
        "maps": ["ship_via"],
        "all": False,
        "master": "cds",
        "companies": None,
        "dry_run": False,
        "failed_only": False,
        "json": True,
        "bridge_url": h.bridge.url,
        "config": None,
    }
    values.update(over)
    return argparse.Namespace(**values)


def _seed(h: Harness) -> None:
    rows = [{"msdyn_name": f"C{n}", "msdyn_description": f"d{n}"} for n in range(6)]
    rows.append({"msdyn_name": "WAY-TOO-LONG-CODE", "msdyn_description": "x"})
    h.sandbox.dataverse.seed("msdyn_shipvias", [{**r, "_msdyn_company_value": h.company_id} for r in rows])
    h.sandbox.fno.seed(
        "DeliveryModesV2", [{"dataAreaId": "usmf", "ModeCode": "C0", "ModeDescription": "old"}]
    )


async def test_the_command_runs_inside_the_bridge_and_prints_one_json_object(env: Harness) -> None:
    _seed(env)
    out = io.StringIO()
    code = await synccli.initial(_args(env, dry_run=True), env.bridge.settings, out=out)
    dry = json.loads(out.getvalue())
    assert code == 0 and dry["dry_run"] is True
    assert dry["maps"]["ship_via"]["scm"] == {
        "read": 1,
        "written": 7,
        "unchanged": 0,
        "failed": 0,
        "skipped": 0,
    }
    assert dry["maps"]["ship_via"]["cds"] == {
        "read": 7,
        "written": 0,
        "unchanged": 7,
        "failed": 0,
        "skipped": 0,
    }
    assert dry["planned_total"] == 7 and {p["key"] for p in dry["planned"]} >= {"C0", "C5"}
    registered = env.writes("cds")  # the webhook registrations, written before the test
    assert env.writes("scm") == 0 and env.writes("cds", entity_set="msdyn_shipvias") == 0  # nothing

    out = io.StringIO()
    code = await synccli.initial(_args(env), env.bridge.settings, out=out)
    report = json.loads(out.getvalue())
    assert code == 1, report  # done, one record failed
    assert report["status"] == "done" and report["run_id"] == 2
    assert (
        report["maps"]["ship_via"]["scm"]["written"] == 6 and report["maps"]["ship_via"]["scm"]["failed"] == 1
    )
    assert set(report) >= {"maps", "records_read", "rate_per_min", "elapsed_s"} and "planned" not in report
    assert env.writes("scm") == 6 and env.writes("cds") == registered

    out = io.StringIO()
    assert (
        await synccli.errors(_args(env, map="ship_via", company=None, limit=10), env.bridge.settings, out=out)
        == 0
    )
    listed = json.loads(out.getvalue())
    assert listed["total"] == 1 and listed["items"][0]["key"] == "WAY-TOO-LONG-CODE"

    text = io.StringIO()
    args = _args(env, map=None, company=None, limit=10, json=False)
    await synccli.errors(args, env.bridge.settings, out=text)
    assert "WAY-TOO-LONG-CODE: create on scm refused (400" in text.getvalue()
    assert "1 of 1 open errors" in text.getvalue()


async def test_the_text_report_shows_each_map_and_side(env: Harness) -> None:
    _seed(env)
    out = io.StringIO()
    code = await synccli.initial(_args(env, json=False, dry_run=True), env.bridge.settings, out=out)
    text = out.getvalue()
    assert code == 0
    assert "initial sync run 1 in bridge: done" in text
    assert "ship_via" in text and "Dataverse" in text and "F&O" in text
    assert "would write 7" in text and "would create scm ship_via USMF/C1: ModeDescription" in text


async def test_a_second_run_while_one_runs_is_refused(env: Harness) -> None:
    _seed(env)
    none = await env.ops("GET", "/api/sync/initial")
    assert none.status == 200 and none.body == {"run": None}  # none ran since the bridge started
    first = await env.ops("POST", "/api/sync/initial", {"maps": ["ship_via"], "master": "cds"})
    second = await env.ops("POST", "/api/sync/initial", {"maps": ["ship_via"], "master": "cds"})
    assert first.status == 202
    assert second.status in (409, 202)  # 202 only if the first finished in between
    bad = await env.ops("POST", "/api/sync/initial", {"maps": ["nope"], "master": "cds"})
    assert bad.status in (400, 409)
    assert (await env.ops("POST", "/api/sync/initial", {"master": "both"})).status == 400


async def test_a_run_that_failed_as_a_whole_resumes_when_asked_again(env: Harness) -> None:
    _seed(env)
    faults = env.sandbox.faults["fno"]
    faults.update(unavailable_rate=1.0)  # F&O answers 503 to everything: the run cannot go on
    started = await env.ops("POST", "/api/sync/initial", {"maps": ["ship_via"], "master": "cds"})
    assert started.status == 202
    for _ in range(600):
        run = (await env.ops("GET", "/api/sync/initial")).body["run"]
        if run["status"] != "running":
            break
        await asyncio.sleep(0.05)
    assert run["status"] == "failed" and "503" in (run["message"] or ""), run
    faults.update(unavailable_rate=0.0)
    again = await env.ops("POST", "/api/sync/initial", {"maps": ["ship_via"], "master": "cds"})
    assert again.status == 202 and again.body["run_id"] == run["run_id"]  # the same run, resumed
    for _ in range(600):
        done = (await env.ops("GET", "/api/sync/initial")).body["run"]
        if done["status"] != "running":
            break
        await asyncio.sleep(0.05)
    assert done["status"] == "done" and done["maps"]["ship_via"]["scm"]["written"] == 6, done


async def test_a_document_map_is_refused_and_all_maps_leaves_the_documents_out(env: Harness) -> None:
    """Document maps (work orders, agreement invoices, products: one way, written whole) are not
    paired record by record: asked by name, 400 with what to do instead; ``--all`` skips them."""
    refused = await env.ops("POST", "/api/sync/initial", {"maps": ["work_order"], "master": "cds"})
    assert refused.status == 400, refused.body
    assert "work_order: a document map" in refused.body["message"]
    assert "dualwrite sync record" in refused.body["message"]
    assert (await env.ops("GET", "/api/sync/initial")).body == {"run": None}  # nothing started
    everything = await env.ops("POST", "/api/sync/initial", {"master": "scm", "dry_run": True})
    assert everything.status == 202, everything.body
    documents = {n for n, m in env.bridge.mappings.maps.items() if n not in env.bridge.mappings.record_maps()}
    assert documents >= {"work_order", "agreement_invoice", "product"}
    assert not documents & set(everything.body["maps"]), everything.body["maps"]
