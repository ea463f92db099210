"""Request bodies, query parameters and responses of the operations API (pydantic).

The API validates with these and ``bridge.ops.openapi`` builds the OpenAPI document from them, so
the document cannot drift from what the handlers accept and return.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bridge.core.events import ChangeEvent, System
from bridge.engine.ports import ResumeMode
from bridge.metrics import DirectionFigures, Retrying
from bridge.ops.alerts import AlertRule
from bridge.queue.base import DeadLetter
from bridge.state.base import (
    UNRESOLVED,
    Activity,
    ActivityCategory,
    ActivityKind,
    Failure,
    FailureState,
    MapStatus,
    Resolution,
)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- request bodies and queries


class PauseBody(_Body):
    reason: str | None = Field(
        default=None, max_length=500, description="Shown to admins; default 'paused by admin'"
    )


class ResumeBody(_Body):
    mode: ResumeMode = Field(
        default=ResumeMode.CATCH_UP,
        description="catch-up: apply the backlog first; skip-keep: go live, backlog becomes retryable "
        "failures; skip-discard: go live, backlog dropped",
    )


class SeqsBody(_Body):
    """Either ``{"seqs": [..]}`` (selected dead letters) or ``{"all": true}``."""

    seqs: list[int] | None = Field(default=None, min_length=1, max_length=10_000)
    all: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if self.all == (self.seqs is not None):
            raise ValueError('give either "seqs" (a non-empty list) or "all": true, not both')
        return self


class ResyncBody(_Body):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    entity: str = Field(min_length=1, max_length=100)
    company: str = Field(min_length=1, max_length=20, description="dataAreaId, e.g. USMF")
    key: str = Field(min_length=1, max_length=200, description="The record's natural key")
    from_side: System = Field(alias="from", description="The side whose version wins: cds or scm")


class FailureFilter(StrEnum):
    """The failure list's ``state`` filter: one state, or ``unresolved`` (open and retrying)."""

    OPEN = FailureState.OPEN.value
    RETRYING = FailureState.RETRYING.value
    RESOLVED = FailureState.RESOLVED.value
    DISCARDED = FailureState.DISCARDED.value
    UNRESOLVED = "unresolved"

    @property
    def states(self) -> tuple[FailureState, ...]:
        return UNRESOLVED if self is FailureFilter.UNRESOLVED else (FailureState(self.value),)


class FailuresQuery(_Body):
    entity: str | None = Field(default=None, description="Only this map")
    state: FailureFilter | None = Field(
        default=None, description="Only failures in this state (unresolved = open or retrying); none = all"
    )
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=50, ge=1, le=500)


class ActivityQuery(_Body):
    entity: str | None = Field(default=None, description="Only this map")
    category: ActivityCategory | None = Field(
        default=None, description="event: what changed on the map; change: applied changes; none = both"
    )
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=50, ge=1, le=500)


class PageQuery(_Body):
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=500)


# ---------------------------------------------------------------- responses


class ErrorView(BaseModel):
    error: str = Field(description="Machine-readable code: bad_request, not_found, unauthorized, csrf, ...")
    message: str


class DirectionView(BaseModel):
    direction: Literal["cds->scm", "scm->cds"] | str
    applied_per_minute: float = Field(description="Applied in the trailing 60 s")
    received: int
    applied: int
    failed: int
    skipped: dict[str, int] = Field(description="Per reason: echo, noop, stale, duplicate")
    p50_s: float | None = Field(description="Latency receipt -> applied, recent window")
    p95_s: float | None
    p99_s: float | None

    @classmethod
    def of(cls, d: DirectionFigures) -> DirectionView:
        return cls(
            direction=d.direction,
            applied_per_minute=d.applied_per_minute,
            received=d.received,
            applied=d.applied,
            failed=d.failed,
            skipped=d.skipped,
            p50_s=d.p50_s,
            p95_s=d.p95_s,
            p99_s=d.p99_s,
        )


class LastErrorView(BaseModel):
    direction: str
    kind: str
    message: str
    at: datetime


class RetryingView(BaseModel):
    count: int = Field(description="Changes of the map waiting for another attempt")
    error: str = Field(description="The latest failed attempt's error (the other system's or the network's)")
    at: datetime = Field(description="When that attempt failed")
    next_attempt_at: datetime = Field(description="The soonest next attempt")

    @classmethod
    def of(cls, r: Retrying | None) -> RetryingView | None:
        if r is None:
            return None
        return cls(
            count=r.count,
            error=r.error,
            at=datetime.fromtimestamp(r.at, UTC),
            next_attempt_at=datetime.fromtimestamp(r.next_attempt_at, UTC),
        )


class MapView(BaseModel):
    entity: str
    state: MapStatus
    shown_state: MapStatus | Literal["failing"] = Field(
        description="What the dashboard shows: the state, or failing for a running map with unresolved "
        "failures up to its alert threshold or whose last apply failed (bridge.ops.watcher.is_failing)"
    )
    reason: str | None
    state_changed_at: datetime | None
    paused_by_rule: bool
    failing: bool = Field(
        description="Running, and unresolved failures in the alert window reach the rule's threshold, or "
        "the map's last apply failed (its newest unresolved failure is newer than its last applied change)"
    )
    queue_depth: int | None = Field(
        description="Changes queued for the map; null where the queue backend cannot count per map"
    )
    lag_s: float | None = Field(description="Age of the oldest queued change; null when none queued")
    oldest_enqueued_at: datetime | None
    success: int
    failures: int
    recent_failures: int = Field(
        description="Unresolved failures counted by the alert rule right now (resolved and discarded ones "
        "do not count)"
    )
    alert_rule: AlertRule
    directions: list[DirectionView]
    last_error: LastErrorView | None
    retrying: RetryingView | None = Field(
        default=None, description="Changes retrying now (an outage): null when none"
    )


class MapsView(BaseModel):
    generated_at: datetime
    maps: list[MapView]
    attention: list[str] = Field(description="Maps paused or failing: the dashboard's red banner")
    ignored: dict[str, int] = Field(description="Notifications for unmapped entities, per entity name")


class MapActionResult(BaseModel):
    entity: str | None = Field(description="null = all maps")
    action: Literal["pause", "resume", "start", "stop"]
    mode: ResumeMode | None = None
    backlog: int | None = Field(default=None, description="Backlog events the resume mode touched")


class FailureView(BaseModel):
    id: int | None
    entity: str
    company: str
    key: str
    direction: str
    operation: str
    event_id: str
    kind: str
    source_message: str | None = Field(description="What the originating system said")
    target_message: str | None = Field(description="What the target system said")
    correlation_id: str | None
    attempts: int
    occurred_at: datetime | None
    compensated: bool
    details: dict[str, Any]
    state: FailureState = Field(description="open, retrying, resolved or discarded")
    state_changed_at: datetime | None = Field(
        description="When it entered its state; null = open as recorded"
    )
    state_by: str | None = Field(
        description="Who acted: 'admin token' or 'admin session <id>'; null = the bridge (a later success)"
    )
    resolution: Resolution | None = Field(
        description="How it was resolved (or is being retried): later-success, retry, replay, resync"
    )

    @classmethod
    def of(cls, f: Failure) -> FailureView:
        return cls(
            id=f.id,
            entity=f.entity,
            company=f.company,
            key=f.key,
            direction=f.direction,
            operation=f.operation,
            event_id=f.event_id,
            kind=f.kind,
            source_message=f.source_message,
            target_message=f.target_message,
            correlation_id=f.correlation_id,
            attempts=f.attempts,
            occurred_at=f.occurred_at,
            compensated=f.compensated,
            details=f.details,
            state=f.state,
            state_changed_at=f.state_changed_at,
            state_by=f.state_by,
            resolution=f.resolution,
        )


class FailuresPage(BaseModel):
    items: list[FailureView]
    total: int
    offset: int
    limit: int


class RetryResult(BaseModel):
    id: int
    requeued: bool


class DiscardResult(BaseModel):
    id: int
    state: FailureState


class ActivityView(BaseModel):
    id: int | None
    entity: str
    kind: ActivityKind
    category: ActivityCategory
    at: datetime | None
    message: str
    actor: str | None = Field(description="Who acted; null = the bridge itself")
    direction: str | None = Field(description="Applied changes: cds->scm or scm->cds")
    key: str | None = Field(description="Applied changes: company/key")
    latency_s: float | None = Field(description="Applied changes: receipt to applied")
    trace_id: str | None = Field(description="Applied changes: the W3C trace id, when traced")

    @classmethod
    def of(cls, a: Activity) -> ActivityView:
        return cls(
            id=a.id,
            entity=a.entity,
            kind=a.kind,
            category=a.kind.category,
            at=a.at,
            message=a.message,
            actor=a.actor,
            direction=a.direction,
            key=a.key,
            latency_s=a.latency_s,
            trace_id=a.trace_id,
        )


class ActivityPage(BaseModel):
    items: list[ActivityView]
    total: int
    offset: int
    limit: int


class DeadLetterView(BaseModel):
    seq: int
    entity: str
    company: str
    key: str
    operation: str
    source: System
    attempts: int
    reason: str
    dead_lettered_at: datetime
    event: ChangeEvent

    @classmethod
    def of(cls, d: DeadLetter) -> DeadLetterView:
        return cls(
            seq=d.seq,
            entity=d.event.entity,
            company=d.event.company,
            key=d.event.key,
            operation=d.event.operation.value,
            source=d.event.source,
            attempts=d.attempts,
            reason=d.reason,
            dead_lettered_at=d.dead_lettered_at,
            event=d.event,
        )


class DeadLettersPage(BaseModel):
    items: list[DeadLetterView]
    offset: int
    limit: int


class BulkResult(BaseModel):
    action: Literal["replay", "discard"]
    count: int


class ResyncView(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    entity: str
    company: str
    key: str
    from_side: System = Field(alias="from")
    outcome: str = Field(description="applied, unchanged, deleted or failed")
    message: str


class SeriesMapView(BaseModel):
    entity: str
    applied_cds_scm: list[int]
    applied_scm_cds: list[int]
    failed: list[int]
    lag_s: list[float | None] = Field(description="Max sampled lag per minute; null = not sampled")
    latency_cds_scm_s: list[float | None] = Field(
        default_factory=list, description="Mean latency per minute, cds->scm; null = nothing applied"
    )
    latency_scm_cds_s: list[float | None] = Field(
        default_factory=list, description="Mean latency per minute, scm->cds; null = nothing applied"
    )


class SeriesView(BaseModel):
    start: datetime = Field(description="Start of the first one-minute bucket")
    step_s: int = 60
    points: int
    maps: list[SeriesMapView]


class HealthView(BaseModel):
    status: Literal["ok"]


class ReadyView(BaseModel):
    ready: bool
    queue: bool
    state: bool
    cds: bool
    scm: bool
    tokens: bool
    details: dict[str, str]
    replica: str = ""  # the lease owner id of the replica that answered
    stopping: bool = False  # shutting down (a load balancer takes it out of rotation)


class OpenApiDocument(BaseModel):
    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


class SessionView(BaseModel):
    via: Literal["bearer", "cookie"]
    csrf_token: str | None = Field(description="Send as X-CSRF-Token on state-changing cookie calls")
    expires_at: datetime | None
