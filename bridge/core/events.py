"""The normalised change event that flows listeners -> queue -> writer.

Pure data: no I/O. Field values inside ``changed``/``image``/``pre_image`` use the *source system's
Web API representation* (Dataverse: logical attribute names, option sets as ints, lookups as
``_<name>_value`` GUID strings, dates as ISO 8601 strings; F&O: OData property names, enums as labels,
dates as ISO 8601 strings), so one mapping describes one representation per system.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class System(StrEnum):
    CDS = "cds"  # Dataverse
    SCM = "scm"  # Finance and Operations / Supply Chain Management

    @property
    def other(self) -> System:
        return System.SCM if self is System.CDS else System.CDS


class Operation(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class SyncMode(StrEnum):
    SYNC = "sync"  # the originator waits for the write (Dataverse synchronous step)
    ASYNC = "async"  # the originator already committed; rejections are compensated


def utcnow() -> datetime:
    return datetime.now(UTC)


class ChangeEvent(BaseModel):
    """One change on one record, as received from one system."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(min_length=1, description="Source-unique id; repeats are deduplicated")
    source: System
    entity: str = Field(description="Map name, e.g. 'warehouse' (mappings/<entity>.yaml)")
    company: str = Field(description="Company code, upper case: 'USMF'")
    key: str = Field(description="Natural key value on the source, e.g. WarehouseId")
    operation: Operation
    mode: SyncMode = SyncMode.ASYNC
    record_id: str | None = Field(default=None, description="Source row id (Dataverse GUID)")
    changed: dict[str, Any] = Field(default_factory=dict, description="Changed columns (source names)")
    image: dict[str, Any] | None = Field(default=None, description="Full post image, when known")
    pre_image: dict[str, Any] | None = None
    needs_fetch: bool = Field(default=False, description="Payload had no images (256 KB rule)")
    source_timestamp: datetime = Field(default_factory=utcnow)
    initiated_by: str | None = Field(default=None, description="Principal that made the change")
    correlation_id: str | None = None
    trace_context: dict[str, str] = Field(default_factory=dict, description="W3C trace headers")
    received_at: datetime = Field(default_factory=utcnow)
    received_by: str | None = Field(
        default=None,
        description="A synchronous change: the replica (lease owner id) holding its originator's call",
    )

    @property
    def record_key(self) -> str:
        """Per-record ordering key: entity + company + natural key (same on both systems)."""
        return record_key(self.entity, self.company, self.key)


# An event whose natural key was not known on receipt (a Dataverse notification over 256 KB inside a
# synchronous step: no images in the body, and the uncommitted row cannot be read from outside its
# transaction). Its key is this prefix + the Dataverse row id; the writer reads the committed row.
DEFERRED_KEY_PREFIX = "#cds-id:"
DEFERRED_COMPANY = "*"


def record_key(entity: str, company: str, key: str) -> str:
    return f"{entity}|{company.upper()}|{key}"
