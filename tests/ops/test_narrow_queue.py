"""A queue backend that declares capabilities absent (as Service Bus does) is asked only for what it
declared: the maps view says "unknown" instead of failing, and a resume mode that needs one map's
backlog is refused with a 409 before any map changes state (docs/queue-and-state.md, capabilities)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.core.events import System
from bridge.engine.activity import ActivityRecorder
from bridge.engine.apply import Applier
from bridge.engine.control import EngineController
from bridge.engine.ports import ResumeMode
from bridge.engine.recovery import Recovery
from bridge.engine.sideports import Sides
from bridge.engine.worker import Engine
from bridge.metrics import Metrics
from bridge.ops.alerts import AlertRules
from bridge.ops.auth import AdminAuth
from bridge.ops.server import setup_ops
from bridge.queue.base import CapabilityMissing, QueueCapability
from bridge.queue.memory import MemoryQueue
from bridge.settings import SyncSettings
from bridge.state.base import MapStatus
from bridge.state.sqlite import SqliteState
from tests.engine.test_outcomes import MAPPINGS, MemoryDataverse, MemorySide
from tests.ops.conftest import BEARER, TOKEN
from tests.ops.helpers import event

WITHOUT_MAP_FIGURES = set(QueueCapability) - {QueueCapability.MAP_FIGURES, QueueCapability.MAP_BACKLOG}


@pytest.fixture
async def narrow(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], MemoryQueue, SqliteState]]:
    queue = MemoryQueue(capabilities=WITHOUT_MAP_FIGURES)
    state = SqliteState(tmp_path / "state.db")
    await queue.open()
    await state.open()
    sides = Sides(cds=MemoryDataverse(System.CDS), scm=MemorySide(System.SCM))
    metrics = Metrics(maps=MAPPINGS.maps)
    engine = Engine(
        queue=queue,
        state=state,
        applier=Applier(mappings=MAPPINGS, state=state, sides=sides, own_ids=set()),
        recovery=Recovery(mappings=MAPPINGS, state=state, sides=sides),
        metrics=metrics,
        settings=SyncSettings(max_attempts=3),
        activity=ActivityRecorder(state, keep=50),
    )
    controller = EngineController(engine=engine, queue=queue, state=state, probes={})
    app = web.Application()
    watcher = setup_ops(
        app,
        controller=controller,
        queue=queue,
        state=state,
        metrics=metrics,
        auth=AdminAuth(TOKEN, password="open-sesame-pw"),
        alerts=AlertRules(),
        watch_interval=None,
    )
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    await watcher.sample()  # the watcher's sampling asks for no per-map figure either
    yield client, queue, state
    await client.close()
    await engine.activity.close()
    await queue.close()
    await state.close()


async def test_maps_view_shows_unknown_depth_and_lag_without_map_figures(
    narrow: tuple[TestClient[Any, Any], MemoryQueue, SqliteState],
) -> None:
    client, queue, _ = narrow
    await queue.enqueue(event(entity="warehouse"))

    resp = await client.get("/api/maps/warehouse", headers=BEARER)

    assert resp.status == 200
    view = await resp.json()
    assert view["queue_depth"] is None and view["lag_s"] is None and view["oldest_enqueued_at"] is None
    assert await queue.depth() == 1  # the total is still there: only the per-map split is unknown


@pytest.mark.parametrize("mode", [ResumeMode.SKIP_DISCARD, ResumeMode.SKIP_KEEP])
async def test_a_skip_resume_without_map_backlog_is_refused_and_changes_nothing(
    narrow: tuple[TestClient[Any, Any], MemoryQueue, SqliteState], mode: ResumeMode
) -> None:
    client, queue, state = narrow
    paused = await client.post("/api/maps/warehouse/pause", json={"reason": "R"}, headers=BEARER)
    assert paused.status == 200
    await queue.enqueue(event(entity="warehouse"))

    resp = await client.post("/api/maps/warehouse/resume", json={"mode": mode.value}, headers=BEARER)

    assert resp.status == 409
    body = await resp.json()
    assert body["error"] == "not_supported" and "map_backlog" in body["message"]
    assert (await state.get_map_state("warehouse")).status is MapStatus.PAUSED
    assert await queue.depth() == 1  # nothing dropped, nothing moved to failures
    catch_up = await client.post("/api/maps/warehouse/resume", json={"mode": "catch-up"}, headers=BEARER)
    assert catch_up.status == 200


async def test_the_narrowed_double_refuses_every_undeclared_operation() -> None:
    queue = MemoryQueue(capabilities=())
    first = event(entity="warehouse")
    assert await queue.enqueue(first) is True
    assert await queue.enqueue(first) is True  # no dedupe answer: silent, yet still deduplicated
    assert await queue.depth() == 1
    for call in (
        lambda: queue.pending_of(first.record_key),
        lambda: queue.withdraw(first.event_id),
        lambda: queue.drain("warehouse", 10),
        lambda: queue.purge("warehouse"),
        lambda: queue.oldest_enqueued_at(),
    ):
        with pytest.raises(CapabilityMissing):
            await call()
