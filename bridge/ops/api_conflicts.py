"""``/api/conflicts``: conflicts parked under ``conflict_policy: manual``, and their resolution.

``GET /api/conflicts`` lists them with both versions side by side (one row per mapped field pair);
``POST /api/conflicts/{conflict_id}/resolve`` with ``{"winner": "cds"|"scm", "values": {...}}``
writes the chosen version (the winner's current row with the optional edits, in the winner's own
column names) to both systems through the engine (``EngineController.resolve_conflict``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from bridge.core import rules
from bridge.core.events import System
from bridge.engine.ports import ConflictResolver
from bridge.ops.apikit import ApiError
from bridge.ops.apikit import body as _body
from bridge.ops.apikit import ok as _ok
from bridge.ops.apikit import query as _query
from bridge.ops.auth import SESSION
from bridge.ops.openapi import RouteSpec
from bridge.state.base import ConflictStatus, ParkedConflict, StatePort


class ConflictField(BaseModel):
    cds: str = Field(description="Dataverse column (read name)")
    scm: str = Field(description="F&O field")
    cds_value: Any = None
    scm_value: Any = None
    differs: bool
    cds_editable: bool = Field(description="May be edited when Dataverse wins (flows to F&O, no lookup)")
    scm_editable: bool = Field(description="May be edited when F&O wins (flows to Dataverse, no lookup)")


class ConflictView(BaseModel):
    id: int
    entity: str
    company: str
    key: str
    status: ConflictStatus
    event_id: str = Field(description="The newest change that met the conflict")
    detected_at: datetime | None
    cds_modified_at: datetime | None
    scm_modified_at: datetime | None
    fields: list[ConflictField]
    winner: Literal["cds", "scm"] | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None


class ConflictsView(BaseModel):
    items: list[ConflictView]
    open: int = Field(description="Open conflicts among those listed")


class ConflictsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["open", "resolved", "all"] = Field(default="open", description="Which conflicts")
    entity: str | None = Field(default=None, description="Only this map")
    limit: int = Field(default=100, ge=1, le=500)


class ResolveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    winner: Literal["cds", "scm"] = Field(description="The version both systems end with")
    values: dict[str, Any] = Field(
        default_factory=dict, description="Edits of the winner, in its own column names (plain fields only)"
    )


class ResolveResult(BaseModel):
    id: int
    outcome: Literal["resolved"]
    winner: Literal["cds", "scm"]
    message: str


def acting_admin(request: web.Request) -> str:
    """Who resolved it, as the record keeps it: the dashboard session or the API token."""
    session = request.get(SESSION)
    return "API token" if session is None else f"dashboard session {session.nonce[:8]}"


class ConflictsApi:
    def __init__(self, *, resolver: ConflictResolver, state: StatePort) -> None:
        self.resolver = resolver
        self.state = state

    def _view(self, c: ParkedConflict) -> ConflictView:
        assert c.id is not None
        emap = self.resolver.conflict_map(c.entity)
        pairs: list[ConflictField] = []
        if emap is not None:
            cds_edit = rules.editable_columns(emap, System.CDS)
            scm_edit = rules.editable_columns(emap, System.SCM)
            for f in emap.fields:
                cds_col, scm_col = f.column(System.CDS), f.column(System.SCM)
                cv, sv = c.cds_values.get(cds_col), c.scm_values.get(scm_col)
                pairs.append(
                    ConflictField(
                        cds=cds_col,
                        scm=scm_col,
                        cds_value=cv,
                        scm_value=sv,
                        differs=cv != sv,
                        cds_editable=cds_col in cds_edit,
                        scm_editable=scm_col in scm_edit,
                    )
                )
        return ConflictView(
            id=c.id,
            entity=c.entity,
            company=c.company,
            key=c.key,
            status=c.status,
            event_id=c.event_id,
            detected_at=c.detected_at,
            cds_modified_at=c.cds_modified_at,
            scm_modified_at=c.scm_modified_at,
            fields=pairs,
            winner="cds" if c.winner == "cds" else "scm" if c.winner == "scm" else None,
            resolved_by=c.resolved_by,
            resolved_at=c.resolved_at,
        )

    async def list_conflicts(self, request: web.Request) -> web.Response:
        q = _query(request, ConflictsQuery)
        status = None if q.status == "all" else ConflictStatus(q.status)
        items = await self.state.conflicts(entity=q.entity, status=status, limit=q.limit)
        views = [self._view(c) for c in items]
        return _ok(ConflictsView(items=views, open=sum(v.status is ConflictStatus.OPEN for v in views)))

    async def resolve(self, request: web.Request) -> web.Response:
        raw = request.match_info["conflict_id"]
        if not raw.isdigit():
            raise ApiError(400, "bad_request", f"conflict id must be a positive integer, not {raw!r}")
        body = await _body(request, ResolveBody)
        winner = System(body.winner)
        done = await self.resolver.resolve_conflict(int(raw), winner, body.values, acting_admin(request))
        if done.outcome == "not-found":
            raise ApiError(404, "not_found", done.message)
        if done.outcome == "not-open":
            raise ApiError(409, "conflict", done.message)
        if done.outcome == "invalid":
            raise ApiError(400, "bad_request", done.message)
        if done.outcome == "failed":
            raise ApiError(502, "failed", done.message)  # the other system's doing, with its message
        return _ok(ResolveResult(id=done.id, outcome="resolved", winner=body.winner, message=done.message))

    def specs(self) -> list[RouteSpec]:
        return [
            RouteSpec(
                "GET",
                "/api/conflicts",
                self.list_conflicts,
                "Conflicts parked under conflict_policy manual, both versions side by side",
                ConflictsView,
                tag="conflicts",
                query=ConflictsQuery,
            ),
            RouteSpec(
                "POST",
                "/api/conflicts/{conflict_id}/resolve",
                self.resolve,
                "Pick (and optionally edit) the winning version; it is written to both systems",
                ResolveResult,
                tag="conflicts",
                body=ResolveBody,
                errors={
                    404: "No such conflict",
                    409: "The conflict was resolved already",
                    502: "A system refused the write (the message says which and why); still open",
                },
            ),
        ]
