"""Drift in the operations API: the last check per map, one map's drifted records, and a check (with
repair) run now. The checker itself is the composition's (``bridge.drift``), reached through
``DriftRunner``; the last checks are read from the state store (``DriftPort``).

    GET  /api/drift            every map's last check (its first drifted records), the schedule
    GET  /api/drift/{entity}   one map's last check, every drifted record kept
    POST /api/drift/check      check now ({"maps", "company", "repair", "from"}); 409 while one runs
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from bridge.core.errors import ConfigError
from bridge.core.events import System
from bridge.ops.actor import actor_of
from bridge.ops.apikit import ApiError, body, ok
from bridge.ops.openapi import RouteSpec
from bridge.state.driftport import DriftCheck, DriftedRecord, DriftPort

SHOWN = 20  # drifted records per map in the overview (the map's own view has all kept)


class DriftRunner(Protocol):
    @property
    def every_minutes(self) -> int: ...  # [drift] check_every_minutes; 0 = off

    @property
    def checking(self) -> bool: ...

    async def check(
        self,
        maps: Sequence[str] | None,
        *,
        company: str | None,
        repair_from: System | None,
        actor: str | None,
    ) -> list[DriftCheck]:
        """Check now; raises ``ConfigError`` for an unknown map, ``RuntimeError`` while one runs."""
        ...


class DriftSideView(BaseModel):
    read: int = Field(description="Records read on this side")
    missing: int = Field(description="Records the other side has and this one lacks")
    written: int = Field(description="Records a repair wrote here")
    failed: int = Field(description="Records a repair failed to write here")


class DriftRecordView(BaseModel):
    company: str
    key: str
    missing_on: str | None = Field(description="cds or scm: the side that lacks it; null: values differ")
    fields: dict[str, list[str]] = Field(description="Per side, its columns whose values differ")
    repair: str | None = Field(description="A repair's outcome: applied, deleted, unchanged, failed: …")


class DriftMapView(BaseModel):
    entity: str
    started_at: datetime
    finished_at: datetime
    companies: list[str]
    sides: dict[str, DriftSideView]
    different: int = Field(description="Records on both sides whose mapped values differ")
    unchanged: int = Field(description="Records on both sides that agree")
    drifted: int = Field(description="Missing on a side, or different")
    drift: list[DriftRecordView] = Field(description="The drifted records (the overview: the first ones)")
    repaired_from: str | None
    repaired: int
    repair_failed: int
    error: str | None = Field(description="Why the check could not finish (the system's own message)")


class DriftOverview(BaseModel):
    checking: bool = Field(description="A check runs now")
    check_every_minutes: int = Field(description="[drift] check_every_minutes (0: no schedule)")
    maps: list[DriftMapView] = Field(description="Each map's last check; maps never checked are absent")


class DriftReport(BaseModel):
    """One JSON object for a check: ``dualwrite sync check --json`` prints the same."""

    drifted: int
    repaired: int
    repair_failed: int
    errors: list[str]
    maps: dict[str, DriftMapView]


class DriftCheckBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    maps: list[str] | None = Field(default=None, description="Maps to check (default: every map)")
    company: str | None = Field(default=None, max_length=20, description="One company (default: all)")
    repair: bool = Field(default=False, description="Copy each drifted record from the side 'from'")
    from_side: System | None = Field(default=None, alias="from", description="The side a repair copies")

    @model_validator(mode="after")
    def _repair_has_a_side(self) -> DriftCheckBody:
        if self.repair and self.from_side is None:
            raise ValueError("a repair needs 'from': cds or scm")
        return self


def _record(r: DriftedRecord) -> DriftRecordView:
    return DriftRecordView(
        company=r.company, key=r.key, missing_on=r.missing_on, fields=r.fields, repair=r.repair
    )


def _repaired_side(r: DriftedRecord, repaired_from: str | None) -> str:
    """The side a repair wrote to: the other side of the one it copied from."""
    source = repaired_from or "cds"
    if r.repair and "(from " in r.repair:
        source = r.repair.rsplit("(from ", 1)[1].rstrip(")")
    return "scm" if source == "cds" else "cds"


def map_view(c: DriftCheck, *, shown: int | None = None) -> DriftMapView:
    written = {"cds": 0, "scm": 0}
    failed = {"cds": 0, "scm": 0}
    for r in c.drift:
        if r.repair is not None:
            (failed if r.repair.startswith("failed") else written)[_repaired_side(r, c.repaired_from)] += 1
    sides = {
        side: DriftSideView(
            read=c.read.get(side, 0),
            missing=c.missing.get(side, 0),
            written=written[side],
            failed=failed[side],
        )
        for side in ("cds", "scm")
    }
    records = c.drift if shown is None else c.drift[:shown]
    return DriftMapView(
        entity=c.entity,
        started_at=c.started_at,
        finished_at=c.finished_at,
        companies=list(c.companies),
        sides=sides,
        different=c.different,
        unchanged=c.unchanged,
        drifted=c.drifted,
        drift=[_record(r) for r in records],
        repaired_from=c.repaired_from,
        repaired=c.repaired,
        repair_failed=c.repair_failed,
        error=c.error,
    )


def drift_report(checks: Sequence[DriftCheck]) -> DriftReport:
    return DriftReport(
        drifted=sum(c.drifted for c in checks),
        repaired=sum(c.repaired for c in checks),
        repair_failed=sum(c.repair_failed for c in checks),
        errors=[f"{c.entity}: {c.error}" for c in checks if c.error],
        maps={c.entity: map_view(c) for c in checks},
    )


def report_json(checks: Sequence[DriftCheck]) -> dict[str, Any]:
    return drift_report(checks).model_dump(mode="json")


def drift_specs(runner: DriftRunner, drift: DriftPort) -> list[RouteSpec]:
    async def overview(request: web.Request) -> web.Response:
        checks = await drift.drift_checks()
        return ok(
            DriftOverview(
                checking=runner.checking,
                check_every_minutes=runner.every_minutes,
                maps=[map_view(c, shown=SHOWN) for c in checks],
            )
        )

    async def one(request: web.Request) -> web.Response:
        entity = request.match_info["entity"]
        found = await drift.drift_check(entity)
        if found is None:
            raise ApiError(404, "not_found", f"map {entity!r} was never checked for drift")
        return ok(map_view(found))

    async def check(request: web.Request) -> web.Response:
        asked = await body(request, DriftCheckBody)
        try:
            checks = await runner.check(
                asked.maps,
                company=asked.company,
                repair_from=asked.from_side if asked.repair else None,
                actor=actor_of(request),
            )
        except ConfigError as exc:
            raise ApiError(404, "not_found", str(exc)) from None
        except RuntimeError as exc:
            raise ApiError(409, "busy", str(exc)) from None
        return ok(drift_report(checks))

    return [
        RouteSpec(
            "GET",
            "/api/drift",
            overview,
            "Each map's last drift check, and the schedule",
            DriftOverview,
            tag="drift",
        ),
        RouteSpec(
            "GET",
            "/api/drift/{entity}",
            one,
            "One map's last drift check, with every drifted record kept",
            DriftMapView,
            tag="drift",
            errors={404: "The map was never checked"},
        ),
        RouteSpec(
            "POST",
            "/api/drift/check",
            check,
            "Compare both systems' mapped values now; with repair, copy each drifted record from one side",
            DriftReport,
            tag="drift",
            body=DriftCheckBody,
            body_required=False,
            errors={404: "Unknown map", 409: "A drift check runs already"},
        ),
    ]
