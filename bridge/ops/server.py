"""Wires the operations API, dashboard, admin access and ops watcher into the bridge's aiohttp app."""

from __future__ import annotations

from aiohttp import web

from bridge.engine.ports import Controller
from bridge.metrics import Metrics
from bridge.ops.alerts import AlertRules
from bridge.ops.api import ops_routes
from bridge.ops.api_systems import SystemsApi
from bridge.ops.auth import AdminAuth
from bridge.ops.pages import page_routes, security_headers
from bridge.ops.watcher import OpsWatcher
from bridge.queue.base import QueuePort
from bridge.state.base import StatePort


def setup_ops(
    app: web.Application,
    *,
    controller: Controller,
    queue: QueuePort,
    state: StatePort,
    metrics: Metrics,
    auth: AdminAuth,
    alerts: AlertRules | None = None,
    systems: SystemsApi | None = None,
    watch_interval: float | None = 2.0,
) -> OpsWatcher:
    """Add middlewares, routes and the watcher (sampling + alert rules every ``watch_interval`` s;
    None = not started, e.g. in tests that call ``watcher.check`` themselves). Call before the app
    starts. The auth middleware leaves ``/webhooks/*``, ``/healthz`` and ``/readyz`` alone."""
    alerts = alerts or AlertRules()
    app.middlewares.append(security_headers)
    app.middlewares.append(auth.middleware)
    more = systems.specs() if systems is not None else []  # GET /api/systems
    app.add_routes(
        ops_routes(
            controller=controller,
            queue=queue,
            state=state,
            metrics=metrics,
            auth=auth,
            alerts=alerts,
            more=more,
        )
    )
    app.add_routes(page_routes(auth))
    watcher = OpsWatcher(controller=controller, queue=queue, state=state, metrics=metrics, alerts=alerts)
    if watch_interval:
        app.cleanup_ctx.append(watcher.cleanup_ctx(watch_interval))
    return watcher
