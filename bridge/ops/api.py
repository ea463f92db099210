"""The operations API: JSON under /api/ plus /healthz and /readyz.

Handlers are thin: validate (pydantic, 400 naming the problem; unknown map 404), call the
Controller / queue / state port, shape the answer with ``bridge.ops.models``. Every route is a
``RouteSpec``, from which both the aiohttp routes and the OpenAPI document are built.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from aiohttp import web

from bridge.core.events import utcnow
from bridge.engine.ports import Controller, ResumeMode
from bridge.metrics import CDS_TO_SCM, SCM_TO_CDS, Metrics
from bridge.ops import models as m
from bridge.ops.actor import actor_of
from bridge.ops.alerts import AlertRules, is_auto_pause
from bridge.ops.api_activity import activity_specs
from bridge.ops.api_failures import failure_specs
from bridge.ops.apikit import ApiError
from bridge.ops.apikit import body as _body
from bridge.ops.apikit import guard as _guard
from bridge.ops.apikit import ok as _ok
from bridge.ops.apikit import query as _query
from bridge.ops.auth import SESSION, AdminAuth
from bridge.ops.openapi import RouteSpec, build_openapi
from bridge.ops.watcher import failing_now
from bridge.queue.base import CapabilityMissing, QueuePort, map_figures
from bridge.state.base import MapStatus, StatePort

API_VERSION = "1.0.0"
DEFAULT_PAUSE_REASON = "paused by admin"


def _epoch(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class OpsApi:
    def __init__(
        self,
        *,
        controller: Controller,
        queue: QueuePort,
        state: StatePort,
        metrics: Metrics,
        auth: AdminAuth,
        alerts: AlertRules,
        extra: Sequence[RouteSpec] = (),
    ) -> None:
        self.extra = list(extra)  # routes of other modules (api_alerts, api_conflicts), one document
        self.controller = controller
        self.queue = queue
        self.state = state
        self.metrics = metrics
        self.auth = auth
        self.alerts = alerts

    def _entity(self, request_or_name: web.Request | str) -> str:
        name = (
            request_or_name.match_info["entity"]
            if isinstance(request_or_name, web.Request)
            else request_or_name
        )
        if name not in self.controller.map_names():
            raise ApiError(404, "not_found", f"no map named {name!r}; maps: {', '.join(self.map_names())}")
        return name

    def map_names(self) -> list[str]:
        return sorted(self.controller.map_names())

    # ------------------------------------------------------------ maps

    async def _map_view(self, entity: str, now: datetime) -> m.MapView:
        map_state = await self.state.get_map_state(entity)
        depth, oldest = await map_figures(self.queue, entity)
        lag = max(0.0, (now - oldest).total_seconds()) if oldest else None
        if depth is not None:
            self.metrics.sample_depth(entity, depth)
        self.metrics.sample_lag(entity, lag)
        recent, failing = await failing_now(self.state, self.alerts, entity, now)
        figures = self.metrics.snapshot(entity)
        last = figures.last_error
        return m.MapView(
            entity=entity,
            state=map_state.status,
            shown_state="failing" if failing else map_state.status,
            reason=map_state.reason,
            state_changed_at=map_state.changed_at,
            paused_by_rule=map_state.status is MapStatus.PAUSED and is_auto_pause(map_state.reason),
            failing=failing,
            queue_depth=depth,
            lag_s=lag,
            oldest_enqueued_at=oldest,
            success=figures.success,
            failures=figures.failures,
            recent_failures=recent,
            alert_rule=self.alerts.rule_for(entity).redacted(),
            directions=[m.DirectionView.of(d) for d in figures.directions.values()],
            last_error=(
                m.LastErrorView(
                    direction=last.direction, kind=last.kind, message=last.message, at=_epoch(last.at)
                )
                if last
                else None
            ),
            retrying=m.RetryingView.of(figures.retrying),
        )

    async def list_maps(self, request: web.Request) -> web.Response:
        now = utcnow()
        views = [await self._map_view(e, now) for e in self.map_names()]
        attention = [v.entity for v in views if v.state is not MapStatus.RUNNING or v.failing]
        return _ok(
            m.MapsView(
                generated_at=now, maps=views, attention=attention, ignored=self.metrics.ignored_counts()
            )
        )

    async def get_map(self, request: web.Request) -> web.Response:
        return _ok(await self._map_view(self._entity(request), utcnow()))

    async def pause_map(self, request: web.Request) -> web.Response:
        entity = self._entity(request)
        body = await _body(request, m.PauseBody)
        await self.controller.pause(entity, body.reason or DEFAULT_PAUSE_REASON, actor=actor_of(request))
        return _ok(m.MapActionResult(entity=entity, action="pause"))

    async def resume_map(self, request: web.Request) -> web.Response:
        entity = self._entity(request)
        body = await _body(request, m.ResumeBody)
        touched = await self._resume(entity, body.mode, request)
        return _ok(m.MapActionResult(entity=entity, action="resume", mode=body.mode, backlog=touched))

    async def _resume(self, entity: str | None, mode: ResumeMode, request: web.Request) -> int:
        try:
            return await self.controller.resume(entity, mode, actor=actor_of(request))
        except CapabilityMissing as exc:
            raise ApiError(409, "not_supported", f"resume mode {mode.value}: {exc}") from None

    async def pause_all(self, request: web.Request) -> web.Response:
        body = await _body(request, m.PauseBody)
        await self.controller.pause(None, body.reason or DEFAULT_PAUSE_REASON, actor=actor_of(request))
        return _ok(m.MapActionResult(entity=None, action="pause"))

    async def resume_all(self, request: web.Request) -> web.Response:
        body = await _body(request, m.ResumeBody)
        touched = await self._resume(None, body.mode, request)
        return _ok(m.MapActionResult(entity=None, action="resume", mode=body.mode, backlog=touched))

    # ------------------------------------------------------------ failures and dead letters

    async def list_failures(self, request: web.Request) -> web.Response:
        q = _query(request, m.FailuresQuery)
        if q.entity is not None:
            self._entity(q.entity)
        states = q.state.states if q.state is not None else ()
        items = await self.state.failures(entity=q.entity, offset=q.offset, limit=q.limit, states=states)
        total = await self.state.count_failures(entity=q.entity, states=states)
        views = [m.FailureView.of(f) for f in items]
        return _ok(m.FailuresPage(items=views, total=total, offset=q.offset, limit=q.limit))

    async def retry_failure(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        if not raw.isdigit():
            raise ApiError(400, "bad_request", f"failure id must be a positive integer, not {raw!r}")
        failure_id = int(raw)
        if not await self.controller.retry_failure(failure_id, actor=actor_of(request)):
            raise ApiError(
                404, "not_found", f"failure {failure_id} does not exist or keeps no change to retry"
            )
        return _ok(m.RetryResult(id=failure_id, requeued=True))

    async def list_dead_letters(self, request: web.Request) -> web.Response:
        q = _query(request, m.PageQuery)
        items = await self.queue.dead_letters(offset=q.offset, limit=q.limit)
        views = [m.DeadLetterView.of(d) for d in items]
        return _ok(m.DeadLettersPage(items=views, offset=q.offset, limit=q.limit))

    async def replay_dead_letters(self, request: web.Request) -> web.Response:
        body = await _body(request, m.SeqsBody)
        count = await self.controller.replay_dead_letters(
            None if body.all else body.seqs, actor=actor_of(request)
        )
        return _ok(m.BulkResult(action="replay", count=count))

    async def discard_dead_letters(self, request: web.Request) -> web.Response:
        body = await _body(request, m.SeqsBody)
        count = await self.controller.discard_dead_letters(
            None if body.all else body.seqs, actor=actor_of(request)
        )
        return _ok(m.BulkResult(action="discard", count=count))

    # ------------------------------------------------------------ resync, series

    async def resync(self, request: web.Request) -> web.Response:
        body = await _body(request, m.ResyncBody)
        entity = self._entity(body.entity)
        result = await self.controller.resync(
            entity, body.company.upper(), body.key, body.from_side, actor=actor_of(request)
        )
        view = m.ResyncView.model_validate(
            {
                "entity": result.entity,
                "company": result.company,
                "key": result.key,
                "from": result.from_side,
                "outcome": result.outcome,
                "message": result.message,
            }
        )
        # A failed resync is the other system's doing: 502 so scripts notice, with the message.
        return _ok(view, status=502 if result.outcome == "failed" else 200)

    async def series(self, request: web.Request) -> web.Response:
        out = []
        for entity in self.map_names():
            s, latency = self.metrics.series(entity), self.metrics.latency_series(entity)
            out.append(
                m.SeriesMapView(
                    entity=entity,
                    applied_cds_scm=s.applied[CDS_TO_SCM],
                    applied_scm_cds=s.applied[SCM_TO_CDS],
                    failed=s.failed,
                    lag_s=s.lag_s,
                    latency_cds_scm_s=latency[CDS_TO_SCM],
                    latency_scm_cds_s=latency[SCM_TO_CDS],
                )
            )
        points = len(out[0].failed) if out else 0
        return _ok(m.SeriesView(start=_epoch(self.metrics.series_start()), points=points, maps=out))

    # ------------------------------------------------------------ session, health, document

    async def session(self, request: web.Request) -> web.Response:
        session = request.get(SESSION)
        if session is None:
            return _ok(m.SessionView(via="bearer", csrf_token=None, expires_at=None))
        return _ok(
            m.SessionView(via="cookie", csrf_token=session.csrf_token, expires_at=_epoch(session.expires_at))
        )

    async def healthz(self, request: web.Request) -> web.Response:
        return _ok(m.HealthView(status="ok"))

    async def readyz(self, request: web.Request) -> web.Response:
        r = await self.controller.readiness()
        view = m.ReadyView(
            ready=r.ready,
            queue=r.queue,
            state=r.state,
            cds=r.cds,
            scm=r.scm,
            tokens=r.tokens,
            details=r.details,
            replica=r.replica,
            stopping=r.stopping,
        )
        return _ok(view, status=200 if r.ready else 503)

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(build_openapi(self.specs(), version=API_VERSION))

    # ------------------------------------------------------------ the route table

    def specs(self) -> list[RouteSpec]:
        nf = {404: "Unknown map"}
        return [
            RouteSpec("GET", "/api/maps", self.list_maps, "Every map with state and figures", m.MapsView),
            RouteSpec("GET", "/api/maps/{entity}", self.get_map, "One map", m.MapView, errors=nf),
            RouteSpec(
                "POST",
                "/api/maps/{entity}/pause",
                self.pause_map,
                "Pause one map (changes keep queueing)",
                m.MapActionResult,
                body=m.PauseBody,
                body_required=False,
                errors=nf,
            ),
            RouteSpec(
                "POST",
                "/api/maps/{entity}/resume",
                self.resume_map,
                "Resume one map in a resume mode",
                m.MapActionResult,
                body=m.ResumeBody,
                body_required=False,
                errors=nf,
            ),
            RouteSpec(
                "POST",
                "/api/pause",
                self.pause_all,
                "Pause all maps",
                m.MapActionResult,
                body=m.PauseBody,
                body_required=False,
            ),
            RouteSpec(
                "POST",
                "/api/resume",
                self.resume_all,
                "Resume all maps",
                m.MapActionResult,
                body=m.ResumeBody,
                body_required=False,
            ),
            RouteSpec(
                "GET",
                "/api/failures",
                self.list_failures,
                "Failures, newest first, paged (filter by map and state)",
                m.FailuresPage,
                tag="failures",
                query=m.FailuresQuery,
                errors=nf,
            ),
            RouteSpec(
                "POST",
                "/api/failures/{id}/retry",
                self.retry_failure,
                "Re-enqueue a failure's change",
                m.RetryResult,
                tag="failures",
                errors={404: "No such failure, or nothing to retry"},
            ),
            RouteSpec(
                "GET",
                "/api/deadletters",
                self.list_dead_letters,
                "Dead letters, paged",
                m.DeadLettersPage,
                tag="deadletters",
                query=m.PageQuery,
            ),
            RouteSpec(
                "POST",
                "/api/deadletters/replay",
                self.replay_dead_letters,
                "Put dead letters back in the queue (selected or all)",
                m.BulkResult,
                tag="deadletters",
                body=m.SeqsBody,
            ),
            RouteSpec(
                "POST",
                "/api/deadletters/discard",
                self.discard_dead_letters,
                "Drop dead letters for good (selected or all)",
                m.BulkResult,
                tag="deadletters",
                body=m.SeqsBody,
            ),
            RouteSpec(
                "POST",
                "/api/resync",
                self.resync,
                "Copy one record from the chosen side to the other now",
                m.ResyncView,
                body=m.ResyncBody,
                errors=nf,
                also={502: "The resync failed (outcome failed)"},
            ),
            RouteSpec("GET", "/api/series", self.series, "Per-minute figures, last hour", m.SeriesView),
            RouteSpec(
                "GET",
                "/api/session",
                self.session,
                "Who is calling; the CSRF token of a cookie session",
                m.SessionView,
                tag="access",
            ),
            RouteSpec(
                "GET", "/api/openapi.json", self.openapi, "This document", m.OpenApiDocument, tag="meta"
            ),
            RouteSpec("GET", "/healthz", self.healthz, "Liveness", m.HealthView, tag="meta", public=True),
            RouteSpec(
                "GET",
                "/readyz",
                self.readyz,
                "Readiness: queue, both systems, tokens",
                m.ReadyView,
                tag="meta",
                public=True,
                also={503: "Not ready; the body says what is missing"},
            ),
            *self.extra,
            # issue 20: failures' life cycle, the activity log, start and stop (their own modules)
            *failure_specs(self.controller),
            *activity_specs(self.controller, self.state, self._entity),
        ]


def ops_routes(
    *,
    controller: Controller,
    queue: QueuePort,
    state: StatePort,
    metrics: Metrics,
    auth: AdminAuth,
    alerts: AlertRules,
    extra: Sequence[RouteSpec] = (),
) -> list[web.RouteDef]:
    api = OpsApi(
        controller=controller,
        queue=queue,
        state=state,
        metrics=metrics,
        auth=auth,
        alerts=alerts,
        extra=extra,
    )
    return [web.route(s.method, s.path, _guard(s.handler)) for s in api.specs()]
