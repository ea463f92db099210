"""``GET /metrics``: the dashboard's figures in Prometheus' text format (parsed here with the
Prometheus client library's own parser), behind the admin token or the metrics token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from bridge.metrics import CDS_TO_SCM, SCM_TO_CDS, Metrics, RequestCounts
from bridge.ops.auth import AdminAuth
from bridge.ops.server import setup_ops
from bridge.queue.sqlite import SqliteQueue
from bridge.state.sqlite import SqliteState
from tests.e2e.harness import Harness, eventually
from tests.ops.conftest import BEARER, TOKEN
from tests.ops.fakes import FakeController

SCRAPE_TOKEN = "scrape-only-token-0123456789"
Client = TestClient[Any, Any]
Samples = dict[tuple[str, tuple[Any, ...]], float]
ANSWERS = {"cds": {"calls": 7, "throttled": 2, "errors": 1, "no_answer": 0}, "scm": {"calls": 3}}


class Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def scrape(
    stores: tuple[SqliteQueue, SqliteState],
) -> AsyncIterator[tuple[TestClient[Any, Any], Metrics]]:
    queue, state = stores
    metrics = Metrics(maps=["warehouse", "ship_via"], clock=Clock())
    metrics.watch_requests(lambda: {"cds": RequestCounts(9, 1, 4, 0), "scm": RequestCounts(5, 0, 0, 0)})
    app = web.Application()
    setup_ops(
        app,
        controller=FakeController(state),
        queue=queue,
        state=state,
        metrics=metrics,
        auth=AdminAuth(TOKEN),
        watch_interval=None,
        metrics_token=SCRAPE_TOKEN,
        answers=lambda: ANSWERS,
    )
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    yield client, metrics
    await client.close()


async def _samples(
    client: TestClient[Any, Any], token: str = TOKEN
) -> dict[tuple[str, tuple[Any, ...]], float]:
    resp = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    out = {}
    for family in text_string_to_metric_families(await resp.text()):
        assert family.name.startswith("dualwrite_"), family.name
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _key(name: str, **labels: str) -> tuple[str, tuple[Any, ...]]:
    return name, tuple(sorted(labels.items()))


async def test_the_dashboard_figures_per_map_and_system(scrape: tuple[TestClient[Any, Any], Metrics]) -> None:
    client, metrics = scrape
    metrics.received("warehouse", CDS_TO_SCM)
    metrics.applied("warehouse", CDS_TO_SCM, 0.2)
    metrics.applied("warehouse", CDS_TO_SCM, 3.0)
    metrics.applied("warehouse", SCM_TO_CDS, 0.04)
    metrics.failed("warehouse", SCM_TO_CDS, "rejected", "F&O said no")
    metrics.skipped("ship_via", CDS_TO_SCM, "echo")
    metrics.sample_depth("warehouse", 12)
    metrics.sample_lag("warehouse", 42.5)

    got = await _samples(client)
    wh = {"map": "warehouse", "direction": CDS_TO_SCM}
    assert got[_key("dualwrite_changes_received_total", **wh)] == 1
    assert got[_key("dualwrite_changes_applied_total", **wh)] == 2
    assert got[_key("dualwrite_changes_failed_total", map="warehouse", direction=SCM_TO_CDS)] == 1
    assert (
        got[_key("dualwrite_changes_skipped_total", map="ship_via", direction=CDS_TO_SCM, reason="echo")] == 1
    )
    assert got[_key("dualwrite_queue_depth", map="warehouse")] == 12
    assert got[_key("dualwrite_queue_lag_seconds", map="warehouse")] == 42.5
    # The histogram: cumulative buckets, +Inf = count, and the sum.
    assert got[_key("dualwrite_change_latency_seconds_bucket", **wh, le="0.1")] == 0
    assert got[_key("dualwrite_change_latency_seconds_bucket", **wh, le="0.25")] == 1
    assert got[_key("dualwrite_change_latency_seconds_bucket", **wh, le="5.0")] == 2
    assert got[_key("dualwrite_change_latency_seconds_bucket", **wh, le="+Inf")] == 2
    assert got[_key("dualwrite_change_latency_seconds_count", **wh)] == 2
    assert got[_key("dualwrite_change_latency_seconds_sum", **wh)] == pytest.approx(3.2)
    back = {"map": "warehouse", "direction": SCM_TO_CDS}
    assert got[_key("dualwrite_change_latency_seconds_bucket", **back, le="0.05")] == 1
    # Per system: the clients' counts and the answers.
    assert got[_key("dualwrite_http_requests_total", system="cds")] == 9
    assert got[_key("dualwrite_http_batched_writes_total", system="cds")] == 4
    assert got[_key("dualwrite_system_calls_total", system="cds")] == 7
    assert got[_key("dualwrite_system_throttled_total", system="cds")] == 2
    assert got[_key("dualwrite_system_errors_total", system="cds")] == 1
    assert got[_key("dualwrite_system_calls_total", system="scm")] == 3
    assert got[_key("dualwrite_system_throttled_total", system="scm")] == 0


async def test_metrics_need_the_admin_or_the_metrics_token(
    scrape: tuple[TestClient[Any, Any], Metrics],
) -> None:
    client, _ = scrape
    assert (await client.get("/metrics")).status == 401
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-the-token-at-all"})
    assert wrong.status == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert await _samples(client, SCRAPE_TOKEN)
    assert (await client.get("/metrics", headers=BEARER)).status == 200
    # The metrics token reads figures and nothing else.
    other = await client.get("/api/maps", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})
    assert other.status == 401


async def test_metrics_can_be_turned_off(stores: tuple[SqliteQueue, SqliteState]) -> None:
    queue, state = stores
    app = web.Application()
    setup_ops(
        app,
        controller=FakeController(state),
        queue=queue,
        state=state,
        metrics=Metrics(),
        auth=AdminAuth(TOKEN),
        watch_interval=None,
        prometheus=False,
    )
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        assert (await client.get("/metrics", headers=BEARER)).status == 404


async def test_metrics_over_the_running_bridge(env: Harness) -> None:
    # A person creates a ship via in Dataverse; the bridge writes it to F&O; /metrics counts it, and
    # the calls the bridge made to each system.
    resp = await env.cds_create("msdyn_shipvias", {"msdyn_name": "PROM", "msdyn_description": "scraped"})
    assert resp.status == 201, resp.body
    await eventually(lambda: env.scm_find("DeliveryModesV2", "ModeCode", "PROM"), what="PROM in F&O")
    async with env.http.get(
        f"{env.bridge.url}/metrics", headers={"Authorization": f"Bearer {env.keys['admin_token']}"}
    ) as scraped:
        assert scraped.status == 200
        text = await scraped.text()
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert got[_key("dualwrite_changes_applied_total", map="ship_via", direction=CDS_TO_SCM)] == 1
    assert got[_key("dualwrite_change_latency_seconds_count", map="ship_via", direction=CDS_TO_SCM)] == 1
    assert got[_key("dualwrite_system_calls_total", system="scm")] >= 1
    assert got[_key("dualwrite_system_calls_total", system="cds")] >= 1
