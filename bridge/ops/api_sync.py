"""``/api/sync``: the initial sync and every error of the sync runs.

``POST /api/sync/initial`` starts (or resumes) a run inside this bridge, the one that owns the queue,
and answers 202 with its first figures; ``GET /api/sync/initial`` follows it (``{"run": …}``, null
before the first run since the bridge started: records read,
written, unchanged and failed per map and side, the rate and the time left). ``GET /api/sync/errors``
lists the records the runs could not bring together, newest first, paged and filtered by map,
company, run and state, each with both systems' messages and the payload it tried to write.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from bridge.core.errors import ConfigError
from bridge.core.events import System
from bridge.engine.syncports import InitialRequest, InitialSyncService, SyncBusyError
from bridge.ops.apikit import ApiError
from bridge.ops.apikit import body as _body
from bridge.ops.apikit import ok as _ok
from bridge.ops.apikit import query as _query
from bridge.ops.openapi import RouteSpec
from bridge.state.base import SyncRecordError, SyncStatePort


class SideFigures(BaseModel):
    read: int = 0
    written: int = Field(default=0, description="Writes made (a dry run: that it would make)")
    unchanged: int = 0
    failed: int = 0
    skipped: int = Field(default=0, description="Changed since read: their live change follows")


class MapFigures(BaseModel):
    state: Literal["waiting", "running", "done", "failed"]
    company: str | None
    pass_: int = Field(alias="pass", description="1, or 2 for the self-references")
    expected: int | None
    cds: SideFigures
    scm: SideFigures

    model_config = ConfigDict(populate_by_name=True)


class PlannedWriteView(BaseModel):
    map: str
    company: str
    key: str
    target: Literal["cds", "scm"]
    operation: Literal["create", "update"]
    fields: dict[str, Any] = Field(description="column -> {from, to} in the ledger's form")
    payload: dict[str, Any] = Field(description="What would be sent (write form)")


class InitialProgressView(BaseModel):
    run_id: int
    status: Literal["running", "done", "failed"]
    message: str | None
    master: Literal["cds", "scm"]
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None
    elapsed_s: float
    records_read: int
    written: int
    failed: int
    rate_per_min: float = Field(description="Records read per minute")
    expected: int | None
    eta_s: float | None = Field(description="Seconds left at this rate, when the total is known")
    maps: dict[str, MapFigures]
    planned: list[PlannedWriteView] = Field(description="A dry run: the writes it would make (up to a limit)")
    planned_total: int


class InitialRunView(BaseModel):
    run: InitialProgressView | None = Field(
        description="The running (or last) run; null when none ran since start"
    )


class InitialBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    maps: list[str] = Field(default_factory=list, description="Map names; empty: every map")
    master: Literal["cds", "scm"] = Field(description="The side whose values win differences")
    companies: list[str] = Field(default_factory=list, description="Company codes; empty: every company")
    dry_run: bool = Field(default=False, description="Read and plan only: write nothing")
    failed_only: bool = Field(default=False, description="Only the records with an open sync error")


class SyncErrorView(BaseModel):
    id: int
    run_id: int
    map: str
    company: str
    key: str
    target: Literal["cds", "scm"]
    operation: str
    target_message: str | None
    source_message: str | None
    payload: dict[str, Any]
    fields: list[str]
    status: int | None
    code: str | None
    occurred_at: datetime | None
    resolved_at: datetime | None


class SyncErrorsView(BaseModel):
    items: list[SyncErrorView]
    total: int = Field(description="Errors matching the filter")
    offset: int
    limit: int


class SyncErrorsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    map: str | None = Field(default=None, description="Only this map")
    company: str | None = Field(default=None, description="Only this company")
    run: int | None = Field(default=None, ge=1, description="Only this run")
    state: Literal["open", "all"] = Field(default="open", description="open: not brought together since")
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=50, ge=1, le=500)


def error_view(e: SyncRecordError) -> SyncErrorView:
    assert e.id is not None
    return SyncErrorView(
        id=e.id,
        run_id=e.run_id,
        map=e.entity,
        company=e.company,
        key=e.key,
        target="cds" if e.target == "cds" else "scm",
        operation=e.operation,
        target_message=e.target_message,
        source_message=e.source_message,
        payload=e.payload,
        fields=list(e.fields),
        status=e.status,
        code=e.code,
        occurred_at=e.occurred_at,
        resolved_at=e.resolved_at,
    )


class SyncApi:
    def __init__(self, *, service: InitialSyncService, store: SyncStatePort) -> None:
        self.service = service
        self.store = store

    async def start(self, request: web.Request) -> web.Response:
        body = await _body(request, InitialBody)
        wanted = InitialRequest(
            maps=tuple(body.maps),
            master=System(body.master),
            companies=tuple(c.upper() for c in body.companies),
            dry_run=body.dry_run,
            failed_only=body.failed_only,
        )
        try:
            snapshot = await self.service.start(wanted)
        except KeyError as exc:
            raise ApiError(400, "bad_request", f"unknown map: {exc.args[0]}") from None
        except ConfigError as exc:
            raise ApiError(400, "bad_request", str(exc)) from None
        except SyncBusyError as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        return _ok(InitialProgressView.model_validate(snapshot), status=202)

    async def progress(self, request: web.Request) -> web.Response:
        snapshot = self.service.progress()
        run = None if snapshot is None else InitialProgressView.model_validate(snapshot)
        return _ok(InitialRunView(run=run))

    async def errors(self, request: web.Request) -> web.Response:
        q = _query(request, SyncErrorsQuery)
        filters: dict[str, Any] = {
            "entity": q.map,
            "company": q.company,
            "run_id": q.run,
            "open_only": q.state == "open",
        }
        items = await self.store.sync_errors(**filters, offset=q.offset, limit=q.limit)
        total = await self.store.count_sync_errors(**filters)
        return _ok(
            SyncErrorsView(items=[error_view(e) for e in items], total=total, offset=q.offset, limit=q.limit)
        )

    def specs(self) -> list[RouteSpec]:
        return [
            RouteSpec(
                "POST",
                "/api/sync/initial",
                self.start,
                "Start (or resume) an initial sync in this bridge; follow it with GET",
                InitialProgressView,
                tag="sync",
                body=InitialBody,
                errors={400: "Unknown map or bad body", 409: "An initial sync is running already"},
                also={202: "Started: its first figures"},
            ),
            RouteSpec(
                "GET",
                "/api/sync/initial",
                self.progress,
                "The running (or last) initial sync: figures per map and side, rate, time left",
                InitialRunView,
                tag="sync",
            ),
            RouteSpec(
                "GET",
                "/api/sync/errors",
                self.errors,
                "Every record a sync run could not bring together, with both systems' messages",
                SyncErrorsView,
                tag="sync",
                query=SyncErrorsQuery,
            ),
        ]
