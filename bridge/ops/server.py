"""Wires the operations API, dashboard, admin access and ops watcher into the bridge's aiohttp app."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from bridge.engine.ports import ConflictResolver, Controller
from bridge.engine.syncports import InitialSyncService
from bridge.metrics import Metrics
from bridge.ops.alerts import AlertRules
from bridge.ops.api import ops_routes
from bridge.ops.api_alerts import AlertsApi, load_alert_rules
from bridge.ops.api_conflicts import ConflictsApi
from bridge.ops.api_sync import SyncApi
from bridge.ops.api_systems import SystemsApi
from bridge.ops.auth import AdminAuth
from bridge.ops.metrics_http import Answers, metrics_routes
from bridge.ops.notify import Notify
from bridge.ops.openapi import RouteSpec
from bridge.ops.pages import page_routes, security_headers
from bridge.ops.watcher import OpsWatcher
from bridge.queue.base import QueuePort
from bridge.settings import AlertSettings
from bridge.state.base import StatePort, sync_store


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
    alert_seed: Sequence[AlertSettings] | None = None,
    notify: Notify | None = None,
    watch_interval: float | None = 2.0,
    prometheus: bool = True,
    metrics_token: str = "",
    answers: Answers | None = None,
    routes: Sequence[RouteSpec] = (),
    sync: InitialSyncService | None = None,
) -> OpsWatcher:
    """Add middlewares, routes and the watcher (sampling + alert rules every ``watch_interval`` s;
    None = not started, e.g. in tests that call ``watcher.check`` themselves). Call before the app
    starts. The auth middleware leaves ``/webhooks/*``, ``/healthz`` and ``/readyz`` alone (and
    ``/metrics``, which checks its own tokens).

    At startup the alert rules come from the state store, which ``alert_seed`` (the ``[[alerts]]``
    settings; default: pause after 10 failures in 15 min) seeds when it has none yet."""
    alerts = alerts or AlertRules()
    seed = list(alert_seed) if alert_seed is not None else [AlertSettings()]

    async def _load_alert_rules(app: web.Application) -> None:
        await load_alert_rules(state, alerts, seed)

    app.on_startup.append(_load_alert_rules)
    extra = AlertsApi(controller=controller, state=state, alerts=alerts).specs()
    if isinstance(controller, ConflictResolver):
        extra += ConflictsApi(resolver=controller, state=state).specs()
    if systems is not None:
        extra += systems.specs()  # GET /api/systems
    extra += routes  # more areas, wired by the composition (GET /api/drift, …)
    if sync is not None:
        extra += SyncApi(service=sync, store=sync_store(state)).specs()  # /api/sync/initial, /errors
    app.middlewares.append(security_headers)
    app.middlewares.append(auth.middleware)
    app.add_routes(
        ops_routes(
            controller=controller,
            queue=queue,
            state=state,
            metrics=metrics,
            auth=auth,
            alerts=alerts,
            extra=extra,
        )
    )
    app.add_routes(page_routes(auth))
    if prometheus:  # GET /metrics ([metrics] enabled; the admin token or metrics_token)
        app.add_routes(metrics_routes(metrics, auth, token=metrics_token, answers=answers))
    watcher = OpsWatcher(
        controller=controller, queue=queue, state=state, metrics=metrics, alerts=alerts, notify=notify
    )
    if watch_interval:
        app.cleanup_ctx.append(watcher.cleanup_ctx(watch_interval))
    return watcher
