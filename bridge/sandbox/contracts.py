"""Seams inside the sandbox: between the OData engines (CRUD) and identity/notifications/faults.

- The auth middleware (``bridge.sandbox.identity``) verifies the bearer token and stores a
  ``Principal`` in ``request["principal"]`` before any OData handler runs.
- The OData engines (``bridge.sandbox.dataverse`` / ``bridge.sandbox.fno``) call ``WriteHooks`` for
  every row they create, update or delete on a table with ``notifies=True``:
  ``before_commit`` inside the transaction (Dataverse synchronous webhook steps: raising
  ``HookFailed`` rolls the whole operation or change set back and the engine answers the API caller
  with the error), ``after_commit`` once committed (asynchronous steps, F&O data events).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

SystemName = Literal["dataverse", "fno"]
Message = Literal["Create", "Update", "Delete"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who called. ``user_id`` is the Dataverse systemuser id of the application user (a stable
    GUID derived from the client id); ``object_id`` the service principal's Entra object id (``oid``)."""

    client_id: str
    object_id: str
    user_id: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class RecordChange:
    system: SystemName
    entity_set: str  # "msdyn_warehouses" / "Warehouses"
    logical_name: str  # Table.logical_name
    message: Message
    record_id: str  # Dataverse GUID; F&O: the key segment, e.g. "dataAreaId='usmf',WarehouseId='11'"
    keys: dict[str, Any]  # Dataverse: {primary_id: guid}; F&O: composite key values
    pre_image: dict[str, Any] | None  # full row before (storage form = Web API JSON form), None on Create
    post_image: dict[str, Any] | None  # full row after, None on Delete
    changed: dict[str, Any]  # columns the caller set (Create: all given; Update: those in the PATCH)
    principal: Principal
    correlation_id: str  # one per API request (a $batch shares one)
    request_id: str  # one per operation
    occurred_at: datetime
    depth: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


class HookFailed(Exception):
    """A synchronous step failed: the engine rolls back and answers with ``status`` and ``message``.

    Dataverse answers the API caller with an error naming the failed webhook call and its status."""

    def __init__(self, message: str, *, status: int = 400, code: str = "0x80040265") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class WriteHooks(Protocol):
    async def before_commit(self, change: RecordChange) -> None: ...

    async def after_commit(self, change: RecordChange) -> None: ...


class NoHooks:
    async def before_commit(self, change: RecordChange) -> None:
        return None

    async def after_commit(self, change: RecordChange) -> None:
        return None
