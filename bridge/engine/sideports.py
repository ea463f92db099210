"""What the engine needs of the two systems: a ``Side`` per system, addressed by (map, company,
natural key), and Dataverse's lookups. ``bridge.systems.sides`` implements them over the system
clients; composition (``bridge.app``, the apply process) builds them and hands them in.

This module imports only the core, so the engine reaches the systems through it and never imports
an adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bridge.core.events import System
from bridge.core.mapping import EntityMap, LookupSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """A record as one system holds it."""

    image: dict[str, Any]  # Web API read form
    record_id: str | None = None  # Dataverse GUID; None on F&O
    etag: str | None
    modified_at: datetime | None = None  # the system's own modified time, when it says


class Side(Protocol):
    """One system's records. Writes that find the record changed, gone or already there raise
    ``ConflictError`` (codes "stale", "missing", "exists"); other refusals ``RejectedError``."""

    @property
    def system(self) -> System: ...

    async def read(
        self, emap: EntityMap, company: str, key: str, *, record_id: str | None = None
    ) -> Row | None: ...

    async def create(
        self,
        emap: EntityMap,
        company: str,
        key: str,
        payload: dict[str, Any],
        *,
        record_id: str | None = None,
    ) -> tuple[str | None, str | None]:
        """(Dataverse id or None, ETag or None); ConflictError (code "exists") if it exists already."""
        ...

    async def update(
        self, emap: EntityMap, company: str, key: str, row: Row, payload: dict[str, Any]
    ) -> str | None:
        """The new ETag. With ``row.etag`` set, a record changed since raises ConflictError ("stale"),
        a record gone raises ConflictError ("missing")."""
        ...

    async def delete(self, emap: EntityMap, company: str, key: str, row: Row) -> None: ...


class DataverseSide(Side, Protocol):
    """Dataverse, with what only it answers: rows by id alone, company codes, and lookups (F&O
    references are natural keys already)."""

    async def read_by_id(self, emap: EntityMap, record_id: str) -> Row | None:
        """The row with this primary id, or None (a change received without its key)."""
        ...

    async def company_code(self, company_id: str) -> str | None:
        """The company code (upper case) of a ``cdm_company`` id, or None if there is none."""
        ...

    async def natural_key(self, spec: LookupSpec, guid: str) -> str | None:
        """The natural key of the record a Dataverse lookup points at, or None if it is gone."""
        ...

    async def guid_of(self, spec: LookupSpec, company: str, natural: str) -> str | None:
        """The Dataverse id of the record with this natural key in ``company``, or None."""
        ...


@dataclass(frozen=True, slots=True)
class DocWrite:
    """One write of a document's change set: ``keys`` address the row (F&O: its key properties;
    Dataverse: ``{primary id: GUID}``); a POST sends ``body`` to the collection."""

    method: str  # POST, PATCH, DELETE
    entity_set: str
    keys: dict[str, Any]
    body: dict[str, Any] | None = None


class DocumentSide(Protocol):
    """What document maps (``bridge.engine.documents``) need of the systems: rows of any table, and
    writes that commit together or not at all (one ``$batch`` change set)."""

    async def get(self, system: System, entity_set: str, keys: dict[str, Any]) -> dict[str, Any] | None:
        """One row by key (Dataverse: ``{primary id: GUID}`` or an alternate key), or None."""
        ...

    async def find(self, system: System, entity_set: str, equals: dict[str, Any]) -> list[dict[str, Any]]:
        """Every row whose columns equal ``equals`` (Dataverse lookups as ``_x_value``)."""
        ...

    async def key_of(self, entity_set: str, record_id: str, key_field: str) -> str | None:
        """A Dataverse row's natural key (``key_field``), None if the row is gone (may be cached)."""
        ...

    async def changeset(self, system: System, writes: list[DocWrite]) -> None:
        """All of ``writes`` in one change set; the system's refusal raises (nothing applied)."""
        ...


@dataclass(frozen=True, slots=True)
class Sides:
    """Both systems, as the applier and the recovery reach them."""

    cds: DataverseSide
    scm: Side
    documents: DocumentSide | None = None  # document maps' reads and change sets

    def of(self, system: System) -> Side:
        return self.cds if system is System.CDS else self.scm
