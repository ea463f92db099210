"""``GET /api/systems``: each system's health and the bridge's webhook registrations on Dataverse.

Health is what the bridge saw since start (``bridge.systems.health``: fed by each system's HTTP
client and token provider): whether the last call got an answer, when, with which status, 429s and
the Retry-After waited, network errors, the token. Registrations are read through the Web API as
``dualwrite register`` writes them (``bridge/register.py``): the webhook service endpoints
(``contract`` 8) and the steps named ``dualwrite: <table> <message>``, at most once a minute
(``?refresh=true`` reads them now). A failed read is shown with Dataverse's own message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bridge.core.deadline import deadline_scope
from bridge.core.errors import DualWriteError
from bridge.ops.apikit import ApiError
from bridge.ops.openapi import RouteSpec
from bridge.systems.health import SystemFigures

REGISTRATIONS_TTL_S = 60.0
REGISTRATIONS_BUDGET_S = 5.0  # a Dataverse that does not answer must not hold the page
WEBHOOK_CONTRACT = 8  # serviceendpoint.contract: Webhook (powerapps-docs .../entities/serviceendpoint.md)
STEP_PREFIX = "dualwrite: "  # bridge/register.py's step_name


class Query(Protocol):
    """``DataverseClient.query``: rows of an entity set (all pages)."""

    def __call__(
        self, entity_set: str, filter: str | None = None, select: list[str] | None = None
    ) -> Awaitable[list[dict[str, Any]]]: ...


@dataclass(frozen=True, slots=True)
class SystemSource:
    name: str  # "cds" or "scm"
    title: str  # "Dataverse"
    url: str  # the API root the bridge calls
    figures: Callable[[], SystemFigures]


def _at(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


# ---------------------------------------------------------------- views


class TokenView(BaseModel):
    state: Literal["valid", "expired", "failing", "none"] = Field(
        description="valid: a token that has not expired; failing: the last request for one failed; "
        "none: not asked for yet"
    )
    acquired_at: datetime | None
    expires_at: datetime | None
    error: str | None = Field(description="The token authority's message for the last failure")


class SystemView(BaseModel):
    system: str
    title: str
    url: str
    reachable: bool | None = Field(description="The last call got an answer (any status); null: no call yet")
    answers: int
    last_answer_at: datetime | None
    last_status: int | None
    throttled: int = Field(description="429 answers since start")
    retry_after_waited_s: float = Field(description="Seconds waited before retries because of Retry-After")
    network_errors: int = Field(description="Calls without an answer: refused, reset, timed out")
    last_error: str | None = Field(description="The latest failed call: the system's answer or the network's")
    last_error_at: datetime | None
    token: TokenView

    @classmethod
    def of(cls, source: SystemSource, now: float) -> SystemView:
        f = source.figures()
        return cls(
            system=source.name,
            title=source.title,
            url=source.url,
            reachable=f.reachable,
            answers=f.answers,
            last_answer_at=_at(f.last_answer_at),
            last_status=f.last_status,
            throttled=f.throttled,
            retry_after_waited_s=round(f.retry_after_waited_s, 3),
            network_errors=f.network_errors,
            last_error=f.last_error,
            last_error_at=_at(f.last_error_at),
            token=TokenView(
                state=token_state(f, now),
                acquired_at=_at(f.token_acquired_at),
                expires_at=_at(f.token_expires_at),
                error=f.token_error,
            ),
        )


def token_state(f: SystemFigures, now: float) -> Literal["valid", "expired", "failing", "none"]:
    if f.token_error is not None:
        return "failing"
    if f.token_acquired_at is None:
        return "none"
    return "expired" if f.token_expires_at is not None and f.token_expires_at <= now else "valid"


class WebhookEndpointView(BaseModel):
    id: str
    name: str
    url: str | None
    ours: bool = Field(description="The endpoint dualwrite register writes (found by its name)")


class WebhookStepView(BaseModel):
    name: str
    map: str
    message: str = Field(description="Create, Update or Delete")
    found: bool
    mode: Literal["sync", "async"] | None = Field(description="sdkmessageprocessingstep.mode 0 / 1")
    enabled: bool | None = Field(description="statecode 0 (Enabled)")
    filtering_attributes: str | None


class RegistrationsView(BaseModel):
    checked_at: datetime
    error: str | None = Field(description="Why they could not be read (Dataverse's message)")
    endpoints: list[WebhookEndpointView] = Field(description="Webhook service endpoints (contract 8)")
    steps: list[WebhookStepView] = Field(description="Every step the maps need, found or not")
    missing: int = Field(description="Steps the maps need that are not registered or not enabled")


class SystemsView(BaseModel):
    generated_at: datetime
    systems: list[SystemView]
    registrations: RegistrationsView | None = Field(description="null when the bridge cannot read them")


class SystemsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh: bool = Field(default=False, description="Read the registrations on Dataverse now")


# ---------------------------------------------------------------- reading the registrations


class Registrations:
    """The webhook registrations on Dataverse, read at most every ``ttl_s`` seconds."""

    def __init__(
        self,
        query: Query,
        *,
        endpoint_name: str,
        expected: Mapping[str, tuple[str, str]],
        ttl_s: float = REGISTRATIONS_TTL_S,
    ) -> None:
        self._query = query
        self._endpoint_name = endpoint_name
        self._expected = dict(expected)  # step name -> (map, message)
        self._ttl = ttl_s
        self._cached: tuple[float, RegistrationsView] | None = None
        self._lock = asyncio.Lock()

    async def view(self, *, refresh: bool = False) -> RegistrationsView:
        async with self._lock:
            if refresh or self._cached is None or time.monotonic() - self._cached[0] >= self._ttl:
                self._cached = (time.monotonic(), await self._read())
            return self._cached[1]

    async def _read(self) -> RegistrationsView:
        now = datetime.now(UTC)
        try:
            with deadline_scope(REGISTRATIONS_BUDGET_S):
                endpoints, rows = await self._query_both()
        except DualWriteError as exc:
            return RegistrationsView(checked_at=now, error=str(exc), endpoints=[], steps=[], missing=0)
        found = {str(r.get("name")): r for r in rows}
        steps = [_step(name, where, found.get(name)) for name, where in sorted(self._expected.items())]
        return RegistrationsView(
            checked_at=now,
            error=None,
            endpoints=[
                WebhookEndpointView(
                    id=str(e.get("serviceendpointid")),
                    name=str(e.get("name")),
                    url=e.get("url"),
                    ours=e.get("name") == self._endpoint_name,
                )
                for e in endpoints
            ],
            steps=steps,
            missing=sum(1 for s in steps if not s.found or s.enabled is False),
        )

    async def _query_both(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The webhook service endpoints, and the steps named as ``dualwrite register`` names them."""
        endpoints = await self._query(
            "serviceendpoints",
            filter=f"contract eq {WEBHOOK_CONTRACT}",
            select=["serviceendpointid", "name", "url"],
        )
        steps = await self._query(
            "sdkmessageprocessingsteps",
            filter=f"startswith(name,'{STEP_PREFIX}')",
            select=["sdkmessageprocessingstepid", "name", "mode", "statecode", "filteringattributes"],
        )
        return endpoints, steps


def _step(name: str, where: tuple[str, str], row: Mapping[str, Any] | None) -> WebhookStepView:
    if row is None:
        return WebhookStepView(
            name=name,
            map=where[0],
            message=where[1],
            found=False,
            mode=None,
            enabled=None,
            filtering_attributes=None,
        )
    mode = row.get("mode")
    return WebhookStepView(
        name=name,
        map=where[0],
        message=where[1],
        found=True,
        mode="sync" if mode == 0 else "async" if mode == 1 else None,
        enabled=row.get("statecode", 0) == 0,
        filtering_attributes=row.get("filteringattributes"),
    )


# ---------------------------------------------------------------- the endpoint


class SystemsApi:
    def __init__(self, sources: Sequence[SystemSource], registrations: Registrations | None = None) -> None:
        self.sources = list(sources)
        self.registrations = registrations

    async def list_systems(self, request: web.Request) -> web.Response:
        try:
            q = SystemsQuery.model_validate(dict(request.query))
        except ValidationError as exc:
            message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ApiError(400, "bad_request", "query: " + message) from None
        now = time.time()
        registrations = (
            await self.registrations.view(refresh=q.refresh) if self.registrations is not None else None
        )
        view = SystemsView(
            generated_at=datetime.now(UTC),
            systems=[SystemView.of(s, now) for s in self.sources],
            registrations=registrations,
        )
        return web.json_response(text=view.model_dump_json())

    def specs(self) -> list[RouteSpec]:
        return [
            RouteSpec(
                "GET",
                "/api/systems",
                self.list_systems,
                "Each system's health; the webhook registrations on Dataverse",
                SystemsView,
                tag="systems",
                query=SystemsQuery,
            )
        ]
