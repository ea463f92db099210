"""The activity log and the start/stop of a map in the operations API.

``GET /api/activity``: per map, what changed when (started, stopped, paused, resumed with its mode,
alert fired, dead letters replayed, ...) and the last applied changes (direction, latency, trace id),
newest first, paged. ``POST /api/maps/{entity}/start|stop``: a stopped map's notifications are
acknowledged and counted, nothing queued; start applies what it held."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from bridge.engine.ports import Controller
from bridge.ops import models as m
from bridge.ops.actor import actor_of
from bridge.ops.apikit import body, ok, query
from bridge.ops.openapi import RouteSpec
from bridge.state.base import StatePort

DEFAULT_STOP_REASON = "stopped by admin"


def activity_specs(
    controller: Controller, state: StatePort, entity_of: Callable[[web.Request | str], str]
) -> list[RouteSpec]:
    """``entity_of`` checks a map name (404 naming the maps) and returns it."""

    async def list_activity(request: web.Request) -> web.Response:
        q = query(request, m.ActivityQuery)
        if q.entity is not None:
            entity_of(q.entity)
        items = await state.activity(entity=q.entity, category=q.category, offset=q.offset, limit=q.limit)
        total = await state.count_activity(entity=q.entity, category=q.category)
        views = [m.ActivityView.of(a) for a in items]
        return ok(m.ActivityPage(items=views, total=total, offset=q.offset, limit=q.limit))

    async def start_map(request: web.Request) -> web.Response:
        entity = entity_of(request)
        await controller.start(entity, actor=actor_of(request))
        return ok(m.MapActionResult(entity=entity, action="start"))

    async def stop_map(request: web.Request) -> web.Response:
        entity = entity_of(request)
        reason = (await body(request, m.PauseBody)).reason or DEFAULT_STOP_REASON
        await controller.stop(entity, reason, actor=actor_of(request))
        return ok(m.MapActionResult(entity=entity, action="stop"))

    nf = {404: "Unknown map"}
    return [
        RouteSpec(
            "GET",
            "/api/activity",
            list_activity,
            "Activity per map, newest first, paged: state changes and the last applied changes",
            m.ActivityPage,
            tag="activity",
            query=m.ActivityQuery,
            errors=nf,
        ),
        RouteSpec(
            "POST",
            "/api/maps/{entity}/start",
            start_map,
            "Start a stopped, paused or never started map (its held backlog first)",
            m.MapActionResult,
            errors=nf,
        ),
        RouteSpec(
            "POST",
            "/api/maps/{entity}/stop",
            stop_map,
            "Stop a map: notifications acknowledged and counted, nothing queued",
            m.MapActionResult,
            body=m.PauseBody,
            body_required=False,
            errors=nf,
        ),
    ]
