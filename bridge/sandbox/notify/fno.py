"""Finance and Operations data events: endpoints, the event payload, at-least-once delivery.

An event is the RemoteExecutionContext shape data events take through the Power Platform
integration (``mserp_`` names, values in F&O OData JSON form, all-zero PrimaryEntityId) plus the
business-event header fields (EventId, ControlNumber, InitiatingUserAADObjectId, ...). As the data
events page has it, the entity fields travel in ``Target`` and ``PreImage`` inside
``InputParameters`` (PreEntityImages stays empty), and the messages are the virtual tables'
``OnExternalCreated`` / ``OnExternalUpdated`` / ``OnExternalDeleted`` (docs/sandbox-rules.md cites
the sources). Sent after commit to every matching endpoint; retried 3 times 1 s apart; 10 s
timeout; failures logged.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bridge.sandbox.contracts import RecordChange
from bridge.sandbox.faults import Faults
from bridge.sandbox.notify.common import (
    ZERO_GUID,
    Background,
    DeliveryGate,
    DeliveryJob,
    HttpPoster,
    JobLog,
    attempt_of,
    dotnet_date,
    strip_query,
)
from bridge.sandbox.notify.context import entity, kv
from bridge.sandbox.schema import FNO_TABLES, Kind, Table, table_by_set

NOTIFYING_SETS = tuple(t.entity_set for t in FNO_TABLES if t.notifies)
_PAST = {"Create": "Created", "Update": "Updated", "Delete": "Deleted"}
# The messages data events carry, per write (Dataverse virtual-table events).
MESSAGE_NAMES = {m: f"OnExternal{past}" for m, past in _PAST.items()}


class DataEventEndpoint(BaseModel):
    """An HTTPS endpoint with the data events bound to it (entity sets / legal entities / events)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    name: str = Field(min_length=1, max_length=200)
    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2000)
    headers: dict[str, str] = Field(default_factory=dict)
    entity_sets: list[str] | None = None  # None: every entity with data events
    legal_entities: list[str] | None = None  # None: all companies
    events: list[Literal["Create", "Update", "Delete"]] | None = None  # None: all three

    @field_validator("entity_sets")
    @classmethod
    def _known_sets(cls, value: list[str] | None) -> list[str] | None:
        for name in value or ():
            if name not in NOTIFYING_SETS:
                raise ValueError(
                    f"no data events for entity set {name!r}; known: {', '.join(NOTIFYING_SETS)}"
                )
        return value

    @field_validator("legal_entities")
    @classmethod
    def _lower(cls, value: list[str] | None) -> list[str] | None:
        return [v.lower() for v in value] if value is not None else None

    def matches(self, change: RecordChange) -> bool:
        if self.entity_sets is not None and change.entity_set not in self.entity_sets:
            return False
        if self.events is not None and change.message not in self.events:
            return False
        if self.legal_entities is not None:
            return _company(change).lower() in self.legal_entities
        return True


def _company(change: RecordChange) -> str:
    row = change.post_image or change.pre_image or {}
    return str(change.keys.get("dataAreaId") or row.get("dataAreaId") or "")


def _mserp(name: str) -> str:
    return "mserp_" + name.lower()


def _attributes(
    row: dict[str, Any], table: Table | None, only: tuple[str, ...] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if "@" in key or (only is not None and key not in only):
            continue
        column = table.column(key) if table else None
        if value is None and column is not None and column.kind in (Kind.DATE, Kind.DATETIME):
            continue  # null datetime properties are left out
        out[_mserp(key)] = value
    return out


def data_event(
    change: RecordChange,
    *,
    event_id: str,
    control_number: int,
    organization_id: str,
    organization_name: str,
    endpoint: DataEventEndpoint,
) -> dict[str, Any]:
    table = table_by_set(FNO_TABLES, change.entity_set)
    logical = _mserp(change.logical_name)
    if change.message == "Delete":
        keys = table.key if table else tuple(change.keys)
        source = {**(change.pre_image or {}), **change.keys}
        target = entity(logical, ZERO_GUID, _attributes(source, table, keys))
    else:
        target = entity(logical, ZERO_GUID, _attributes(change.post_image or {}, table))
    inputs: dict[str, Any] = {"Target": target}
    if change.message == "Update" and change.pre_image is not None:
        inputs["PreImage"] = entity(logical, ZERO_GUID, _attributes(change.pre_image, table))
    when = change.occurred_at if change.occurred_at.tzinfo else change.occurred_at.replace(tzinfo=UTC)
    company = _company(change)
    return {
        "BusinessUnitId": ZERO_GUID,
        "CorrelationId": change.correlation_id,
        "Depth": 1,
        "InitiatingUserId": ZERO_GUID,
        "InputParameters": kv(inputs),
        "IsExecutingOffline": False,
        "IsInTransaction": False,
        "IsOfflinePlayback": False,
        "IsolationMode": 1,
        "MessageName": MESSAGE_NAMES[change.message],
        "Mode": 1,
        "OperationCreatedOn": dotnet_date(when, offset=True),
        "OperationId": event_id,
        "OrganizationId": organization_id,
        "OrganizationName": organization_name,
        "OutputParameters": [],
        "OwningExtension": {
            "Id": endpoint.id,
            "KeyAttributes": [],
            "LogicalName": "sdkmessageprocessingstep",
            "Name": endpoint.name,
            "RowVersion": None,
        },
        "ParentContext": None,
        "PostEntityImages": [],
        "PreEntityImages": [],
        "PrimaryEntityId": ZERO_GUID,
        "PrimaryEntityName": logical,
        "RequestId": change.request_id,
        "SecondaryEntityName": "none",
        "SharedVariables": [],
        "Stage": 40,
        "UserId": ZERO_GUID,
        # Business-event header fields.
        "BusinessEventId": f"{change.logical_name}_{_PAST[change.message]}",
        "BusinessEventLegalEntity": company,
        "ContextRecordSubject": f"/{change.entity_set}({change.record_id})",
        "ControlNumber": control_number,
        "EventId": event_id,
        "EventTime": dotnet_date(when),
        "EventTimeIso8601": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "InitiatingUserAADObjectId": change.principal.object_id,
        "MajorVersion": 0,
        "MinorVersion": 0,
        "ParentContextRecordSubjects": [],
    }


class FnoNotifier:
    """``WriteHooks`` of the F&O engine: data events after commit (F&O never vetoes a write)."""

    def __init__(
        self,
        *,
        faults: Faults,
        organization_id: str,
        organization_name: str,
        organization_host: str,
        poster: HttpPoster | None = None,
        jobs: JobLog | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        retry_interval: float = 1.0,
    ) -> None:
        self.faults = faults
        self.organization_id = organization_id
        self.organization_name = organization_name
        self.organization_host = organization_host
        self.poster = poster or HttpPoster()
        self.jobs = jobs if jobs is not None else JobLog()
        self.timeout = timeout
        self.retries = retries
        self.retry_interval = retry_interval
        self.endpoints: dict[str, DataEventEndpoint] = {}
        self.background = Background()
        self.gate = DeliveryGate(faults, self.background)
        self._control_number = 1000

    # ------------------------------------------------------------------ endpoints
    def add_endpoint(self, endpoint: DataEventEndpoint) -> DataEventEndpoint:
        self.endpoints[endpoint.id] = endpoint
        return endpoint

    def remove_endpoint(self, endpoint_id: str) -> bool:
        return self.endpoints.pop(endpoint_id, None) is not None

    # ------------------------------------------------------------------ WriteHooks
    async def before_commit(self, change: RecordChange) -> None:
        return None

    async def after_commit(self, change: RecordChange) -> None:
        if change.system != "fno":
            return
        targets = [e for e in self.endpoints.values() if e.matches(change)]
        if not targets:
            return
        # Gaps on purpose: receivers must not expect consecutive control numbers.
        self._control_number += 1 + self.faults.rng.randrange(3)
        event_id = str(uuid.uuid4())
        for endpoint in targets:
            self._queue(change, endpoint, event_id, self._control_number)

    def _queue(
        self, change: RecordChange, endpoint: DataEventEndpoint, event_id: str, control_number: int
    ) -> None:
        payload = data_event(
            change,
            event_id=event_id,
            control_number=control_number,
            organization_id=self.organization_id,
            organization_name=self.organization_name,
            endpoint=endpoint,
        )
        body = json.dumps(payload, separators=(",", ":")).encode()
        job = self.jobs.new(
            system="fno",
            kind="dataevent",
            mode="async",
            target=endpoint.name,
            url=strip_query(endpoint.url),
            message=change.message,
            entity=change.entity_set,
            record_id=change.record_id,
            correlation_id=change.correlation_id,
            initiating_client_id=change.principal.client_id,
            initiating_user_id=change.principal.user_id,
            initiating_object_id=change.principal.object_id,
            event_id=event_id,
        )
        headers = {
            "Content-Type": "application/json",
            "x-ms-dynamics-organization": self.organization_host,
            "x-ms-dynamics-entity-name": payload["PrimaryEntityName"],
            "x-ms-dynamics-request-name": payload["MessageName"],
            "x-ms-correlation-request-id": change.correlation_id,
            **endpoint.headers,
        }

        async def send(applied: list[str]) -> None:
            job.faults.extend(applied)
            job.status = "in_progress"
            for attempt in range(self.retries + 1):
                if attempt:
                    await asyncio.sleep(self.retry_interval)
                result = await self.poster.post(endpoint.url, body, headers=headers, seconds=self.timeout)
                job.attempts.append(attempt_of(result))
                if result.ok:
                    job.finish("succeeded")
                    return
            job.finish("failed")

        def dropped() -> None:
            job.faults.append("drop")
            job.finish("dropped")

        self.gate.submit(f"{payload['BusinessEventId']} {change.record_id} -> {endpoint.name}", send, dropped)

    def errors(self) -> list[DeliveryJob]:
        return [j for j in self.jobs if j.status == "failed" or any(a.error for a in j.attempts)]

    # ------------------------------------------------------------------ lifecycle
    async def drain(self) -> None:
        self.gate.flush()
        await self.background.drain()

    def clear(self) -> None:
        self.gate.clear()
        self.jobs.clear()
        self.endpoints.clear()

    async def close(self) -> None:
        self.gate.clear()
        await self.background.cancel()
        await self.poster.close()
